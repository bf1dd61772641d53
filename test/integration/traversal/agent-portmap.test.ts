/**
 * The agent's port-mapped candidate against the loopback PCP/NAT-PMP gateway (test/integration/portmap/fake-gateway):
 * offered as srflx above the STUN-learned ones, trickled after the host candidates, removed from the gateway on close,
 * and never asked for unless the option is on. Nothing here leaves loopback (UPnP's SSDP multicast is never tried).
 */
import { expect } from 'chai'
import { createSocket, type Socket } from 'node:dgram'
import { PortMapper } from '../../../src/portmap/mapper.js'
import { Agent, candidatePriority, type Candidate } from '../../../src/traversal/index.js'
import { FakeGateway } from '../portmap/fake-gateway.js'

const nextCandidate = async (agent: Agent, ms: number): Promise<Candidate | undefined> => await new Promise((resolve) => {
  const t = setTimeout(() => { resolve(undefined) }, ms)
  agent.once('candidate', (c) => { clearTimeout(t); resolve(c) })
})

describe('Agent: port-mapped candidate (loopback gateway)', function () {
  this.timeout(20_000)
  let gw: FakeGateway
  beforeEach(async () => { gw = await FakeGateway.start('198.51.100.1') })
  afterEach(async () => { await gw.close() })

  it('trickles a srflx candidate for the granted mapping, ranked above STUN srflx and below host, and removes the mapping on close', async () => {
    const agent = await Agent.create({ bindAddress: '127.0.0.1', portMapping: { gateway: '127.0.0.1', localIp: '127.0.0.1', port: gw.port, protocols: ['pcp', 'nat-pmp'], lifetimeS: 60 } })
    try {
      const host = await agent.gather({ trickle: true })
      expect(host.map(c => c.type), 'gather returns the host candidates at once').to.deep.equal(['host'])
      const c = await nextCandidate(agent, 5000)
      expect(c).to.include({ type: 'srflx', address: '198.51.100.1', port: agent.mux.socket.local.port })
      expect(c?.related).to.deep.equal({ address: '127.0.0.1', port: agent.mux.socket.local.port })
      expect(c?.priority).to.be.above(candidatePriority('srflx', 65534)).and.below(host[0].priority)
      expect(agent.portMappedCandidate).to.deep.equal(c)
      expect(gw.live().map(m => m.internalPort)).to.deep.equal([agent.mux.socket.local.port])
      const attempt = agent.gatherAttempts.find(a => a.kind === 'portmap')
      expect(attempt?.ok).to.equal(true)
    } finally {
      await agent.close()
    }
    expect(gw.live(), 'the mapping is gone after close').to.deep.equal([])
    expect(gw.requests.some(r => r.lifetimeS === 0), 'a delete request was sent').to.equal(true)
  })

  it('without a grant: the attempt is reported, no candidate, gathering still completes', async () => {
    // A socket that never answers stands in for a gateway that speaks neither protocol.
    const silent = createSocket('udp4')
    await new Promise<void>((resolve) => silent.bind(0, '127.0.0.1', resolve))
    const agent = await Agent.create({ bindAddress: '127.0.0.1', gatherTimeoutMs: 600, portMapping: { gateway: '127.0.0.1', localIp: '127.0.0.1', port: silent.address().port, protocols: ['pcp', 'nat-pmp'] } })
    try {
      const complete = new Promise<void>((resolve) => agent.once('gathering-complete', resolve))
      await agent.gather({ trickle: true })
      await complete
      expect(agent.local.map(c => c.type)).to.deep.equal(['host'])
      expect(agent.portMappedCandidate).to.equal(undefined)
      const attempt = agent.gatherAttempts.find(a => a.kind === 'portmap')
      expect(attempt?.ok).to.equal(false)
      expect(attempt?.detail).to.match(/granted no mapping/)
    } finally {
      await agent.close()
      await new Promise<void>((resolve) => silent.close(() => { resolve() }))
    }
  })

  it('is off by default: no request reaches the gateway and no portmap attempt is made', async () => {
    for (const portMapping of [undefined, false] as const) {
      const agent = await Agent.create({ bindAddress: '127.0.0.1', gatherTimeoutMs: 300, ...(portMapping === false ? { portMapping } : {}) })
      try {
        await agent.gather()
        expect(agent.gatherAttempts.filter(a => a.kind === 'portmap'), String(portMapping)).to.deep.equal([])
        expect(agent.portMappedCandidate).to.equal(undefined)
      } finally {
        await agent.close()
      }
    }
    expect(gw.requests).to.deep.equal([])
  })
})

describe('PortMapper eager: the first grant wins', function () {
  this.timeout(20_000)
  let gw: FakeGateway
  let proxy: Socket
  // Between client and gateway: NAT-PMP passes, PCP (version 2) is dropped, so PCP stays silent until its deadline.
  beforeEach(async () => {
    gw = await FakeGateway.start('198.51.100.1')
    proxy = createSocket('udp4')
    const clients = new Map<string, { address: string, port: number }>()
    const upstream = createSocket('udp4')
    await new Promise<void>((resolve) => upstream.bind(0, '127.0.0.1', resolve))
    proxy.on('message', (d, r) => {
      if (d[0] !== 0) return
      clients.set('last', { address: r.address, port: r.port })
      upstream.send(d, gw.port, '127.0.0.1')
    })
    upstream.on('message', (d) => { const c = clients.get('last'); if (c !== undefined) proxy.send(d, c.port, c.address) })
    proxy.on('close', () => { upstream.close() })
    await new Promise<void>((resolve) => proxy.bind(0, '127.0.0.1', resolve))
  })
  afterEach(async () => {
    await new Promise<void>((resolve) => proxy.close(() => { resolve() }))
    await gw.close()
  })

  it('takes the NAT-PMP grant while PCP is still unanswered, and close removes it', async () => {
    const timeoutMs = 4000
    const started = performance.now()
    const m = await PortMapper.map({ transport: 'udp', internalPort: 40100, lifetimeS: 30 }, { gateway: '127.0.0.1', localIp: '127.0.0.1', port: proxy.address().port, timeoutMs, protocols: ['pcp', 'nat-pmp'], eager: true })
    const tookMs = performance.now() - started
    expect(m.mapping.protocol).to.equal('nat-pmp')
    expect(tookMs, 'resolved before the silent PCP attempt ended').to.be.below(timeoutMs)
    expect(gw.live().map(x => x.internalPort)).to.deep.equal([40100])
    await m.close()
    expect(gw.live()).to.deep.equal([])
  })
})
