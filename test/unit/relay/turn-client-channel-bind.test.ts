import { expect } from 'chai'
import type { Endpoint } from '../../../src/net/endpoint.js'
import { TurnClient } from '../../../src/relay/turn-client.js'
import { StunErrorResponse } from '../../../src/errors.js'
import { expectRejection } from '../../support/assert.js'
import { batchedLink, encodeChannelData, scriptedTurnServer } from '../../support/scripted-turn.js'

describe('TurnClient', () => {
  describe('bindChannel', () => {
    const peer = { address: '198.51.100.7', port: 4000 }
    const relayed = { address: '203.0.113.1', port: 50000 }
    const user = 'u'; const password = 'p'

    async function setup (refuse = false): Promise<{ client: TurnClient, binds: number[] }> {
      const [clientSocket, serverSocket] = batchedLink({ address: '192.0.2.10', port: 5000 }, { address: '192.0.2.1', port: 3478 })
      const binds: number[] = []
      scriptedTurnServer(serverSocket, {
        relayed, user, password,
        refuseChannelBind: () => refuse,
        // The success response and ChannelData from the peer leave together: one batch at the client.
        onChannelBind: ({ success, channel, send }) => {
          binds.push(channel)
          send(success)
          send(encodeChannelData(channel, Buffer.from('80600001000000640000abcd', 'hex')))
        }
      })
      const client = await TurnClient.allocate({ server: '192.0.2.1:3478', credentials: { username: user, password }, socket: clientSocket, retransmit: { rtoMs: 100, rc: 3, rm: 4 } })
      return { client, binds }
    }

    it('delivers ChannelData that arrives in the same batch as the ChannelBind success response', async () => {
      const { client, binds } = await setup()
      try {
        const got: Array<{ data: string, from: Endpoint }> = []
        client.on('data', (data, from) => { got.push({ data: data.toString('hex'), from }) })
        const channel = await client.bindChannel(peer)
        expect(binds).to.deep.equal([channel])
        expect(got).to.deep.equal([{ data: '80600001000000640000abcd', from: peer }])
      } finally { await client.close() }
    })

    it('forgets the channel when the bind is refused: later ChannelData on it is not attributed to the peer', async () => {
      const { client } = await setup(true)
      try {
        const got: Buffer[] = []
        client.on('data', (data) => { got.push(data) })
        const err = await expectRejection(client.bindChannel(peer), StunErrorResponse)
        expect(err.errorCode).to.equal(400)
        // The transport hands server frames to the client; feed one on the refused channel number (0x4000) directly.
        ;(client as unknown as { onServerFrame: (f: Buffer) => void }).onServerFrame(encodeChannelData(0x4000, Buffer.from([0x80, 1])))
        expect(got).to.deep.equal([])
      } finally { await client.close() }
    })
  })
})
