import { expect } from 'chai'
import { TurnServer } from '../../../src/relay/turn-server.js'
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
