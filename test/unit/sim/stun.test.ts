import { expect } from 'chai'
import { classicType } from '../../../src/discovery/index.js'
import { testFiltering } from '../../../src/discovery/filtering.js'
import { ArrivalWatch, testHairpin } from '../../../src/discovery/hairpin.js'
import { testMapping } from '../../../src/discovery/mapping.js'
import { classifyPortPattern } from '../../../src/discovery/port-pattern.js'
import { clientProbe, type ProbeTiming } from '../../../src/discovery/probe.js'
import { StunTimeoutError } from '../../../src/errors.js'
import { LAB_NAT_FILTERING, LAB_NAT_MAPPING } from '../../../src/lab/types.js'
import { StunClient } from '../../../src/stun/client.js'
import {
  SIM_NAT_PRESETS, SimNetwork, SimStunServer, natPreset, type SimBehaviour, type SimHost, type SimNatOptions
} from '../../../src/sim/index.js'
import { expectRejection } from '../../support/assert.js'

const NAT_IP = '192.0.2.1'
const IP1 = '203.0.113.10'
const IP2 = '203.0.113.11'
/** Short probe timing: the simulated round trip is 2 ms; silence is concluded after 60 ms (sends at 0, 10, 30 ms). */
const TIMING: ProbeTiming = { rtoMs: 10, rc: 3, rm: 3 }
const BEHAVIOURS: SimBehaviour[] = ['endpoint-independent', 'address-dependent', 'address-and-port-dependent']

/** A NAT, a host behind it, and an RFC 5780 server on two public hosts. */
async function setup (nat: SimNatOptions): Promise<{ net: SimNetwork, host: SimHost, server: SimStunServer }> {
  const net = new SimNetwork({ latencyMs: 1, seed: 5 })
  const n = net.addNat('nat', NAT_IP, nat)
  const host = net.addHost('10.0.0.2', { behind: n })
  const server = await SimStunServer.start(net.addHost(IP1), { alternate: { host: net.addHost(IP2) } })
  return { net, host, server }
}

interface Discovered { mapping: string, filtering: string, type: string, pattern: string, delta: number | null, hairpin: boolean }

/** natkit's own discovery decisions (RFC 5780 §4.3-§4.5), run over the simulator. */
async function discover (host: SimHost, server: SimStunServer, withHairpin = true): Promise<Discovered> {
  const watch = new ArrivalWatch()
  const client = await StunClient.create({ socket: await host.bind(), onOther: (data) => { watch.observe(data) } })
  const probe = clientProbe(client, TIMING)
  // The filtering test runs on its own socket (its mapping is separate), in parallel with the rest, as discoverNat does.
  const filterClient = await StunClient.create({ socket: await host.bind() })
  const filteringDone = testFiltering(clientProbe(filterClient, TIMING), server.primary)
  const first = await probe(server.primary)
  if (first.kind !== 'response') {
    const filtering = await filteringDone
    return { mapping: 'unknown', filtering, type: classicType({ udp: false, behindNat: null, mapping: 'unknown', filtering, variesByDestIp: null }), pattern: 'unknown', delta: null, hairpin: false }
  }
  const other = first.result.otherAddress
  expect(other).to.deep.equal(server.alternate)
  const { mapping } = await testMapping(probe, first.result, other as { address: string, port: number }, server.primary)
  const hairpin = withHairpin && await testHairpin(client.socket, watch, first.result.mapped, TIMING)
  const filtering = await filteringDone
  const samples: Array<{ local: number, external: number }> = []
  for (let i = 0; i < 4; i++) {
    const c = await StunClient.create({ socket: await host.bind() })
    const r = await c.binding(server.primary, TIMING)
    samples.push({ local: c.local.port, external: r.mapped.port })
  }
  const behindNat = first.result.mapped.address !== client.local.address
  const type = classicType({ udp: true, behindNat, mapping, filtering, variesByDestIp: null })
  const pattern = classifyPortPattern(samples)
  return { mapping, filtering, type, pattern: pattern.pattern, delta: pattern.delta, hairpin }
}

describe('SimStunServer', () => {
  it('listens on the four RFC 5780 addresses and answers with OTHER-ADDRESS', async () => {
    const net = new SimNetwork()
    const server = await SimStunServer.start(net.addHost(IP1), { primaryPort: 3478, alternate: { host: net.addHost(IP2), port: 3479 } })
    expect(server.addresses().map(a => `${a.address}:${a.port}`).sort()).to.deep.equal([`${IP1}:3478`, `${IP1}:3479`, `${IP2}:3478`, `${IP2}:3479`])
    const client = await StunClient.create({ socket: await net.addHost('198.51.100.5').bind(4000) })
    const r = await client.binding(server.primary)
    expect(r.mapped).to.deep.equal({ address: '198.51.100.5', port: 4000 })
    expect(r.otherAddress).to.deep.equal({ address: IP2, port: 3479 })
    expect(r.responseOrigin).to.deep.equal(server.primary)
    const changed = await client.binding(server.primary, { changeRequest: { ip: true, port: true } })
    expect(changed.from).to.deep.equal({ address: IP2, port: 3479 })
    expect(server.stats.responses).to.equal(2)
    await net.close()
  })

  it('without an alternate, one socket, and CHANGE-REQUEST is refused (420)', async () => {
    const net = new SimNetwork()
    const server = await SimStunServer.start(net.addHost(IP1))
    expect(server.addresses()).to.deep.equal([{ address: IP1, port: 3478 }])
    const client = await StunClient.create({ socket: await net.addHost('198.51.100.5').bind() })
    const probe = clientProbe(client, TIMING)
    expect(await probe(server.primary, { changeRequest: { ip: true, port: false } })).to.include({ kind: 'error', code: 420 })
    await net.close()
  })

  describe('a StunClient behind each preset gets the right mapped address', () => {
    const expectedPort = (preset: string, local: number): ((port: number) => boolean) => {
      if (preset === 'symmetric-sequential') return p => p === 50000
      if (preset === 'symmetric') return p => p >= 1024 && p <= 65535
      return p => p === local
    }
    for (const preset of SIM_NAT_PRESETS) {
      it(preset, async () => {
        const { net, host, server } = await setup(natPreset(preset))
        const client = await StunClient.create({ socket: await host.bind(5000) })
        if (preset === 'udp-blocked') {
          await expectRejection(client.binding(server.primary, TIMING), StunTimeoutError)
          expect(net.stats().dropped['udp-blocked']).to.equal(TIMING.rc)
        } else {
          const r = await client.binding(server.primary, TIMING)
          expect(r.mapped.address).to.equal(NAT_IP)
          expect(expectedPort(preset, 5000)(r.mapped.port), `port ${r.mapped.port}`).to.equal(true)
          expect(r.local).to.deep.equal({ address: '10.0.0.2', port: 5000 })
          // A second request to the alternate: the same mapping for EIM, a new one for APDM.
          const r2 = await client.binding(server.alternate as { address: string, port: number }, TIMING)
          expect(r2.mapped.port === r.mapped.port).to.equal(LAB_NAT_MAPPING[preset] === 'endpoint-independent')
        }
        await net.close()
      })
    }
  })

  describe('natkit discovery classifies every preset correctly through the simulator', () => {
    const classic: Record<string, string> = {
      'full-cone': 'full-cone',
      'restricted-cone': 'restricted-cone',
      'port-restricted-cone': 'port-restricted-cone',
      symmetric: 'symmetric',
      'symmetric-sequential': 'symmetric',
      'udp-blocked': 'unknown' // only UDP is simulated: with nothing answering, nothing is known
    }
    const pattern: Record<string, string> = {
      'full-cone': 'preserving',
      'restricted-cone': 'preserving',
      'port-restricted-cone': 'preserving',
      symmetric: 'random',
      'symmetric-sequential': 'sequential',
      'udp-blocked': 'unknown'
    }
    for (const preset of SIM_NAT_PRESETS) {
      for (const hairpin of [false, true]) {
        it(`${preset}${hairpin ? ' with hairpinning' : ''}`, async () => {
          const { net, host, server } = await setup({ ...natPreset(preset), hairpin })
          const d = await discover(host, server)
          expect(d.mapping).to.equal(LAB_NAT_MAPPING[preset] ?? 'unknown')
          expect(d.filtering).to.equal(LAB_NAT_FILTERING[preset] ?? 'unknown')
          expect(d.type).to.equal(classic[preset])
          expect(d.pattern).to.equal(pattern[preset])
          if (preset === 'symmetric-sequential') expect(d.delta).to.equal(1)
          expect(d.hairpin).to.equal(hairpin && preset !== 'udp-blocked')
          await net.close()
        })
      }
    }
  })

  describe('and every mapping × filtering combination', () => {
    for (const mapping of BEHAVIOURS) {
      for (const filtering of BEHAVIOURS) {
        it(`${mapping} mapping, ${filtering} filtering`, async () => {
          const { net, host, server } = await setup({ mapping, filtering })
          const d = await discover(host, server, false)
          expect([d.mapping, d.filtering]).to.deep.equal([mapping, filtering])
          await net.close()
        })
      }
    }
  })
})
