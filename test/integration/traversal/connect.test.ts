import { expect } from 'chai'
import { bindDatagramSocket } from '../../../src/net/native.js'
import type { DatagramSocket } from '../../../src/net/udp.js'
import { TurnServer } from '../../../src/relay/turn-server.js'
import { parseTurnUri } from '../../../src/relay/turn-uri.js'
import { ConnectError, channelPair, connect, type PeerSession, type ConnectOptions } from '../../../src/traversal/index.js'
import { expectRejection } from '../../support/assert.js'

/** Both sides of a connection on loopback. */
async function pair (a: Partial<ConnectOptions>, b: Partial<ConnectOptions>, delayMs = 2): Promise<[PeerSession, PeerSession]> {
  const [ca, cb] = channelPair(delayMs)
  return await Promise.all([
    connect({ bindAddress: '127.0.0.1', ...a, channel: ca, role: a.role ?? 'controlling' }),
    connect({ bindAddress: '127.0.0.1', ...b, channel: cb, role: b.role ?? 'controlled' })
  ])
}

async function exchange (from: PeerSession, to: PeerSession, count: number): Promise<number> {
  const seen = new Set<number>()
  const on = (d: Buffer): void => { if (d.length === 4) seen.add(d.readUInt32BE(0)) }
  to.on('message', on)
  for (let i = 0; i < count; i++) { const b = Buffer.alloc(4); b.writeUInt32BE(i); from.send(b) }
  const deadline = Date.now() + 2000
  while (seen.size < count && Date.now() < deadline) await new Promise(resolve => setTimeout(resolve, 10))
  to.off('message', on)
  return seen.size
}

describe('connect (loopback, real sockets)', function () {
  this.timeout(20_000)
  let turn: TurnServer
  let turnServers: ConnectOptions['turnServers']
  before(async () => {
    turn = await TurnServer.start({ listen: [{ address: '127.0.0.1', port: 0 }], realm: 'natkit.test', users: { u: 'p' }, allowPeer: ['127.0.0.0/8'] })
    turnServers = [{ server: `127.0.0.1:${turn.addresses.udp[0].port}`, credentials: { username: 'u', password: 'p' } }]
  })
  after(async () => { await turn?.close() })

  it('connects directly over host candidates and carries datagrams both ways', async () => {
    const [a, b] = await pair({ turnServers }, { turnServers })
    try {
      expect(a.path.type).to.equal('direct')
      expect(b.path.type).to.equal('direct')
      expect(await exchange(a, b, 100)).to.equal(100)
      expect(await exchange(b, a, 100)).to.equal(100)
      const r = a.report()
      expect(r.timings.firstDatagramMs).to.be.a('number')
      expect(r.timings.directMs).to.be.a('number')
      expect(r.localCandidates.map(c => c.type)).to.include.members(['host', 'relay'])
      expect(r.attempts.some(x => x.outcome === 'succeeded' && x.local.type === 'host' && x.remote.type === 'host')).to.equal(true)
    } finally { await a.close(); await b.close() }
  })

  it('carries raw application datagrams: the app\'s bytes are the datagram on the wire, RTP and DTLS included', async () => {
    const wire: Buffer[] = []
    const socket = await bindDatagramSocket({ address: '127.0.0.1' })
    const recording: DatagramSocket = {
      get local () { return socket.local },
      send: (data, to) => { wire.push(Buffer.from(data)); socket.send(data, to) },
      onMessage: (h) => { socket.onMessage(h) },
      close: async () => { await socket.close() }
    }
    const [a, b] = await pair({ socket: recording }, {})
    try {
      const payloads = [
        Buffer.from('80e0000100000064cafebabe0102030405', 'hex'), // RTP, PT 96, marker
        Buffer.from('81c80006cafebabe', 'hex'), // RTCP sender report header
        Buffer.from('16fefd00000000000000000001', 'hex'), // DTLS 1.2 handshake record
        Buffer.from('0001000c0000000000000000', 'hex'), // first byte 0 but not STUN (no magic cookie)
        Buffer.from([0xff, 0x00])
      ]
      const got: Buffer[] = []
      b.on('message', (d) => { got.push(d) })
      for (const p of payloads) expect(a.send(p)).to.equal(true)
      const deadline = Date.now() + 2000
      while (got.length < payloads.length && Date.now() < deadline) await new Promise(resolve => setTimeout(resolve, 10))
      expect(got.map(d => d.toString('hex')).sort()).to.deep.equal(payloads.map(d => d.toString('hex')).sort())
      for (const p of payloads) expect(wire.some(w => w.equals(p)), `sent as is: ${p.toString('hex')}`).to.equal(true)
      const back: Buffer[] = []
      a.on('message', (d) => { back.push(d) })
      expect(b.send(payloads[0])).to.equal(true)
      const until = Date.now() + 2000
      while (back.length < 1 && Date.now() < until) await new Promise(resolve => setTimeout(resolve, 10))
      expect(back.map(d => d.toString('hex'))).to.deep.equal([payloads[0].toString('hex')])
    } finally { await a.close(); await b.close(); await socket.close() }
  })

  it('goes through the relay when only relayed candidates are allowed', async () => {
    const [a, b] = await pair({ turnServers, policy: 'relay' }, { turnServers, policy: 'relay' })
    try {
      expect(a.path.type).to.equal('relay')
      expect(a.path.local.type).to.equal('relay')
      expect(await exchange(a, b, 100)).to.equal(100)
      expect(await exchange(b, a, 100)).to.equal(100)
      expect(turn.stats().allocations).to.equal(2)
    } finally { await a.close(); await b.close() }
    expect(turn.stats().allocations).to.equal(0)
  })

  it('finds TURN over TCP by itself when UDP to the relay is blocked (turn: URI without ?transport), trickling the relayed candidate', async () => {
    const port = turn.addresses.udp[0].port
    expect(turn.addresses.tcp.map(e => e.port)).to.include(port)
    // The blocked side's socket drops every datagram to and from the relay's UDP port: only TCP reaches it.
    const socket = await bindDatagramSocket({ address: '127.0.0.1' })
    const blocked = (e: { port: number }): boolean => e.port === port
    const firewalled: DatagramSocket = {
      get local () { return socket.local },
      send: (data, to) => { if (!blocked(to)) socket.send(data, to) },
      onMessage: (h) => { socket.onMessage((d, from) => { if (!blocked(from)) h(d, from) }) },
      close: async () => { await socket.close() }
    }
    const uri = parseTurnUri(`turn:127.0.0.1:${port}`)
    expect(uri.tcpFallback).to.equal(true)
    const config = { ...uri, credentials: { username: 'u', password: 'p' } }
    const started = performance.now()
    let firstDatagramMs: number | undefined
    const [ca, cb] = channelPair(2)
    const bSide = connect({ bindAddress: '127.0.0.1', channel: cb, role: 'controlled' })
    const [a, b] = await Promise.all([
      connect({ socket: firewalled, channel: ca, role: 'controlling', policy: 'relay', turnServers: [config] }),
      bSide
    ])
    try {
      b.on('message', () => { firstDatagramMs ??= performance.now() - started })
      const deadline = Date.now() + 3000
      while (firstDatagramMs === undefined && Date.now() < deadline) { a.send(Buffer.from([0x80, 0])); await new Promise(resolve => setTimeout(resolve, 5)) }
      expect(firstDatagramMs, 'a datagram arrived').to.be.a('number')
      expect(a.path.type).to.equal('relay')
      const relay = a.report().gathering.filter(g => g.kind === 'relay')
      expect(relay.find(g => g.server.endsWith('over TCP'))?.ok, JSON.stringify(relay)).to.equal(true)
      expect(relay.find(g => g.server.endsWith('over UDP'))?.ok ?? false).to.equal(false)
      console.error(`      time from connect() to the first datagram over TURN/TCP (UDP blocked): ${firstDatagramMs?.toFixed(0)} ms`)
    } finally { await a.close(); await b.close(); await socket.close() }
  })

  it('resolves a role conflict (both controlling) with 487 and still connects', async () => {
    const [a, b] = await pair({ role: 'controlling' }, { role: 'controlled', iceRole: 'controlling' })
    try {
      expect([a.agent.role, b.agent.role].sort()).to.deep.equal(['controlled', 'controlling'])
      expect(await exchange(a, b, 20)).to.equal(20)
    } finally { await a.close(); await b.close() }
  })

  it('records auth failures and gives up with ConnectError when the peer\'s password is wrong', async () => {
    const [ca, cb] = channelPair(1)
    // Both channels rewrite the password in transit: every check either side sends fails the other's integrity check.
    const tamper = (c: typeof ca): typeof ca => ({ ...c, subscribe: (h: (m: unknown) => void) => c.subscribe((m) => { const x = m as { t?: string }; h(x.t === 'natkit/offer' || x.t === 'natkit/answer' ? { ...x, pwd: 'wrong-password-wrong-password' } : m) }) })
    const results = await Promise.allSettled([
      connect({ bindAddress: '127.0.0.1', channel: tamper(ca), role: 'controlling', timeoutMs: 3000, checkRetransmit: { rtoMs: 50, rc: 3, rm: 2 } }),
      connect({ bindAddress: '127.0.0.1', channel: tamper(cb), role: 'controlled', timeoutMs: 3000, checkRetransmit: { rtoMs: 50, rc: 3, rm: 2 } })
    ])
    for (const r of results) if (r.status === 'fulfilled') await r.value.close()
    for (const r of results) {
      expect(r.status).to.equal('rejected')
      const err = (r as PromiseRejectedResult).reason as ConnectError
      expect(err).to.be.instanceOf(ConnectError)
      expect(err.report.attempts.some(x => x.outcome === 'auth-failed')).to.equal(true)
    }
  })

  it('fails fast with ConnectError when the peer never answers', async () => {
    const [ca] = channelPair(1)
    const started = Date.now()
    const err = await expectRejection(connect({ bindAddress: '127.0.0.1', channel: ca, role: 'controlling', timeoutMs: 1000 }), ConnectError)
    expect(Date.now() - started).to.be.below(3000)
    expect(err.message).to.match(/no answer from the peer/)
  })
})
