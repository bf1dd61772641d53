import { expect } from 'chai'
import { discoverNat, type NatReport, type NatType } from '../../../src/discovery/index.js'
import type { HostInterfaces } from '../../../src/net/interfaces.js'
import {
  SimNetwork, SimStunServer, natPreset, type SimBehaviour, type SimHost, type SimNatOptions
} from '../../../src/sim/index.js'

/**
 * discoverNat itself (every phase: reach, RFC 5780 mapping and filtering, hairpinning, port allocation, lifetime lower
 * bound) run on the in-process NAT simulator, through its socket and interface seams: every RFC 4787 behaviour, with
 * and without packet loss, on any machine, without root.
 */

const NAT_IP = '192.0.2.1'
const IP1 = '203.0.113.10'
const IP2 = '203.0.113.11'
const BEHAVIOURS: SimBehaviour[] = ['endpoint-independent', 'address-dependent', 'address-and-port-dependent']

/** The classic label each mapping × filtering pair must get, stated from RFC 3489's definitions. */
function expectedType (mapping: SimBehaviour, filtering: SimBehaviour): NatType {
  if (mapping !== 'endpoint-independent') return 'symmetric'
  return ({ 'endpoint-independent': 'full-cone', 'address-dependent': 'restricted-cone', 'address-and-port-dependent': 'port-restricted-cone' } as const)[filtering]
}

/** The simulated host's interfaces: its one (private) address, no IPv6. */
function simInterfaces (host: SimHost): HostInterfaces {
  return { addresses: () => [host.ip], hasGlobalIPv6: () => false, sourceAddressFor: async () => host.ip }
}

/** discoverNat from a host behind a NAT with `nat` options (or on the internet), against an RFC 5780 server. */
async function discoverThrough (nat: SimNatOptions | undefined, o: { loss?: number, seed?: number } = {}): Promise<{ report: NatReport, net: SimNetwork }> {
  const net = new SimNetwork({ latencyMs: 1, loss: o.loss ?? 0, seed: o.seed ?? 7 })
  const host = nat === undefined ? net.addHost('198.51.100.20') : net.addHost('10.0.0.2', { behind: net.addNat('nat', NAT_IP, nat) })
  const server = await SimStunServer.start(net.addHost(IP1), { alternate: { host: net.addHost(IP2) } })
  try {
    const report = await discoverNat({
      servers: [`${server.primary.address}:${server.primary.port}`],
      bindSocket: async () => await host.bind(),
      interfaces: simInterfaces(host),
      tcpTls: 'never',
      timeoutMs: 2000
    })
    return { report, net }
  } finally {
    await net.close()
  }
}

describe('discoverNat on the NAT simulator', function () {
  this.timeout(30_000)

  for (const loss of [0, 0.05]) {
    describe(loss === 0 ? 'without loss' : `with ${loss * 100}% loss each way`, () => {
      for (const mapping of BEHAVIOURS) {
        for (const filtering of BEHAVIOURS) {
          it(`${mapping} mapping, ${filtering} filtering`, async () => {
            const { report, net } = await discoverThrough({ mapping, filtering, portAllocation: 'preserving' }, { loss })
            // With loss, datagrams really were lost (and retransmissions made up for them).
            expect(net.stats().dropped.loss > 0).to.equal(loss > 0)
            expect(report.udp).to.equal(true)
            expect(report.nat.behindNat).to.equal(true)
            expect(report.publicAddress?.address).to.equal(NAT_IP)
            expect(report.localAddress?.address).to.equal('10.0.0.2')
            expect([report.nat.mapping, report.nat.filtering]).to.deep.equal([mapping, filtering])
            expect(report.nat.type).to.equal(expectedType(mapping, filtering))
            expect(report.nat.hairpinning).to.equal(false)
            expect(report.nat.alg).to.equal(false)
            expect(report.servers).to.have.length(1)
            expect(report.servers[0]).to.include({ answered: true, rfc5780: true })
          })
        }
      }
    })
  }

  it('reports hairpinning when the NAT hairpins (RFC 4787 §6)', async () => {
    const { report } = await discoverThrough({ ...natPreset('port-restricted-cone'), hairpin: true })
    expect(report.nat.hairpinning).to.equal(true)
  })

  const allocations: Array<[string, SimNatOptions, { pattern: string, delta: number | null, preservation: boolean }]> = [
    ['preserving', natPreset('full-cone'), { pattern: 'preserving', delta: null, preservation: true }],
    ['sequential, step 1', natPreset('symmetric-sequential'), { pattern: 'sequential', delta: 1, preservation: false }],
    ['sequential, step 2', { ...natPreset('symmetric-sequential'), sequentialStep: 2 }, { pattern: 'sequential', delta: 2, preservation: false }],
    ['random', natPreset('symmetric'), { pattern: 'random', delta: null, preservation: false }]
  ]
  for (const [name, nat, want] of allocations) {
    it(`reports ${name} port allocation (RFC 4787 §4.2)`, async () => {
      const { report } = await discoverThrough(nat)
      expect(report.nat.portAllocation.pattern).to.equal(want.pattern)
      expect(report.nat.portAllocation.delta).to.equal(want.delta)
      expect(report.nat.portPreservation).to.equal(want.preservation)
    })
  }

  it('reports no NAT and open filtering for a host on the internet', async () => {
    const { report } = await discoverThrough(undefined)
    expect(report.nat.behindNat).to.equal(false)
    expect(report.nat.type).to.equal('open')
    expect(report.publicAddress?.address).to.equal('198.51.100.20')
  })

  it('reports UDP blocked as nothing known, without throwing', async () => {
    const { report } = await discoverThrough(natPreset('udp-blocked'))
    expect(report.udp).to.equal(false)
    expect(report.nat.type).to.equal('unknown')
    expect(report.nat.mapping).to.equal('unknown')
    expect(report.servers[0]).to.include({ answered: false })
    expect(report.servers[0].error).to.match(/no response/)
  })

  it('closes every socket it bound', async () => {
    const net = new SimNetwork({ latencyMs: 1 })
    const host = net.addHost('10.0.0.2', { behind: net.addNat('nat', NAT_IP, natPreset('symmetric')) })
    const server = await SimStunServer.start(net.addHost(IP1), { alternate: { host: net.addHost(IP2) } })
    const bound: number[] = []
    await discoverNat({
      servers: [`${IP1}:3478`], interfaces: simInterfaces(host), tcpTls: 'never',
      bindSocket: async () => { const s = await host.bind(); bound.push(s.local.port); return s }
    })
    expect(bound.length).to.be.greaterThan(2)
    expect(bound.filter(p => host.socket(p) !== undefined)).to.deep.equal([])
    expect(server.stats.responses).to.be.greaterThan(0)
    await net.close()
  })
})
