import { sameEndpoint, type Endpoint } from '../net/endpoint.js'
import type { Answer, Reach } from './discover-reach.js'
import { round, type DiscoveryRun } from './discover-run.js'
import { testFiltering } from './filtering.js'
import { testHairpin } from './hairpin.js'
import { testLifetime } from './lifetime.js'
import { mappingFromServers, testMapping } from './mapping.js'
import { classifyPortPattern } from './port-pattern.js'
import { clientProbe, timingFromRtt, type ProbeTiming } from './probe.js'
import type { FilteringBehaviour, MappingBehaviour, PortAllocation } from './types.js'

/** The NAT's behaviour as far as UDP answers let it be measured; unknown/null for the rest. */
export interface Behaviour {
  mapping: MappingBehaviour
  filtering: FilteringBehaviour
  hairpinning: boolean | null
  variesByDestIp: boolean | null
  behindNat: boolean | null
  alg: boolean | null
  portPreservation: boolean | null
  portAllocation: PortAllocation
  lifetimeS: number | null
  lifetimeIsLowerBound: boolean
  publicAddress: Endpoint | null
  localAddress: Endpoint | null
}

/** Nothing measured (UDP got no answer). */
export function unknownBehaviour (): Behaviour {
  return {
    mapping: 'unknown', filtering: 'unknown', hairpinning: null, variesByDestIp: null, behindNat: null, alg: null,
    portPreservation: null, portAllocation: { pattern: 'unknown', delta: null, samples: [] }, lifetimeS: null,
    lifetimeIsLowerBound: true, publicAddress: null, localAddress: null
  }
}

/**
 * Phases 3-5 once some server answered over UDP: what the reach answers already tell (NAT or not, ALG, mapping across
 * server IPs), then the RFC 5780 mapping, filtering and hairpinning tests in parallel, port allocation alone, and the
 * mapping lifetime.
 */
export async function measureBehaviour (run: DiscoveryRun, reach: Reach): Promise<Behaviour> {
  const { s, answers, serverReports } = reach
  const b = unknownBehaviour()
  const timing = timingFromRtt(Math.min(...answers.map(a => a.result.rttMs)))
  const capable = answers.find(a => serverReports.find(r => r.address === a.target.address && r.port === a.target.port)?.rfc5780 === true)
  const main = capable ?? answers[0]
  const first = main.result
  b.publicAddress = first.mapped
  const sourceIp = s.local.address === '0.0.0.0' ? await run.interfaces.sourceAddressFor(main.target) : s.local.address
  b.localAddress = { address: sourceIp ?? s.local.address, port: s.local.port }
  const behindNat = !(first.mapped.port === s.local.port && run.interfaces.addresses().includes(first.mapped.address))
  b.behindNat = behindNat
  b.portPreservation = first.mapped.port === s.local.port
  const withBoth = answers.filter(a => a.result.mappedAddress !== undefined)
  b.alg = withBoth.length === 0 ? null : withBoth.some(a => !sameEndpoint(a.result.mappedAddress as Endpoint, a.result.mapped))
  const fromServers = mappingFromServers(answers.map(a => ({ server: a.target, mapped: a.result.mapped })))
  if (fromServers !== null) { b.mapping = fromServers.mapping; b.variesByDestIp = fromServers.variesByDestIp }

  await testRfc5780(run, reach, capable, timing, b)
  run.check()
  b.portAllocation = behindNat ? await testPortAllocation(run, main, timing) : { pattern: 'preserving', delta: null, samples: [first.mapped.port] }
  await testMappingLifetime(run, reach, main, capable, timing, b)
  return b
}

/** Phase 3: mapping (socket S), filtering (its own socket F) and hairpinning (S) in parallel. */
async function testRfc5780 (run: DiscoveryRun, reach: Reach, capable: Answer | undefined, timing: ProbeTiming, b: Behaviour): Promise<void> {
  const { s, watchS } = reach
  const first = (capable ?? reach.answers[0]).result
  const tasks: Array<Promise<void>> = []
  if (capable !== undefined) {
    const primary = capable.target
    const other = capable.result.otherAddress as Endpoint
    run.progress('mapping', `RFC 5780 tests against ${primary.address}:${primary.port} (alternate ${other.address}:${other.port})`)
    tasks.push((async () => {
      const m = await testMapping(clientProbe(s, timing, run.signal), capable.result, other, primary)
      run.mark('mapping')
      if (m.mapping !== 'unknown') b.mapping = m.mapping
      const [m1, m2] = m.observed
      if (m1 !== null && m2 !== null) b.variesByDestIp = (b.variesByDestIp ?? false) || !sameEndpoint(m1, m2)
      run.progress('mapping', `mapping: ${b.mapping}`)
    })())
    tasks.push((async () => {
      const f = await run.newClient()
      b.filtering = await testFiltering(clientProbe(f, timing, run.signal), primary)
      run.mark('filtering')
      run.progress('filtering', `filtering: ${b.filtering}`)
    })())
  } else {
    run.progress('mapping', 'no RFC 5780-capable server answered: filtering cannot be measured')
  }
  if (b.behindNat === true) {
    tasks.push((async () => {
      b.hairpinning = await testHairpin(s.socket, watchS, first.mapped, timing, run.signal)
      run.mark('hairpin')
      run.progress('hairpin', `hairpinning: ${String(b.hairpinning)}`)
    })())
  }
  await Promise.all(tasks)
}

/** Phase 4: port allocation, alone (other new flows would break a sequential pattern): fresh sockets, one at a time. */
async function testPortAllocation (run: DiscoveryRun, main: Answer, timing: ProbeTiming): Promise<PortAllocation> {
  const samples: Array<{ local: number, external: number }> = []
  for (let i = 0; i < 5; i++) {
    const c = await run.newClient()
    const o = await clientProbe(c, timing, run.signal)(main.target)
    if (o.kind === 'response') samples.push({ local: c.local.port, external: o.result.mapped.port })
    await run.closeClient(c)
  }
  const p = classifyPortPattern(samples)
  run.mark('pattern')
  run.progress('pattern', `port allocation: ${p.pattern}${p.delta !== null ? ` (step ${p.delta})` : ''}`)
  return p
}

/** Phase 5, lifetime: the quick lower bound is how long S's mapping has already lasted; `lifetime` measures it. */
async function testMappingLifetime (run: DiscoveryRun, reach: Reach, main: Answer, capable: Answer | undefined, timing: ProbeTiming, b: Behaviour): Promise<void> {
  const again = await clientProbe(reach.s, timing, run.signal)(main.target)
  if (again.kind === 'response' && sameEndpoint(again.result.mapped, main.result.mapped)) {
    b.lifetimeS = round((performance.now() - run.started - (run.timings.resolveMs ?? 0)) / 1000)
  }
  const lifetime = run.options.lifetime
  if (lifetime === undefined || lifetime === false || capable === undefined) return
  const maxS = typeof lifetime === 'object' ? lifetime.maxS : 120
  run.progress('lifetime', `measuring the mapping lifetime (up to ${maxS} s)`)
  const l = await testLifetime({
    primary: capable.target, timing, maxS, bindAddress: run.bindAddress, bindSocket: run.bindSocket, signal: run.signal,
    onCheckpoint: (t, alive) => { run.progress('lifetime', `after ${t} s idle the mapping ${alive ? 'was alive' : 'had expired'}`) }
  })
  if (l.aliveS !== null || l.expiredS !== null) {
    b.lifetimeS = l.aliveS ?? 0
    b.lifetimeIsLowerBound = l.expiredS === null
  }
  run.mark('lifetime')
}
