import { expect } from 'chai'
import { Lifetime, MessageClass, Method, XorPeerAddress } from '../../../src/stun/index.js'
import { UdpSocket } from '../../../src/net/udp.js'
import { BatchUdpSocket } from '../../../src/net/batch-udp.js'
import type { Endpoint } from '../../../src/net/endpoint.js'
import { loadNativeUdp, nativeUdpAvailable, nativeUdpUnavailableReason } from '../../../src/net/native.js'
import { TurnServer, type TurnServerOptions } from '../../../src/relay/turn-server.js'
import { InMemoryRelayMetrics } from '../../../src/relay/metrics.js'
import { requireOrSkip } from '../../support/env.js'
import { RawClient } from './support.js'

const REALM = 'natkit.test'
const CHANNEL = 0x4000

const sleep = (ms: number): Promise<void> => new Promise((resolve) => { setTimeout(resolve, ms) })

/** Wait (bounded) until `cond` holds. */
async function until (cond: () => boolean, ms = 2000): Promise<void> {
  const end = Date.now() + ms
  while (!cond() && Date.now() < end) await sleep(10)
}

describe('TurnServer native fast path for established channels (127.0.0.1)', function () {
  this.timeout(20_000)
  let server: TurnServer | undefined
  let peer: UdpSocket | undefined
  let client: RawClient | undefined
  /** Packets the core saw from clients and from peers (the fast path keeps relayed ones away from it). */
  let coreCalls = { client: 0, peer: 0 }
  let fromClient: string[] = []

  beforeEach(function () {
    requireOrSkip(this, nativeUdpAvailable(), `native UDP addon unavailable (${nativeUdpUnavailableReason() ?? ''})`)
    requireOrSkip(this, typeof loadNativeUdp()?.fastInstall === 'function', 'the native addon was built without the fast path')
  })

  afterEach(async () => {
    await client?.close()
    await peer?.close()
    await server?.close()
    client = undefined; peer = undefined; server = undefined
  })

  async function start (options: Partial<TurnServerOptions> = {}): Promise<{ server: TurnServer, client: RawClient, peer: UdpSocket, relayed: Endpoint }> {
    const s = await TurnServer.start({
      realm: REALM, users: { alice: 'secret' }, listen: [{ address: '127.0.0.1', port: 0 }], tcp: false,
      allowPeer: ['127.0.0.0/8'], portRange: [46000, 46999], metrics: new InMemoryRelayMetrics(), ...options
    })
    server = s
    coreCalls = { client: 0, peer: 0 }
    const core = s.core
    const handle = core.handle.bind(core)
    const handlePeer = core.handlePeer.bind(core)
    core.handle = (...args) => { coreCalls.client++; return handle(...args) }
    core.handlePeer = (...args) => { coreCalls.peer++; return handlePeer(...args) }
    peer = await UdpSocket.bind({ address: '127.0.0.1', port: 0 })
    fromClient = []
    peer.onMessage((d) => { fromClient.push(d.toString()) })
    client = await RawClient.open(s.addresses.udp[0])
    const relayed = await client.allocateAndBind(peer.local)
    return { server: s, client, peer, relayed }
  }

  it('relays ChannelData to the peer and the peer\'s datagrams back as ChannelData without calling the core, and counts them in the metrics', async () => {
    const { server: s, client: c, peer: p, relayed } = await start()
    expect(s.fastPath.enabled).to.equal(true)
    // The first packet goes through the core, which installs the channel in the addon.
    c.channelData('first')
    await until(() => fromClient.length === 1)
    expect(fromClient).to.deep.equal(['first'])
    const before = { ...coreCalls }
    for (let i = 0; i < 50; i++) c.channelData(`c2p-${i}`)
    await until(() => fromClient.length === 51)
    expect(fromClient.slice(1)).to.deep.equal(Array.from({ length: 50 }, (_, i) => `c2p-${i}`))
    for (let i = 0; i < 40; i++) p.send(Buffer.from(`p2c-${i}`), relayed)
    await until(() => c.fromServer.length === 40)
    expect(c.fromServer.map(b => b.readUInt16BE(0))).to.deep.equal(new Array(40).fill(CHANNEL))
    expect(c.fromServer.map(b => b.subarray(4, 4 + b.readUInt16BE(2)).toString())).to.deep.equal(Array.from({ length: 40 }, (_, i) => `p2c-${i}`))
    expect(coreCalls, 'packets that reached the core').to.deep.equal(before)

    const m = s.metrics as InMemoryRelayMetrics
    expect(m.get('natkit_relay_packets_total', 'client-to-peer')).to.equal(51)
    expect(m.get('natkit_relay_packets_total', 'peer-to-client')).to.equal(40)
    const c2pBytes = 'first'.length + Array.from({ length: 50 }, (_, i) => `c2p-${i}`.length).reduce((a, b) => a + b)
    expect(m.get('natkit_relay_bytes_total', 'client-to-peer')).to.equal(c2pBytes)
    expect(m.get('natkit_relay_bytes_total', 'peer-to-client')).to.equal(Array.from({ length: 40 }, (_, i) => `p2c-${i}`.length).reduce((a, b) => a + b))
  })

  it('hands malformed ChannelData and unbound channels to the core, which drops them', async () => {
    const { server: s, client: c } = await start()
    c.channelData('first')
    await until(() => fromClient.length === 1)
    const m = s.metrics as InMemoryRelayMetrics
    const malformed = m.total('natkit_relay_malformed_total')
    const calls = coreCalls.client
    const bad = [
      Buffer.from([0x40, 0x00, 0x00, 0x10, 0x61]), // length beyond the datagram
      Buffer.concat([Buffer.from([0x40, 0x00, 0x00, 0x01, 0x61]), Buffer.alloc(4)]), // 4 bytes after the data: not padding
      Buffer.from([0x40, 0x00, 0x00]) // short header
    ]
    for (const b of bad) c.socket.send(b, c.server)
    c.channelData('other channel', 0x4001)
    await until(() => coreCalls.client === calls + 4)
    await sleep(100)
    expect(coreCalls.client - calls, 'packets the core saw').to.equal(4)
    expect(m.total('natkit_relay_malformed_total') - malformed).to.equal(3)
    expect(m.get('natkit_relay_dropped_total', 'no-channel')).to.equal(1)
    expect(fromClient).to.deep.equal(['first'])
  })

  it('stops at the permission\'s expiry (the packet goes to the core, which drops it) and resumes once the client refreshes it', async () => {
    const { server: s, client: c } = await start({ permissionLifetime: 1, channelLifetime: 600 })
    c.channelData('first')
    await until(() => fromClient.length === 1)
    const calls = coreCalls.client
    c.channelData('fast')
    await until(() => fromClient.length === 2)
    expect(coreCalls.client).to.equal(calls)
    await sleep(1200)
    c.channelData('late')
    await until(() => coreCalls.client > calls)
    await sleep(100)
    expect(coreCalls.client - calls).to.equal(1)
    expect(fromClient).to.deep.equal(['first', 'fast'])
    expect((s.metrics as InMemoryRelayMetrics).get('natkit_relay_dropped_total', 'no-permission')).to.equal(1)
    // The client refreshes the permission: the next packet goes through the core, which installs the channel again.
    const refreshed = await c.request(Method.CreatePermission, (b) => b.add(XorPeerAddress, peer?.local as Endpoint))
    expect(refreshed?.cls).to.equal(MessageClass.SuccessResponse)
    const before = coreCalls.client
    c.channelData('again')
    await until(() => fromClient.length === 3)
    expect(coreCalls.client - before).to.equal(1)
    c.channelData('fast again')
    await until(() => fromClient.length === 4)
    expect(fromClient.slice(2)).to.deep.equal(['again', 'fast again'])
    expect(coreCalls.client - before, 'only the first packet after the refresh reached the core').to.equal(1)
  })

  it('stops at the channel\'s expiry', async () => {
    const { server: s, client: c, peer: p, relayed } = await start({ permissionLifetime: 600, channelLifetime: 1 })
    c.channelData('first')
    await until(() => fromClient.length === 1)
    await sleep(1200)
    const calls = { ...coreCalls }
    c.channelData('late')
    p.send(Buffer.from('late back'), relayed)
    await until(() => coreCalls.client > calls.client && coreCalls.peer > calls.peer)
    await sleep(100)
    expect(fromClient).to.deep.equal(['first'])
    expect(coreCalls.client - calls.client).to.equal(1)
    expect(coreCalls.peer - calls.peer).to.equal(1)
    expect((s.metrics as InMemoryRelayMetrics).get('natkit_relay_dropped_total', 'no-channel')).to.equal(1)
    // Permission still there, channel expired: the core answers with a Data indication (RFC 8656 §11.3), not ChannelData.
    await until(() => c.fromServer.length === 1)
    expect(c.fromServer[0].readUInt16BE(0)).to.equal(0x0017)
  })

  it('stops when the allocation is deleted (Refresh with lifetime 0)', async () => {
    const { server: s, client: c, peer: p, relayed } = await start()
    c.channelData('first')
    await until(() => fromClient.length === 1)
    const entries = loadNativeUdp()?.fastCount?.() ?? 0
    expect(entries).to.be.at.least(2)
    const refreshed = await c.request(Method.Refresh, (b) => b.add(Lifetime, 0))
    expect(refreshed?.cls).to.equal(MessageClass.SuccessResponse)
    expect(loadNativeUdp()?.fastCount?.()).to.equal(entries - 2)
    const calls = { ...coreCalls }
    c.channelData('after')
    p.send(Buffer.from('after back'), relayed)
    await until(() => coreCalls.client > calls.client)
    await sleep(150)
    expect(coreCalls.client - calls.client).to.equal(1)
    expect(fromClient).to.deep.equal(['first'])
    expect(c.fromServer).to.have.length(0)
    expect((s.metrics as InMemoryRelayMetrics).get('natkit_relay_dropped_total', 'no-allocation')).to.equal(1)
  })

  it('sends what it queued before a relay socket closes: a burst, then Refresh(0) in the same receive batch, all reach the peer', async () => {
    const { client: c } = await start()
    c.channelData('first')
    await until(() => fromClient.length === 1)
    const burst = Array.from({ length: 30 }, (_, i) => `q-${i}`)
    // One synchronous burst: the relay (same event loop) reads the ChannelData and the Refresh in one batch; the fast
    // path queues the ChannelData, then the core deletes the allocation and closes its relay socket.
    for (const t of burst) c.channelData(t)
    const refreshed = await c.request(Method.Refresh, (b) => b.add(Lifetime, 0))
    expect(refreshed?.cls).to.equal(MessageClass.SuccessResponse)
    await until(() => fromClient.length === 1 + burst.length)
    expect(fromClient.slice(1)).to.deep.equal(burst)
  })

  it('forgets its entries when the configuration is reloaded (the policy may have changed)', async () => {
    const { server: s, client: c } = await start()
    c.channelData('first')
    await until(() => fromClient.length === 1)
    const calls = coreCalls.client
    c.channelData('fast')
    await until(() => fromClient.length === 2)
    expect(coreCalls.client).to.equal(calls)
    // 127.0.0.0/8 is no longer allowed: the peer is denied, and the next packet must meet the new policy in the core.
    await s.reload({ allowPeer: [] })
    c.channelData('denied')
    await until(() => coreCalls.client > calls)
    await sleep(100)
    expect(fromClient).to.deep.equal(['first', 'fast'])
    expect((s.metrics as InMemoryRelayMetrics).get('natkit_relay_dropped_total', 'denied-peer')).to.equal(1)
  })

  it('survives arbitrary bytes on both sides of an installed channel, and keeps relaying', async () => {
    const { client: c, peer: p, relayed } = await start()
    c.channelData('first')
    await until(() => fromClient.length === 1)
    // Deterministic pseudo-random datagrams (xorshift): every length 0..70, header-like first bytes half the time.
    let x = 0x9e3779b9
    const rnd = (): number => { x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0; return x }
    for (let i = 0; i < 600; i++) {
      const b = Buffer.alloc(i % 71)
      for (let j = 0; j < b.length; j++) b[j] = rnd() & 0xff
      if (i % 2 === 0 && b.length >= 4) { b[0] = 0x40; b[1] = i % 4 === 0 ? 0x00 : rnd() & 0xff; b.writeUInt16BE(rnd() % 80, 2) }
      c.socket.send(b, c.server)
      p.send(b, relayed)
      if (i % 50 === 0) await sleep(5)
    }
    await sleep(300)
    const seen = fromClient.length
    const back = c.fromServer.length
    c.channelData('still here')
    p.send(Buffer.from('and back'), relayed)
    await until(() => fromClient.length > seen && c.fromServer.length > back)
    expect(fromClient[fromClient.length - 1]).to.equal('still here')
    const last = c.fromServer[c.fromServer.length - 1]
    expect(last.subarray(4).toString()).to.equal('and back')
    // Everything the peer sent came back as well-formed ChannelData on the channel (§12.7).
    for (const b of c.fromServer) {
      expect(b.readUInt16BE(0)).to.equal(CHANNEL)
      expect(b.length).to.equal(4 + b.readUInt16BE(2))
    }
  })

  it('refuses bad install arguments without crashing: wrong types, bad ports and channels, unreachable families, closed sockets', async () => {
    const native = loadNativeUdp()
    const install = native?.fastInstall
    expect(install).to.be.a('function')
    const a = await BatchUdpSocket.bind({ address: '127.0.0.1' })
    const b = await BatchUdpSocket.bind({ address: '127.0.0.1' })
    try {
      const ok = { address: '127.0.0.1', port: 4000 }
      expect(a.fastInstall(ok, CHANNEL, b, ok, 1000)).to.equal(true)
      // An IPv6 peer cannot be reached from an IPv4 relay socket; a zero or negative time-to-live installs nothing.
      expect(a.fastInstall(ok, CHANNEL, b, { address: '2001:db8::1', port: 4000 }, 1000)).to.equal(false)
      expect(a.fastInstall(ok, CHANNEL, b, ok, 0)).to.equal(false)
      expect(a.fastInstall(ok, CHANNEL, b, ok, -5)).to.equal(false)
      // Bad ports, channels and addresses are refused (the addon throws a TypeError, the socket returns false).
      for (const [client, channel, peer] of [
        [{ address: '127.0.0.1', port: 0 }, CHANNEL, ok], [ok, 0x3fff, ok], [ok, 0x8000, ok], [ok, CHANNEL, { address: 'not-an-ip', port: 1 }],
        [ok, CHANNEL, { address: '127.0.0.1', port: 70000 }], [{ address: 'x'.repeat(200), port: 1 }, CHANNEL, ok]
      ] as Array<[Endpoint, number, Endpoint]>) {
        expect(a.fastInstall(client, channel, b, peer, 1000), JSON.stringify([client, channel, peer])).to.equal(false)
      }
      const handle = (a as unknown as { handle: object }).handle
      expect(() => install?.({}, '127.0.0.1', 1, CHANNEL, handle, '127.0.0.1', 1, 1)).to.throw(TypeError)
      expect(() => install?.(handle, '127.0.0.1', 1, CHANNEL, handle, '127.0.0.1', 1, Number.NaN)).to.throw(TypeError)
      await b.close()
      expect(a.fastInstall(ok, CHANNEL, b, ok, 1000), 'closed relay socket').to.equal(false)
    } finally { await a.close(); await b.close() }
  })

  describe('UDP GSO (runs of equal-size datagrams to one destination leave as one message)', () => {
    /** A payload of `size` bytes naming its index, so that order and boundaries can be checked. */
    const payload = (i: number, size: number): Buffer => {
      const b = Buffer.alloc(size, 0x61 + (i % 26))
      if (size >= 4) b.writeUInt32BE(i, 0)
      return b
    }
    // Sizes with runs (the kernel's rule: equal sizes, the last may be shorter), a lone size, an empty datagram, and a
    // run longer than one GSO message may carry (64).
    const sizes = [...Array(40).fill(100), 37, ...Array(25).fill(100), 0, ...Array(10).fill(1200), 512, ...Array(70).fill(60)] as number[]
    const back = [...Array(30).fill(100), ...Array(20).fill(500), 7, ...Array(3).fill(100)] as number[]

    type Stats = { sent: number, gsoMessages: number, gsoDatagrams: number }
    const socketsOf = (s: TurnServer): { listener: BatchUdpSocket, relay: BatchUdpSocket } => {
      const internals = s as unknown as { clientListeners: { udpSockets: () => unknown[] }, relays: { sockets: Map<string, { socket: unknown }> } }
      const listener = internals.clientListeners.udpSockets()[0]
      const relay = [...internals.relays.sockets.values()][0]?.socket
      expect(listener).to.be.instanceOf(BatchUdpSocket)
      expect(relay).to.be.instanceOf(BatchUdpSocket)
      return { listener: listener as BatchUdpSocket, relay: relay as BatchUdpSocket }
    }
    const delta = (a: Stats, b: Stats): Stats => ({ sent: b.sent - a.sent, gsoMessages: b.gsoMessages - a.gsoMessages, gsoDatagrams: b.gsoDatagrams - a.gsoDatagrams })

    /** Bursts both ways through an installed channel; what arrived, and the two sockets' send counters meanwhile. */
    async function bursts (): Promise<{ atPeer: Buffer[], atClient: Buffer[], relay: Stats, listener: Stats }> {
      const { server: s, client: c, peer: p, relayed } = await start()
      const atPeer: Buffer[] = []
      p.onMessage((d) => { atPeer.push(Buffer.from(d)) })
      c.channelData('first')
      await until(() => atPeer.length === 1)
      atPeer.length = 0
      const { listener, relay } = socketsOf(s)
      const [r0, l0] = [relay.stats(), listener.stats()]
      // Sent in one synchronous loop: the relay (same event loop) reads them all in one go.
      sizes.forEach((n, i) => { c.channelData(payload(i, n)) })
      await until(() => atPeer.length === sizes.length)
      back.forEach((n, i) => { p.send(payload(i, n), relayed) })
      await until(() => c.fromServer.length === back.length)
      await sleep(50)
      return { atPeer, atClient: c.fromServer, relay: delta(r0, relay.stats()), listener: delta(l0, listener.stats()) }
    }

    function expectIntact (r: { atPeer: Buffer[], atClient: Buffer[] }): void {
      expect(r.atPeer.map(b => b.length), 'datagram sizes at the peer, in order').to.deep.equal(sizes)
      r.atPeer.forEach((b, i) => { expect(b.equals(payload(i, sizes[i])), `datagram ${i} at the peer`).to.equal(true) })
      expect(r.atClient.map(b => b.length), 'ChannelData sizes at the client, in order').to.deep.equal(back.map(n => 4 + n))
      r.atClient.forEach((b, i) => {
        expect(b.readUInt16BE(0)).to.equal(CHANNEL)
        expect(b.readUInt16BE(2)).to.equal(back[i])
        expect(b.subarray(4).equals(payload(i, back[i])), `ChannelData ${i} at the client`).to.equal(true)
      })
    }

    it('relays every datagram intact and in order, most of them in GSO messages', async () => {
      const r = await bursts()
      expectIntact(r)
      expect(r.relay.sent, 'datagrams the relay socket sent').to.equal(sizes.length)
      expect(r.listener.sent, 'datagrams the listener sent').to.equal(back.length)
      // Runs: 41 (40 + a shorter one), 25 (the empty datagram goes alone), 11 (10 + a shorter one), 64 + 6 to the peer; 30, 21 (20 + a shorter one), 3 back to the client.
      expect(r.relay).to.deep.include({ gsoMessages: 5, gsoDatagrams: 147 })
      expect(r.listener).to.deep.include({ gsoMessages: 3, gsoDatagrams: 54 })
    })

    it('relays the same datagrams one by one when GSO is turned off (setGso(false))', async () => {
      const native = loadNativeUdp()
      expect(native?.setGso).to.be.a('function')
      const was = native?.setGso?.(false)
      try {
        const r = await bursts()
        expectIntact(r)
        expect(r.relay).to.deep.equal({ sent: sizes.length, gsoMessages: 0, gsoDatagrams: 0 })
        expect(r.listener).to.deep.equal({ sent: back.length, gsoMessages: 0, gsoDatagrams: 0 })
      } finally {
        native?.setGso?.(was ?? true)
      }
    })
  })

  it('is off with fastPath: false: every packet goes through the core', async () => {
    const { server: s, client: c } = await start({ fastPath: false })
    expect(s.fastPath).to.deep.equal({ enabled: false, reason: 'turned off' })
    const calls = coreCalls.client
    for (let i = 0; i < 10; i++) c.channelData(`n${i}`)
    await until(() => fromClient.length === 10)
    expect(fromClient).to.have.length(10)
    expect(coreCalls.client - calls).to.equal(10)
  })
})
