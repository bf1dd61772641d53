import { expect } from 'chai'
import { BatchUdpSocket } from '../../../src/net/batch-udp.js'
import { nativeUdpAvailable, nativeUdpUnavailableReason } from '../../../src/net/native.js'
import { TurnClient } from '../../../src/relay/turn-client.js'
import { requireOrSkip } from '../../support/env.js'
import { encodeChannelData, scriptedTurnServer } from '../../support/scripted-turn.js'

describe('TurnClient over the native batched socket (recvmmsg)', function () {
  this.timeout(20_000)

  it('delivers ChannelData sent right behind the ChannelBind success response, also when both arrive in one batch', async function () {
    requireOrSkip(this, nativeUdpAvailable(), `native UDP addon unavailable (${nativeUdpUnavailableReason() ?? ''})`)
    const server = await BatchUdpSocket.bind({ address: '127.0.0.1' })
    const peer = { address: '127.0.0.1', port: 9 }
    const payload = Buffer.from('80600001000000640000abcd', 'hex')
    scriptedTurnServer(server, {
      relayed: { address: '127.0.0.1', port: 50000 }, user: 'u', password: 'p',
      // Both leave in the same sendmmsg (one handler call), so they are usually read by one recvmmsg.
      onChannelBind: ({ success, channel, send }) => { send(success); send(encodeChannelData(channel, payload)) }
    })
    let sameBatch = 0
    const runs = 20
    try {
      for (let run = 0; run < runs; run++) {
        const socket = await BatchUdpSocket.bind({ address: '127.0.0.1' })
        const client = await TurnClient.allocate({ server: `127.0.0.1:${server.local.port}`, credentials: { username: 'u', password: 'p' }, socket, retransmit: { rtoMs: 200, rc: 3, rm: 4 } })
        try {
          const got: string[] = []
          client.on('data', (data, from) => { if (from.port === peer.port) got.push(data.toString('hex')) })
          const before = socket.stats()
          await client.bindChannel(peer)
          const deadline = Date.now() + 1000
          while (got.length === 0 && Date.now() < deadline) await new Promise(resolve => setTimeout(resolve, 5))
          const after = socket.stats()
          if (after.received - before.received === 2 && after.receiveBatches - before.receiveBatches === 1) sameBatch++
          expect(got, `run ${run}`).to.deep.equal([payload.toString('hex')])
        } finally { await client.close(); await socket.close() }
      }
    } finally { await server.close() }
    // The race only exists when both datagrams share a batch: make sure the runs above exercised it.
    expect(sameBatch, `runs where the response and the ChannelData shared one recvmmsg batch, of ${runs}`).to.be.above(0)
  })
})
