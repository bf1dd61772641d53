import { expect } from 'chai'
import { classicType, predictPair, type NatType } from '../../../src/discovery/index.js'
import { testFiltering } from '../../../src/discovery/filtering.js'
import { mappingFromServers, testMapping } from '../../../src/discovery/mapping.js'
import { classifyPortPattern } from '../../../src/discovery/port-pattern.js'
import { probeBudgetMs, timingFromRtt, type Probe, type ProbeOutcome } from '../../../src/discovery/probe.js'
import type { Endpoint } from '../../../src/net/endpoint.js'
import type { BindingResult } from '../../../src/stun/client.js'

const P = { address: '203.0.113.10', port: 3478 }
const O = { address: '203.0.113.11', port: 3479 }
const LOCAL = { address: '10.0.1.2', port: 5000 }

function answer (mapped: Endpoint): ProbeOutcome {
  return { kind: 'response', result: { mapped, from: P, local: LOCAL, rttMs: 1 } as BindingResult }
}
const LOST: ProbeOutcome = { kind: 'timeout' }

/** A probe that replays recorded outcomes keyed by destination and CHANGE-REQUEST flags. */
function replay (table: Record<string, ProbeOutcome>): Probe & { calls: string[] } {
  const calls: string[] = []
  const probe = (async (target: Endpoint, o?: { changeRequest?: { ip: boolean, port: boolean } }) => {
    const key = `${target.address}:${target.port}${o?.changeRequest !== undefined ? ` change=${o.changeRequest.ip ? 'ip' : ''}${o.changeRequest.port ? 'port' : ''}` : ''}`
    calls.push(key)
    return table[key] ?? LOST
  }) as Probe & { calls: string[] }
  probe.calls = calls
  return probe
}

const M1 = { address: '198.51.100.1', port: 40000 }
const M2 = { address: '198.51.100.1', port: 40001 }
const M3 = { address: '198.51.100.1', port: 40002 }
const first = { mapped: M1, from: P, local: LOCAL, rttMs: 1 } as BindingResult

describe('discovery decisions (from recorded probe results)', () => {
  describe('mapping test (RFC 5780 §4.3)', () => {
    const cases = [
      { name: 'same mapping to the alternate IP: endpoint-independent', ii: answer(M1), iii: answer(M1), want: 'endpoint-independent' },
      { name: 'new mapping per IP, same across ports: address-dependent', ii: answer(M2), iii: answer(M2), want: 'address-dependent' },
      { name: 'new mapping per IP and port: address-and-port-dependent', ii: answer(M2), iii: answer(M3), want: 'address-and-port-dependent' },
      { name: 'test II lost: unknown, not guessed', ii: LOST, iii: answer(M3), want: 'unknown' },
      { name: 'test III lost after a changed mapping: unknown', ii: answer(M2), iii: LOST, want: 'unknown' },
      { name: 'test III lost but test II matched: still endpoint-independent', ii: answer(M1), iii: LOST, want: 'endpoint-independent' }
    ]
    for (const c of cases) {
      it(c.name, async () => {
        const probe = replay({ [`${O.address}:${P.port}`]: c.ii, [`${O.address}:${O.port}`]: c.iii })
        const r = await testMapping(probe, first, O, P)
        expect(r.mapping).to.equal(c.want)
        expect(r.mapped).to.deep.equal(M1)
      })
    }
  })

  describe('filtering test (RFC 5780 §4.4)', () => {
    const ok = answer(M1)
    const cases: Array<{ name: string, table: Record<string, ProbeOutcome>, want: string }> = [
      { name: 'answer from the other IP and port: endpoint-independent', table: { [`${P.address}:${P.port}`]: ok, [`${P.address}:${P.port} change=ipport`]: ok, [`${P.address}:${P.port} change=port`]: ok }, want: 'endpoint-independent' },
      { name: 'only the other port gets in: address-dependent', table: { [`${P.address}:${P.port}`]: ok, [`${P.address}:${P.port} change=port`]: ok }, want: 'address-dependent' },
      { name: 'neither gets in: address-and-port-dependent', table: { [`${P.address}:${P.port}`]: ok }, want: 'address-and-port-dependent' },
      { name: 'test I lost: unknown', table: {}, want: 'unknown' },
      { name: 'server refuses CHANGE-REQUEST (420): unknown', table: { [`${P.address}:${P.port}`]: ok, [`${P.address}:${P.port} change=ipport`]: { kind: 'error', code: 420, reason: 'Unknown Attribute' } }, want: 'unknown' }
    ]
    for (const c of cases) {
      it(c.name, async () => {
        expect(await testFiltering(replay(c.table), P)).to.equal(c.want)
      })
    }
  })

  describe('mapping from plain servers (Tailscale style)', () => {
    it('equal mappings to two IPs: endpoint-independent', () => {
      expect(mappingFromServers([{ server: P, mapped: M1 }, { server: O, mapped: M1 }])).to.deep.equal({ mapping: 'endpoint-independent', variesByDestIp: false })
    })
    it('different mappings: varies by destination IP, behaviour unknown', () => {
      expect(mappingFromServers([{ server: P, mapped: M1 }, { server: O, mapped: M2 }])).to.deep.equal({ mapping: 'unknown', variesByDestIp: true })
    })
    it('one IP is not enough', () => {
      expect(mappingFromServers([{ server: P, mapped: M1 }, { server: { ...P, port: 1 }, mapped: M1 }])).to.equal(null)
    })
  })

  describe('port allocation pattern', () => {
    const s = (pairs: Array<[number, number]>): Array<{ local: number, external: number }> => pairs.map(([local, external]) => ({ local, external }))
    const cases = [
      { name: 'preserving', samples: s([[5000, 5000], [5001, 5001], [6000, 6000]]), want: { pattern: 'preserving', delta: null } },
      { name: 'sequential +1', samples: s([[1, 20000], [2, 20001], [3, 20002], [4, 20003], [5, 20004]]), want: { pattern: 'sequential', delta: 1 } },
      { name: 'sequential +2 despite one stray mapping', samples: s([[1, 100], [2, 102], [3, 104], [4, 107], [5, 109]]), want: { pattern: 'sequential', delta: 2 } },
      { name: 'random', samples: s([[1, 31000], [2, 45012], [3, 1200], [4, 60000], [5, 33333]]), want: { pattern: 'random', delta: null } },
      { name: 'too few samples', samples: s([[1, 100], [2, 101]]), want: { pattern: 'unknown', delta: null } },
      { name: 'no samples', samples: [], want: { pattern: 'unknown', delta: null } }
    ]
    for (const c of cases) {
      it(c.name, () => { expect(classifyPortPattern(c.samples)).to.deep.include(c.want) })
    }
  })

  describe('classic label', () => {
    const base = { udp: true, behindNat: true, mapping: 'endpoint-independent' as const, filtering: 'endpoint-independent' as const, variesByDestIp: false }
    const cases: Array<{ name: string, input: Parameters<typeof classicType>[0], want: NatType }> = [
      { name: 'full cone', input: base, want: 'full-cone' },
      { name: 'restricted cone', input: { ...base, filtering: 'address-dependent' }, want: 'restricted-cone' },
      { name: 'port-restricted cone', input: { ...base, filtering: 'address-and-port-dependent' }, want: 'port-restricted-cone' },
      { name: 'symmetric (APDM)', input: { ...base, mapping: 'address-and-port-dependent', filtering: 'address-and-port-dependent' }, want: 'symmetric' },
      { name: 'symmetric (ADM)', input: { ...base, mapping: 'address-dependent' }, want: 'symmetric' },
      { name: 'symmetric from plain servers only', input: { ...base, mapping: 'unknown', filtering: 'unknown', variesByDestIp: true }, want: 'symmetric' },
      { name: 'open', input: { ...base, behindNat: false }, want: 'open' },
      { name: 'symmetric firewall', input: { ...base, behindNat: false, filtering: 'address-and-port-dependent' }, want: 'symmetric-firewall' },
      { name: 'UDP blocked, TCP out', input: { ...base, udp: false, tcp: true, tls: false }, want: 'udp-blocked' },
      { name: 'nothing answered at all', input: { ...base, udp: false, tcp: false, tls: false }, want: 'unknown' },
      { name: 'UDP blocked, STUN over TCP silent but a TCP connect to 443 answered', input: { ...base, udp: false, tcp: false, tls: false, tcpOpenPorts: [443] }, want: 'udp-blocked' },
      { name: 'offline: every TCP connect silent too', input: { ...base, udp: false, tcp: false, tls: false, tcpOpenPorts: [] }, want: 'unknown' },
      { name: 'UDP answered "port unreachable": not blocked, just no server', input: { ...base, udp: false, udpRefused: true, tcp: false, tls: false, tcpOpenPorts: [443] }, want: 'unknown' },
      { name: 'EIM but filtering unknown', input: { ...base, filtering: 'unknown' }, want: 'unknown' }
    ]
    for (const c of cases) it(c.name, () => { expect(classicType(c.input)).to.equal(c.want) })
  })

  describe('pair predictor', () => {
    const seq = { pattern: 'sequential' as const, delta: 1, samples: [] }
    const rnd = { pattern: 'random' as const, delta: null, samples: [] }
    const cases: Array<{ a: NatType, b: NatType, aAlloc?: typeof seq | typeof rnd, want: string, alt?: string[] }> = [
      { a: 'open', b: 'symmetric', want: 'direct' },
      { a: 'full-cone', b: 'port-restricted-cone', want: 'punch' },
      { a: 'port-restricted-cone', b: 'port-restricted-cone', want: 'punch' },
      { a: 'symmetric', b: 'restricted-cone', aAlloc: rnd, want: 'punch' },
      { a: 'symmetric', b: 'port-restricted-cone', aAlloc: rnd, want: 'relay-udp', alt: ['birthday-spray'] },
      { a: 'symmetric', b: 'port-restricted-cone', aAlloc: seq, want: 'relay-udp', alt: ['port-prediction'] },
      { a: 'symmetric', b: 'symmetric', aAlloc: seq, want: 'relay-udp', alt: ['port-prediction'] },
      { a: 'symmetric', b: 'symmetric', aAlloc: rnd, want: 'relay-udp', alt: [] },
      { a: 'udp-blocked', b: 'full-cone', want: 'relay-tls' }
    ]
    for (const c of cases) {
      it(`${c.a} + ${c.b}${c.aAlloc !== undefined ? ` (${c.aAlloc.pattern} ports)` : ''}: ${c.want}`, () => {
        const p = predictPair({ type: c.a, portAllocation: c.aAlloc, tcp: true, tls: true }, { type: c.b, portAllocation: c.aAlloc })
        expect(p.strategy).to.equal(c.want)
        if (c.alt !== undefined) expect(p.alternatives).to.deep.equal(c.alt)
        expect(predictPair({ type: c.b, portAllocation: c.aAlloc, tcp: true, tls: true }, { type: c.a, portAllocation: c.aAlloc, tcp: true, tls: true }).strategy, 'symmetric in its arguments').to.equal(c.want)
      })
    }
  })

  it('derives probe timeouts from the RTT: ~250 ms of silence on a LAN, bounded on slow paths', () => {
    expect(probeBudgetMs(timingFromRtt(0.2))).to.be.within(150, 400)
    expect(probeBudgetMs(timingFromRtt(100))).to.be.within(1000, 2500)
    expect(timingFromRtt(10_000).rtoMs).to.equal(500)
  })
})
