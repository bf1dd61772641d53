import { expect } from 'chai'
import { InvalidArgumentError } from '../../../src/errors.js'
import { SimNetwork, SimStunServer, SimTurnServer, natPreset, type SimHost } from '../../../src/sim/index.js'
import {
  parseSprayAnnouncement, planSpray, resolveSprayOptions, samplePorts, sprayMappingOf, type SprayAnnouncement
} from '../../../src/traversal/spray-plan.js'
import { channelPair, connect, type ConnectOptions, type PeerSession, type SignalMessage } from '../../../src/traversal/index.js'

const announce = (o: Partial<SprayAnnouncement>): SprayAnnouncement => ({
  mapping: 'random', address: '198.51.100.1', port: null, sockets: 256, probes: 2048, rate: 1000, portRange: [1024, 65535], ...o
})
const cone = announce({ mapping: 'endpoint-independent', address: '192.0.2.1', port: 40000 })
const sym = announce({})

describe('birthday spray: planSpray', () => {
  it('gives the symmetric-random side the sockets, aimed at the cone\'s public endpoint', () => {
    const p = planSpray(sym, cone)
    if (!p.applicable) throw new Error(p.why)
    expect(p.role).to.equal('sockets')
    expect(p.target).to.deep.equal({ address: '192.0.2.1', port: 40000 })
    expect(p.sockets).to.equal(256)
    expect(p.probes).to.equal(2048)
    expect(p.probability).to.be.closeTo(1 - Math.pow(1 - 256 / 64512, 2048), 1e-12)
  })
  it('gives the cone side the probes, aimed at the symmetric side\'s address, with the same probability', () => {
    const p = planSpray(cone, sym)
    const q = planSpray(sym, cone)
    if (!p.applicable || !q.applicable) throw new Error('not applicable')
    expect(p.role).to.equal('probes')
    expect(p.target.address).to.equal('198.51.100.1')
    expect(p.probability).to.equal(q.probability)
  })
  it('takes N from the symmetric side, M from the cone side and R from the symmetric side\'s range', () => {
    const p = planSpray(cone, { ...sym, sockets: 64, portRange: [40000, 40999] })
    if (!p.applicable) throw new Error(p.why)
    expect(p.sockets).to.equal(64)
    expect(p.probability).to.be.closeTo(1 - Math.pow(1 - 64 / 1000, 2048), 1e-12)
  })
  const cases: Array<{ name: string, self: SprayAnnouncement, peer: SprayAnnouncement, why: RegExp }> = [
    { name: 'both endpoint-independent', self: cone, peer: { ...cone, address: '198.51.100.1' }, why: /ordinary hole punching/ },
    { name: 'both random', self: sym, peer: { ...sym, address: '192.0.2.1' }, why: /cannot meet/ },
    { name: 'sequential ports', self: announce({ mapping: 'sequential' }), peer: cone, why: /port prediction/ },
    { name: 'an unknown mapping', self: cone, peer: announce({ mapping: 'unknown' }), why: /peer's mapping is unknown/ },
    { name: 'no public address', self: announce({ address: null }), peer: cone, why: /public address is unknown/ },
    { name: 'no public port on the cone side', self: sym, peer: { ...cone, port: null }, why: /no public port/ }
  ]
  for (const c of cases) {
    it(`is not applicable for ${c.name}`, () => {
      const p = planSpray(c.self, c.peer)
      expect(p.applicable).to.equal(false)
      if (!p.applicable) expect(p.why).to.match(c.why)
    })
  }
})

describe('birthday spray: helpers', () => {
  it('samples distinct ports within the range', () => {
    const ports = samplePorts([1024, 65535], 2048)
    expect(ports).to.have.length(2048)
    expect(new Set(ports).size).to.equal(2048)
    expect(ports.every(p => p >= 1024 && p <= 65535)).to.equal(true)
    expect(new Set(samplePorts([5000, 5009], 100))).to.deep.equal(new Set([5000, 5001, 5002, 5003, 5004, 5005, 5006, 5007, 5008, 5009]))
  })
  it('maps the measurement\'s reason codes to mappings', () => {
    expect(sprayMappingOf({ reason: 'endpoint-independent' })).to.equal('endpoint-independent')
    expect(sprayMappingOf({ reason: 'not-sequential' })).to.equal('random')
    expect(sprayMappingOf({ reason: 'predicted' })).to.equal('sequential')
    expect(sprayMappingOf({ reason: 'too-few-samples' })).to.equal('unknown')
  })
  it('parses a peer\'s announcement, clamping counts to natkit\'s caps', () => {
    expect(parseSprayAnnouncement(JSON.parse(JSON.stringify(cone)))).to.deep.equal(cone)
    expect(parseSprayAnnouncement({ ...sym, sockets: 1e6, probes: 1e9, rate: 1e9 })).to.include({ sockets: 1024, probes: 8192, rate: 10000 })
  })
  const bad: Array<[string, unknown]> = [
    ['null', null], ['a string', 'random'], ['an unknown mapping', { ...sym, mapping: 'weird' }], ['a host name', { ...sym, address: 'example.com' }],
    ['port 0', { ...cone, port: 0 }], ['no sockets', { ...sym, sockets: 0 }], ['a fractional rate', { ...sym, rate: 1.5 }],
    ['a reversed range', { ...sym, portRange: [6000, 5000] }], ['a range past 65535', { ...sym, portRange: [1, 70000] }], ['no range', { ...sym, portRange: undefined }]
  ]
  for (const [name, raw] of bad) {
    it(`rejects an announcement with ${name}`, () => { expect(parseSprayAnnouncement(raw)).to.equal(undefined) })
  }
  it('checks the options', () => {
    expect(resolveSprayOptions({})).to.include({ sockets: 256, probes: 2048, rate: 1000, waitMs: 3000 })
    for (const o of [{ sockets: 0 }, { sockets: 2000 }, { probes: 9000 }, { rate: 5 }, { rate: 1.5 }, { portRange: [2000, 1000] as [number, number] }]) {
      expect(() => resolveSprayOptions(o), JSON.stringify(o)).to.throw(InvalidArgumentError)
    }
  })
})

/**
 * End to end on the simulator: a symmetric NAT with random ports (from a 1000-port range, so a test run takes a fraction
 * of a second) × a port-restricted cone. Without the spray the pair relays; with it at both ends it goes direct over a
 * spray socket, both reports naming the spray and its probability, and every other spray socket is closed.
 */
describe('birthday spray on the NAT simulator', function () {
  this.timeout(30_000)
  const TURN_IP = '203.0.113.10'
  const RANGE: [number, number] = [40000, 40999]

  async function world (): Promise<{ net: SimNetwork, hosts: [SimHost, SimHost], close: () => Promise<void> }> {
    const net = new SimNetwork({ latencyMs: 2, seed: 11 })
    const turn = await SimTurnServer.start(net.addHost(TURN_IP), { users: { sim: 'sim-pass' } })
    const stun = await SimStunServer.start(net.addHost('203.0.113.20'), { alternate: { host: net.addHost('203.0.113.21') } })
    const a = net.addHost('10.0.1.10', { behind: net.addNat('nat-a', '198.51.100.1', { ...natPreset('symmetric'), portRange: RANGE }) })
    const b = net.addHost('10.0.2.10', { behind: net.addNat('nat-b', '192.0.2.1', natPreset('port-restricted-cone')) })
    return { net, hosts: [a, b], close: async () => { await turn.close(); await stun.close(); await net.close() } }
  }

  async function connectBoth (hosts: [SimHost, SimHost], extra: (h: SimHost) => Partial<ConnectOptions>, sent: SignalMessage[] = []): Promise<[PeerSession, PeerSession]> {
    const [ca, cb] = channelPair(3)
    const spy = (c: typeof ca): typeof ca => ({ subscribe: c.subscribe, send: (m) => { sent.push(m); return c.send(m) } })
    const [sa, sb] = await Promise.all([hosts[0].bind(), hosts[1].bind()])
    const common = (h: SimHost): Partial<ConnectOptions> => ({
      stunServers: ['203.0.113.20:3478'],
      turnServers: [{ server: `${TURN_IP}:3478`, credentials: { username: 'sim', password: 'sim-pass' } }],
      gatherTimeoutMs: 800,
      timeoutMs: 8000,
      ...extra(h)
    })
    return await Promise.all([
      connect({ ...common(hosts[0]), socket: sa, channel: spy(ca), role: 'controlling' }),
      connect({ ...common(hosts[1]), socket: sb, channel: spy(cb), role: 'controlled' })
    ])
  }

  it('relays without the spray', async () => {
    const w = await world()
    const [sa, sb] = await connectBoth(w.hosts, () => ({}))
    try {
      await Promise.all([sa.settle(2000), sb.settle(2000)])
      expect(sa.path.type).to.equal('relay')
      expect(sa.report().gathering.some(g => g.kind === 'spray')).to.equal(false)
    } finally { await sa.close(); await sb.close(); await w.close() }
  })

  it('goes direct with the spray at both ends, and reports the technique and its probability', async () => {
    const w = await world()
    const bound: Array<{ closed: boolean }> = []
    const sent: SignalMessage[] = []
    const [sa, sb] = await connectBoth(w.hosts, (h) => ({
      birthdaySpray: {
        sockets: 64,
        portRange: h === w.hosts[0] ? RANGE : undefined,
        rate: 2000,
        bind: async () => {
          const s = await h.bind()
          const rec = { closed: false }
          bound.push(rec)
          const close = s.close.bind(s)
          s.close = async () => { rec.closed = true; await close() }
          return s
        }
      }
    }), sent)
    try {
      await Promise.all([sa.settle(4000), sb.settle(4000)])
      // Each side's spray notices the direct path on its next tick (10 ms).
      for (let i = 0; i < 100 && [sa, sb].some(s => s.agent.birthdaySpray?.report.state === 'running'); i++) await new Promise(resolve => setTimeout(resolve, 20))
      const ra = sa.report(); const rb = sb.report()
      const where = JSON.stringify({ a: ra.gathering, b: rb.gathering })
      expect(sa.path.type, where).to.equal('direct')
      expect(sb.path.type, where).to.equal('direct')
      const ga = ra.gathering.find(g => g.kind === 'spray')
      const gb = rb.gathering.find(g => g.kind === 'spray')
      expect(ga?.reason, where).to.equal('spray-hit')
      expect(gb?.reason, where).to.equal('spray-hit')
      expect(ga?.probability).to.be.closeTo(1 - Math.pow(1 - 64 / 1000, 2048), 1e-9)
      expect(gb?.probability).to.equal(ga?.probability)
      // A's path leaves from the spray socket that won; B reaches A's public address on a port it probed.
      const spray = sa.agent.birthdaySpray?.report
      expect(spray?.role).to.equal('sockets')
      expect(sa.path.local.port).to.equal(spray?.hitPort)
      expect(sb.path.remote.address).to.equal('198.51.100.1')
      expect(sb.agent.birthdaySpray?.report.hitPort).to.equal(sb.path.remote.port)
      expect(sb.agent.birthdaySpray?.report.packets).to.be.within(1, 2048)
      // Every spray socket but the winner is closed; the announcements went through signalling.
      expect(bound.filter(b => !b.closed)).to.have.length(1)
      expect(sent.filter(m => m.t === 'natkit/spray')).to.have.length(2)
    } finally { await sa.close(); await sb.close(); await w.close() }
    expect(bound.every(b => b.closed)).to.equal(true)
  })

  it('sprays nowhere but at the peer: an announced address none of its candidates has ends it unsent', async () => {
    const w = await world()
    const [ca, cb] = channelPair(3)
    // Signalling rewrites every announcement to a third party's address.
    const lie = (c: typeof ca): typeof ca => ({ subscribe: c.subscribe, send: (m) => c.send(m.t === 'natkit/spray' ? { ...m, spray: { ...m.spray, address: '203.0.113.99' } } : m) })
    const [sa0, sb0] = await Promise.all([w.hosts[0].bind(), w.hosts[1].bind()])
    const common: Partial<ConnectOptions> = {
      stunServers: ['203.0.113.20:3478'], turnServers: [{ server: `${TURN_IP}:3478`, credentials: { username: 'sim', password: 'sim-pass' } }], gatherTimeoutMs: 800, timeoutMs: 8000
    }
    const [sa, sb] = await Promise.all([
      connect({ ...common, birthdaySpray: { sockets: 16, waitMs: 300, bind: async () => await w.hosts[0].bind() }, socket: sa0, channel: lie(ca), role: 'controlling' }),
      connect({ ...common, birthdaySpray: { waitMs: 300 }, socket: sb0, channel: lie(cb), role: 'controlled' })
    ])
    try {
      for (let i = 0; i < 100 && [sa, sb].some(s => !s.report().gathering.some(g => g.kind === 'spray')); i++) await new Promise(resolve => setTimeout(resolve, 20))
      for (const s of [sa, sb]) {
        const g = s.report().gathering.find(x => x.kind === 'spray')
        expect(g?.reason, JSON.stringify(g)).to.equal('spray-not-applicable')
        expect(g?.detail).to.match(/announced 203\.0\.113\.99, which none of its candidates has/)
        expect(s.agent.birthdaySpray?.report.packets).to.equal(0)
      }
    } finally { await sa.close(); await sb.close(); await w.close() }
  })

  it('says not applicable, and sends nothing, when only one side turns it on', async () => {
    const w = await world()
    const [sa, sb] = await connectBoth(w.hosts, (h) => h === w.hosts[0] ? { birthdaySpray: { waitMs: 300 } } : {})
    try {
      await new Promise(resolve => setTimeout(resolve, 500))
      const g = sa.report().gathering.find(x => x.kind === 'spray')
      expect(g?.reason).to.equal('spray-not-applicable')
      expect(g?.detail).to.match(/peer announced no spray/)
      expect(sa.agent.birthdaySpray?.report.packets).to.equal(0)
      expect(sa.path.type).to.equal('relay')
    } finally { await sa.close(); await sb.close(); await w.close() }
  })
})
