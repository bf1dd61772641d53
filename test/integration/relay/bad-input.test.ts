import { expect } from 'chai'
import {
  ChannelNumber, Data, ErrorCode, Lifetime, MessageBuilder, MessageClass, Method, Nonce, RequestedTransport,
  TransportProtocol, XorPeerAddress, XorRelayedAddress
} from '../../../src/stun/index.js'
import { UdpSocket } from '../../../src/net/udp.js'
import type { Endpoint } from '../../../src/net/endpoint.js'
import { TurnServer } from '../../../src/relay/turn-server.js'
import { restApiPassword } from '../../../src/relay/credentials.js'
import { InMemoryRelayMetrics } from '../../../src/relay/metrics.js'
import { MiniClient, udpRequest } from './support.js'

const REALM = 'natkit.test'

describe('TurnServer under bad input (127.0.0.1)', function () {
  this.timeout(20_000)
  let server: TurnServer
  let at: Endpoint
  const clients: MiniClient[] = []
  let peer: UdpSocket

  before(async () => {
    server = await TurnServer.start({
      realm: REALM, users: { alice: 'secret', bob: 'pw' }, authSecret: 'rest', listen: [{ address: '127.0.0.1', port: 0 }], tcp: false,
      allowPeer: ['127.0.0.0/8'], userQuota: 3, nonceLifetime: 1, portRange: [45000, 45999]
    })
    at = server.addresses.udp[0]
    peer = await UdpSocket.bind({ address: '127.0.0.1', port: 0 })
  })
  after(async () => {
    for (const c of clients) await c.close()
    await peer?.close()
    await server?.close()
  })
  const client = async (user?: string, pass?: string): Promise<MiniClient> => {
    const c = await MiniClient.open(at, user, pass); clients.push(c); return c
  }

  it('keeps relaying for one user while others send garbage, stale nonces, wrong and expired credentials, floods and denied peers', async () => {
    // Bob's allocation relays through everything below.
    const bob = await client('bob', 'pw')
    const alloc = await bob.request(Method.Allocate, (b) => b.add(RequestedTransport, TransportProtocol.UDP))
    const relayed = alloc?.get(XorRelayedAddress) as Endpoint
    expect(relayed.address).to.equal('127.0.0.1')
    expect((await bob.request(Method.ChannelBind, (b) => b.add(ChannelNumber, 0x4000).add(XorPeerAddress, peer.local)))?.cls).to.equal(MessageClass.SuccessResponse)
    const received: Buffer[] = []
    peer.onMessage((d) => { received.push(d) })
    const sendViaChannel = (text: string): void => {
      const cd = Buffer.alloc(4 + text.length); cd.writeUInt16BE(0x4000, 0); cd.writeUInt16BE(text.length, 2); cd.write(text, 4)
      bob.socket.send(cd, at)
    }

    // Garbage of every shape.
    const junk = await UdpSocket.bind({ address: '127.0.0.1', port: 0 })
    try {
      for (const bytes of [Buffer.alloc(0), Buffer.from([0xff]), Buffer.alloc(20), Buffer.from('0001000c2112a442000000000000000000000000', 'hex'), Buffer.from([0x40, 0, 0, 200, 1]), Buffer.alloc(1500, 0x17)]) junk.send(bytes, at)
      await new Promise((resolve) => setTimeout(resolve, 100))
    } finally { await junk.close() }
    sendViaChannel('one')

    // Wrong password: 401. Expired REST username: 401.
    const mallory = await client('alice', 'nope')
    expect((await mallory.request(Method.Allocate, (b) => b.add(RequestedTransport, 17)))?.get(ErrorCode)?.code).to.equal(401)
    const oldUser = `${Math.floor(Date.now() / 1000) - 5}:x`
    const expired = await client(oldUser, restApiPassword('rest', oldUser))
    expect((await expired.request(Method.Allocate, (b) => b.add(RequestedTransport, 17)))?.get(ErrorCode)?.code).to.equal(401)

    // Stale nonce (lifetime 1 s): 438 with a fresh nonce.
    const carol = await client()
    await carol.request(Method.Binding, () => {})
    carol.nonce = (await udpRequest(at, new MessageBuilder(Method.Allocate, MessageClass.Request).build(), carol.socket))?.get(Nonce) ?? ''
    await new Promise((resolve) => setTimeout(resolve, 2100))
    const stale = await carol.request(Method.Allocate, (b) => b.add(RequestedTransport, 17))
    expect(stale?.get(ErrorCode)?.code).to.equal(438)
    expect(stale?.get(Nonce)).to.not.equal(carol.nonce)
    carol.nonce = stale?.get(Nonce) ?? ''
    expect((await carol.request(Method.Allocate, (b) => b.add(RequestedTransport, 17)))?.cls).to.equal(MessageClass.SuccessResponse)
    sendViaChannel('two')

    // Allocation flood beyond alice's quota of 3: 486.
    const codes: Array<number | undefined> = []
    for (let i = 0; i < 4; i++) {
      const c = await client()
      const r = await c.request(Method.Allocate, (b) => b.add(RequestedTransport, 17).add(Lifetime, 600))
      codes.push(r?.get(ErrorCode)?.code)
    }
    expect(codes.filter(c => c === 486)).to.have.length(2) // carol holds one of alice's 3
    // A peer in a denied range: 403 (only a request to our server; nothing is sent to 10.0.0.1).
    expect((await carol.request(Method.CreatePermission, (b) => b.add(XorPeerAddress, { address: '10.0.0.1', port: 9 })))?.get(ErrorCode)?.code).to.equal(403)
    expect((await carol.request(Method.CreatePermission, (b) => b.add(XorPeerAddress, { address: '169.254.169.254', port: 80 })))?.get(ErrorCode)?.code).to.equal(403)
    // The server's own listener is denied even though 127.0.0.0/8 is allowed.
    expect((await carol.request(Method.ChannelBind, (b) => b.add(ChannelNumber, 0x4001).add(XorPeerAddress, at)))?.get(ErrorCode)?.code).to.equal(403)
    sendViaChannel('three')

    // Peer → client still works for bob.
    const back = new Promise<Buffer | undefined>((resolve) => {
      const t = setTimeout(() => { resolve(undefined) }, 2000)
      bob.socket.onMessage((d) => { clearTimeout(t); resolve(d) })
    })
    peer.send(Buffer.from('pong'), relayed)
    const got = await back
    expect(got?.subarray(4).toString()).to.equal('pong')
    await new Promise((resolve) => setTimeout(resolve, 200))
    expect(received.map(b => b.toString())).to.deep.equal(['one', 'two', 'three'])

    const m = server.metrics as InMemoryRelayMetrics
    expect(m.total('natkit_relay_malformed_total')).to.be.greaterThan(0)
    expect(m.get('natkit_relay_error_responses_total', '486')).to.equal(2)
    expect(server.stats().allocations).to.equal(4)
    void Data
  })
})
