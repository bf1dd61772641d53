import { expect } from 'chai'
import { StunErrorResponse, StunTimeoutError } from '../../../src/errors.js'
import type { Endpoint } from '../../../src/net/endpoint.js'
import { TurnClient } from '../../../src/relay/turn-client.js'
import {
  SimNetwork, SimTurnServer, type SimNatPreset, type SimSocket, type SimTurnServerOptions
} from '../../../src/sim/index.js'
import { expectRejection } from '../../support/assert.js'
import { Inbox } from './helpers.js'

const NAT_IP = '192.0.2.1'
const TURN_IP = '203.0.113.50'
const PEER_IP = '198.51.100.9'
const CREDENTIALS = { username: 'alice', password: 'wonderland' }
const FAST = { rtoMs: 20, rc: 3, rm: 2 }

async function setup (preset: SimNatPreset, options: SimTurnServerOptions = {}): Promise<{ net: SimNetwork, server: SimTurnServer, socket: SimSocket, peer: SimSocket, inPeer: Inbox }> {
  const net = new SimNetwork({ latencyMs: 1 })
  const nat = net.addNat('home', NAT_IP, preset)
  const server = await SimTurnServer.start(net.addHost(TURN_IP), { users: { alice: 'wonderland' }, ...options })
  const socket = await net.addHost('10.0.0.2', { behind: nat }).bind(5000)
  const peer = await net.addHost(PEER_IP).bind(9000)
  return { net, server, socket, peer, inPeer: new Inbox(peer) }
}

function nextData (client: TurnClient): Promise<{ data: string, peer: Endpoint }> {
  return new Promise(resolve => { client.once('data', (data, peer) => { resolve({ data: data.toString(), peer }) }) })
}

describe('SimTurnServer', () => {
  for (const preset of ['port-restricted-cone', 'symmetric'] as const) {
    it(`a TurnClient behind a ${preset} NAT allocates and relays to a public host both ways (Send/Data, then a channel)`, async () => {
      const { net, server, socket, peer, inPeer } = await setup(preset)
      const allocations: unknown[] = []
      server.on('allocation', (e) => { allocations.push(e) })
      const client = await TurnClient.allocate({ server: `${TURN_IP}:3478`, socket, credentials: CREDENTIALS, retransmit: FAST })
      const { relayed, mapped } = client.allocation
      expect(relayed.address).to.equal(TURN_IP)
      expect(mapped.address).to.equal(NAT_IP)
      expect(allocations).to.have.length(1)
      expect(server.stats().allocations).to.equal(1)

      // Send indication out (a permission is created first), Data indication back.
      client.send(Buffer.from('ping'), peer.local)
      await new Promise(resolve => { peer.onMessage((data, from) => { inPeer.messages.push({ data, from }); resolve(undefined) }) })
      expect(inPeer.texts).to.deep.equal(['ping'])
      expect(inPeer.messages[0].from).to.deep.equal(relayed)
      let back = nextData(client)
      peer.send(Buffer.from('pong'), relayed)
      expect(await back).to.deep.equal({ data: 'pong', peer: peer.local })

      // ChannelData both ways.
      await client.bindChannel(peer.local)
      expect(server.stats().channels).to.equal(1)
      client.send(Buffer.from('over the channel'), peer.local)
      await net.idle()
      expect(inPeer.texts).to.deep.equal(['ping', 'over the channel'])
      back = nextData(client)
      peer.send(Buffer.from('channel back'), relayed)
      expect(await back).to.deep.equal({ data: 'channel back', peer: peer.local })

      const ended = new Promise(resolve => { server.once('deallocation', resolve) })
      await client.close()
      expect(await ended).to.include({ reason: 'refresh' })
      expect(server.stats().allocations).to.equal(0)
      await net.close()
    })
  }

  it('relays between two NATed peers: the relay fallback of a traversal', async () => {
    const net = new SimNetwork({ latencyMs: 1 })
    await SimTurnServer.start(net.addHost(TURN_IP), { users: { alice: 'wonderland' } })
    const a = await net.addHost('10.0.0.2', { behind: net.addNat('a', NAT_IP, 'symmetric') }).bind(5000)
    const b = await net.addHost('10.0.0.2', { behind: net.addNat('b', '192.0.2.2', 'port-restricted-cone') }).bind(6000)
    const inB = new Inbox(b)
    const client = await TurnClient.allocate({ server: `${TURN_IP}:3478`, socket: a, credentials: CREDENTIALS, retransmit: FAST })
    const relayed = client.allocation.relayed
    // B opens its NAT towards the relayed address (dropped at the relay: no permission yet) ...
    b.send(Buffer.from('knock'), relayed)
    // ... A permits B's public address; then B's packets get through, and A's answers pass B's NAT.
    await client.createPermission({ address: '192.0.2.2', port: 0 })
    const got = nextData(client)
    b.send(Buffer.from('hello via relay'), relayed)
    const first = await got
    expect(first).to.deep.equal({ data: 'hello via relay', peer: { address: '192.0.2.2', port: 6000 } })
    client.send(Buffer.from('hello back'), first.peer)
    await net.idle()
    expect(inB.texts).to.deep.equal(['hello back'])
    expect(inB.froms).to.deep.equal([`${relayed.address}:${relayed.port}`])
    await client.close()
    await net.close()
  })

  it('refuses peers outside allowPeer (natkit\'s peer policy denies the documentation ranges by default)', async () => {
    const { net, socket, peer } = await setup('full-cone', { allowPeer: [] })
    const client = await TurnClient.allocate({ server: `${TURN_IP}:3478`, socket, credentials: CREDENTIALS, retransmit: FAST })
    const err = await expectRejection(client.createPermission(peer.local), StunErrorResponse)
    expect(err.errorCode).to.equal(403)
    await client.close()
    await net.close()
  })

  it('rejects wrong credentials with 401', async () => {
    const { net, socket } = await setup('full-cone')
    const err = await expectRejection(TurnClient.allocate({ server: `${TURN_IP}:3478`, socket, credentials: { username: 'alice', password: 'nope' }, retransmit: FAST }), StunErrorResponse)
    expect(err.errorCode).to.equal(401)
    await net.close()
  })

  it('cannot be reached from behind a udp-blocked NAT', async () => {
    const { net, socket } = await setup('udp-blocked')
    await expectRejection(TurnClient.allocate({ server: `${TURN_IP}:3478`, socket, credentials: CREDENTIALS, retransmit: { rtoMs: 5, rc: 2, rm: 2 } }), StunTimeoutError)
    await net.close()
  })

  it('skips relay ports already taken on its host, and closes with the network', async () => {
    const net = new SimNetwork({ latencyMs: 1 })
    const host = net.addHost(TURN_IP)
    const server = await SimTurnServer.start(host, { users: { alice: 'wonderland' }, portRange: [50000, 50001] })
    await host.bind(50000)
    // Short retransmission: the client's closing Refresh goes unanswered once the network is closed.
    const client = await TurnClient.allocate({ server: `${TURN_IP}:3478`, socket: await net.addHost(PEER_IP).bind(), credentials: CREDENTIALS, retransmit: { rtoMs: 5, rc: 2, rm: 2 } })
    expect(client.allocation.relayed).to.deep.equal({ address: TURN_IP, port: 50001 })
    const ended = new Promise(resolve => { server.once('deallocation', resolve) })
    await net.close()
    expect(await ended).to.include({ reason: 'shutdown' })
    await client.close()
  })
})
