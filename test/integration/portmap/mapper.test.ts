import { expect } from 'chai'
import { fileURLToPath } from 'node:url'
import { PortMapError } from '../../../src/errors.js'
import { PortMapper } from '../../../src/portmap/mapper.js'
import { probePortMapping } from '../../../src/portmap/probe.js'
import { start } from '../../support/process.js'
import { FakeGateway } from './fake-gateway.js'

const CHILD = fileURLToPath(new URL('./mapper-child.js', import.meta.url))

describe('PortMapper against a PCP/NAT-PMP gateway on loopback', function () {
  this.timeout(20_000)
  let gw: FakeGateway
  const opts = (): { gateway: string, localIp: string, port: number, timeoutMs: number } => ({ gateway: '127.0.0.1', localIp: '127.0.0.1', port: gw.port, timeoutMs: 800 })
  beforeEach(async () => { gw = await FakeGateway.start() })
  afterEach(async () => { await gw.close() })

  it('asks PCP and NAT-PMP at once, keeps the PCP grant (the gateway\'s one table entry both share), and removes it on close', async () => {
    const m = await PortMapper.map({ transport: 'udp', internalPort: 40000, lifetimeS: 30 }, { ...opts(), protocols: ['pcp', 'nat-pmp'] })
    expect(m.mapping).to.include({ protocol: 'pcp', externalPort: 40000, externalIp: '198.51.100.1', lifetimeS: 30 })
    // Both protocols asked (one table entry); the NAT-PMP grant is that same entry, so it was not removed.
    expect(gw.requests.map((r) => `${r.protocol} ${r.lifetimeS}`).sort()).to.deep.equal(['nat-pmp 30', 'pcp 30'])
    expect(gw.live().map((x) => x.internalPort)).to.deep.equal([40000])
    await m.close()
    await m.close()
    expect(gw.live()).to.deep.equal([])
    expect(gw.requests.filter((r) => r.protocol === 'pcp').map((r) => r.lifetimeS)).to.deep.equal([30, 0])
    expect(gw.requests.filter((r) => r.protocol === 'nat-pmp').map((r) => r.lifetimeS)).to.deep.equal([30])
  })

  for (const eager of [false, true]) {
    it(`a gateway whose one entry belongs to the protocol that asked last (miniupnpd): renews and removes through that protocol${eager ? ' (eager)' : ''}`, async () => {
      gw.lastWriterOwns = true
      const m = await PortMapper.map({ transport: 'udp', internalPort: 40010, lifetimeS: 30 }, { ...opts(), protocols: ['pcp', 'nat-pmp'], eager })
      const owner = gw.live()[0]?.protocol
      expect(owner).to.be.oneOf(['pcp', 'nat-pmp'])
      const errors: Error[] = []
      m.on('error', (e) => { errors.push(e) })
      await m.renew()
      expect(errors.map((e) => e.message)).to.deep.equal([])
      expect(m.mapping.protocol, 'renewed through the owner').to.equal(owner)
      expect(gw.live().map((x) => x.internalPort)).to.deep.equal([40010])
      await m.close()
      expect(gw.live(), 'removed through the owner').to.deep.equal([])
    })
  }

  it('a gateway that refuses the winner\'s removal and has no other grant of the entry: close leaves it to the lease', async () => {
    gw.lastWriterOwns = true
    const m = await PortMapper.map({ transport: 'udp', internalPort: 40012, lifetimeS: 30 }, { ...opts(), protocols: ['pcp'] })
    // Another program on this host takes the entry over with NAT-PMP: PCP may no longer remove it, and nothing else can.
    const other = await PortMapper.map({ transport: 'udp', internalPort: 40012, lifetimeS: 30 }, { ...opts(), protocols: ['nat-pmp'] })
    await m.close()
    expect(gw.live().map((x) => x.protocol)).to.deep.equal(['nat-pmp'])
    await other.close()
    expect(gw.live()).to.deep.equal([])
  })

  it('renews at half the lifetime and notices a restarted gateway by its epoch, re-creating the mapping', async () => {
    let clock = 0
    const m = await PortMapper.map({ transport: 'udp', internalPort: 40001, lifetimeS: 2 }, { ...opts(), protocols: ['nat-pmp'], now: () => clock })
    const renewals: boolean[] = []
    m.on('renewed', (_mapping, restarted) => renewals.push(restarted))
    clock += 1000
    await m.renew()
    // The gateway reboots: table gone, epoch back near 0 while our clock says 10 s more went by.
    gw.epochStart = Date.now() - 60_000
    clock += 1000
    await m.renew()
    gw.restart()
    expect(gw.live()).to.deep.equal([])
    clock += 10_000
    await m.renew()
    expect(renewals).to.deep.equal([false, true, true])
    expect(gw.live().map((x) => x.internalPort)).to.deep.equal([40001])
    await m.close()
    expect(gw.live()).to.deep.equal([])
  })

  it('renews on its own timer before the lease runs out', async () => {
    const m = await PortMapper.map({ transport: 'udp', internalPort: 40002, lifetimeS: 2 }, { ...opts(), protocols: ['pcp'] })
    const renewed = new Promise((resolve) => m.once('renewed', resolve))
    await renewed
    await new Promise((resolve) => setTimeout(resolve, 1500))
    expect(gw.live().map((x) => x.internalPort), 'alive past the first 2 s lease').to.deep.equal([40002])
    await m.close()
  })

  it('rejects with every protocol\'s reason when none grants', async () => {
    await gw.close()
    gw = await FakeGateway.start()
    const silent = gw.port
    await gw.close()
    gw = await FakeGateway.start()
    let err: unknown
    try { await PortMapper.map({ transport: 'udp', internalPort: 40003, lifetimeS: 30 }, { ...opts(), port: silent, protocols: ['pcp', 'nat-pmp'] }) } catch (e) { err = e }
    expect(err).to.be.instanceOf(PortMapError)
    expect((err as PortMapError).reasons).to.deep.equal({ pcp: 'no answer', 'nat-pmp': 'no answer' })
  })

  it('a probe reports what each protocol granted and removes every mapping', async () => {
    const r = await probePortMapping({ gateway: '127.0.0.1', port: gw.port, timeoutMs: 800, protocols: ['pcp', 'nat-pmp'], map: { transport: 'udp', internalPort: 40004, lifetimeS: 30 } })
    // probePortMapping asks the kernel for the local address towards the gateway: on loopback, 127.0.0.1.
    expect(r.localIp).to.equal('127.0.0.1')
    expect(r.speaks).to.deep.equal(['pcp', 'nat-pmp'])
    expect(r.externalIp).to.equal('198.51.100.1')
    // One internal port per protocol (a gateway's one table would merge two mappings of one port).
    expect(r.protocols.map((p) => [p.protocol, p.mapping?.externalPort, p.removed])).to.deep.equal([['pcp', 40004, true], ['nat-pmp', 40005, true]])
    for (const port of [40004, 40005]) expect(gw.requests.filter((q) => q.internalPort === port).map((q) => q.lifetimeS).sort((x, y) => x - y)).to.deep.equal([0, 30])
    expect(gw.live()).to.deep.equal([])
  })

  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    it(`removes the mapping when the process gets ${signal}`, async () => {
      const child = await start(process.execPath, [CHILD, String(gw.port)], { ready: /mapped \d+/, timeoutMs: 8000 })
      expect(gw.live().map((x) => x.internalPort)).to.deep.equal([45000])
      const exited = new Promise<NodeJS.Signals | null>((resolve) => child.child.once('exit', (_code, sig) => { resolve(sig) }))
      child.child.kill(signal)
      expect(await exited).to.equal(signal)
      expect(gw.live()).to.deep.equal([])
    })
  }
})
