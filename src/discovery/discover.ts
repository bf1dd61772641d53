import { AbortError } from '../errors.js'
import { createLogger } from '../log.js'
import { formatEndpoint, ipFamily, sameEndpoint, type Endpoint } from '../net/endpoint.js'
import { resolveServer, type ResolvedServer } from '../net/resolve.js'
import { stunBinding, StunClient, type BindingResult } from '../stun/client.js'
import { classicType, verdictFor } from './classify.js'
import { testFiltering } from './filtering.js'
import { ArrivalWatch, testHairpin } from './hairpin.js'
import { testLifetime } from './lifetime.js'
import { hasGlobalIPv6, localAddresses, sourceAddressFor } from './local-addresses.js'
import { mappingFromServers, testMapping } from './mapping.js'
import { classifyPortPattern } from './port-pattern.js'
import { openTcpPorts, probeTcpPorts, probeUdpRefusal, type TcpPortProbe } from './tcp-reach.js'
import { clientProbe, timingFromRtt, type ProbeTiming } from './probe.js'
import type { FilteringBehaviour, MappingBehaviour, NatReport, PortAllocation, ServerReport } from './types.js'

const log = createLogger('natcheck:discovery')

/** A STUN Binding request header (RFC 8489 §5) for the UDP refusal probe; its reply, if any, is not read. */
const STUN_PROBE = Uint8Array.of(0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12)

/**
 * Public STUN servers natcheck asks by default: two large plain (RFC 5389) services and one RFC 5780-capable
 * server (Stuntman's), so mapping, filtering and everything else can be measured without configuration.
 */
export const DEFAULT_SERVERS = ['stun.stunprotocol.org:3478', 'stun.l.google.com:19302', 'stun.cloudflare.com:3478'] as const

/** A progress event (natcheck prints these on stderr). */
export interface DiscoveryProgress {
  readonly phase: 'resolve' | 'reach' | 'mapping' | 'filtering' | 'hairpin' | 'pattern' | 'lifetime' | 'tcp-tls' | 'ipv6' | 'done'
  readonly message: string
}

/** Options for discoverNat. */
export interface DiscoverOptions {
  /** STUN servers, `HOST[:PORT]` (default DEFAULT_SERVERS). */
  readonly servers?: readonly string[]
  /** Give up on servers that have not answered after this many ms (default 2500). */
  readonly timeoutMs?: number
  /** Measure the binding lifetime (slow: up to `maxS` seconds). */
  readonly lifetime?: boolean | { readonly maxS: number }
  /** Local address to bind the probe sockets to (default 0.0.0.0). */
  readonly localAddress?: string
  /** Test STUN over TCP and TLS: 'auto' only when UDP is blocked (default), 'always', 'never'. */
  readonly tcpTls?: 'auto' | 'always' | 'never'
  /** Test IPv6 when the host has a global IPv6 address (default true). */
  readonly ipv6?: boolean
  readonly signal?: AbortSignal
  readonly onProgress?: (event: DiscoveryProgress) => void
}

interface Answer { readonly target: ResolvedServer, readonly result: BindingResult }

/**
 * Find out what the NAT in front of this host does (RFC 5780 §4, RFC 4787): mapping and filtering behaviour,
 * hairpinning, ALG interference, port preservation and allocation pattern, mapping variation by destination, and
 * optionally the mapping lifetime; plus whether UDP, TCP, TLS and IPv6 get out. Probes run in parallel on separate
 * sockets with timeouts derived from the measured round trip. Never throws for network outcomes: what could not be
 * measured is `unknown`/null in the report. Rejects only with AbortError.
 */
export async function discoverNat (options: DiscoverOptions = {}): Promise<NatReport> {
  const started = performance.now()
  const timings: Record<string, number> = {}
  const mark = (phase: string): void => { timings[`${phase}Ms`] = Math.round(performance.now() - started) }
  const progress = (phase: DiscoveryProgress['phase'], message: string): void => {
    log('%s: %s', phase, message)
    options.onProgress?.({ phase, message })
  }
  const signal = options.signal
  const check = (): void => { if (signal?.aborted === true) throw new AbortError(undefined, { cause: signal.reason }) }
  const servers = [...(options.servers ?? DEFAULT_SERVERS)]
  const timeoutMs = options.timeoutMs ?? 2500
  const bindAddress = options.localAddress ?? '0.0.0.0'
  const clients: StunClient[] = []
  const newClient = async (watch?: ArrivalWatch): Promise<StunClient> => {
    const c = await StunClient.create({ localAddress: bindAddress, onOther: watch !== undefined ? (d) => { watch.observe(d) } : undefined })
    clients.push(c)
    return c
  }

  try {
    // 1. Resolve every server (bounded: an offline resolver must not hang the report).
    progress('resolve', `resolving ${servers.length} server(s)`)
    const resolved = await Promise.all(servers.map(async (s) => {
      try {
        return { server: s, targets: await withTimeout(resolveServer(s, { family: 4 }), timeoutMs, `resolving ${s} took longer than ${timeoutMs} ms`) }
      } catch (err) {
        return { server: s, error: (err as Error).message }
      }
    }))
    check()
    mark('resolve')

    // 2. Reach: one socket asks every server at once. Its answers give test I of the mapping test, the RTT, which
    //    servers are RFC 5780-capable, and — across server IPs — whether the mapping varies by destination.
    const watchS = new ArrivalWatch()
    const s = await newClient(watchS)
    progress('reach', `asking ${resolved.filter(r => r.targets !== undefined).length} server(s) over UDP from ${formatEndpoint(s.local)}`)
    const reachTiming: ProbeTiming = { rtoMs: 250, rc: 4, rm: Math.max(1, (timeoutMs - 1750) / 250) }
    const probeS0 = clientProbe(s, reachTiming, signal)
    const serverReports: ServerReport[] = []
    const answers: Answer[] = []
    await Promise.all(resolved.map(async (r) => {
      if (r.targets === undefined) {
        serverReports.push(emptyServer(r.server, null, r.error ?? 'not resolved'))
        return
      }
      const target = r.targets[0]
      const outcome = await probeS0(target)
      if (outcome.kind === 'response') {
        const res = outcome.result
        const rfc5780 = res.otherAddress !== undefined && res.otherAddress.address !== target.address && res.otherAddress.port !== target.port
        answers.push({ target, result: res })
        serverReports.push({
          server: r.server, address: target.address, port: target.port, answered: true, rfc5780,
          rttMs: round(res.rttMs), mapped: res.mapped, otherAddress: res.otherAddress ?? null, software: res.software ?? null, error: null
        })
      } else {
        serverReports.push(emptyServer(r.server, target, outcome.kind === 'error' ? `error response ${outcome.code} ${outcome.reason}` : `no response within ${timeoutMs} ms`))
      }
    }))
    serverReports.sort((a, b) => servers.indexOf(a.server) - servers.indexOf(b.server))
    check()
    mark('reach')
    const udp = answers.length > 0
    progress('reach', udp ? `${answers.length} of ${servers.length} server(s) answered over UDP` : 'no server answered over UDP')

    let mapping: MappingBehaviour = 'unknown'
    let filtering: FilteringBehaviour = 'unknown'
    let hairpinning: boolean | null = null
    let variesByDestIp: boolean | null = null
    let behindNat: boolean | null = null
    let alg: boolean | null = null
    let portPreservation: boolean | null = null
    let portAllocation: PortAllocation = { pattern: 'unknown', delta: null, samples: [] }
    let lifetimeS: number | null = null
    let lifetimeIsLowerBound = true
    let publicAddress: Endpoint | null = null
    let localAddress: Endpoint | null = null
    let tcp: boolean | null = null
    let tls: boolean | null = null
    let tcpPorts: TcpPortProbe[] | null = null
    let udpRefused: boolean | null = null

    if (udp) {
      const rtt = Math.min(...answers.map(a => a.result.rttMs))
      const timing = timingFromRtt(rtt)
      const capable = answers.find(a => serverReports.find(r => r.address === a.target.address && r.port === a.target.port)?.rfc5780 === true)
      const first = (capable ?? answers[0]).result
      publicAddress = first.mapped
      const sourceIp = s.local.address === '0.0.0.0' ? await sourceAddressFor((capable ?? answers[0]).target) : s.local.address
      localAddress = { address: sourceIp ?? s.local.address, port: s.local.port }
      const local = localAddresses()
      behindNat = !(first.mapped.port === s.local.port && local.includes(first.mapped.address))
      portPreservation = first.mapped.port === s.local.port
      const withBoth = answers.filter(a => a.result.mappedAddress !== undefined)
      alg = withBoth.length === 0 ? null : withBoth.some(a => !sameEndpoint(a.result.mappedAddress as Endpoint, a.result.mapped))
      const fromServers = mappingFromServers(answers.map(a => ({ server: a.target, mapped: a.result.mapped })))
      if (fromServers !== null) { mapping = fromServers.mapping; variesByDestIp = fromServers.variesByDestIp }

      // 3. Mapping (socket S), filtering (its own socket F) and hairpinning (S) in parallel.
      const probeS = clientProbe(s, timing, signal)
      const tasks: Array<Promise<void>> = []
      if (capable !== undefined) {
        const primary = capable.target
        const other = capable.result.otherAddress as Endpoint
        progress('mapping', `RFC 5780 tests against ${formatEndpoint(primary)} (alternate ${formatEndpoint(other)})`)
        tasks.push((async () => {
          const m = await testMapping(probeS, capable.result, other, primary)
          mark('mapping')
          if (m.mapping !== 'unknown') mapping = m.mapping
          const [m1, m2] = m.observed
          if (m1 !== null && m2 !== null) variesByDestIp = (variesByDestIp ?? false) || !sameEndpoint(m1, m2)
          progress('mapping', `mapping: ${mapping}`)
        })())
        tasks.push((async () => {
          const f = await newClient()
          filtering = await testFiltering(clientProbe(f, timing, signal), primary)
          mark('filtering')
          progress('filtering', `filtering: ${filtering}`)
        })())
      } else {
        progress('mapping', 'no RFC 5780-capable server answered: filtering cannot be measured')
      }
      if (behindNat) {
        tasks.push((async () => {
          hairpinning = await testHairpin(s.socket, watchS, first.mapped, timing, signal)
          mark('hairpin')
          progress('hairpin', `hairpinning: ${String(hairpinning)}`)
        })())
      }
      await Promise.all(tasks)
      check()

      // 4. Port allocation, alone (other new flows would break a sequential pattern): fresh sockets, one at a time.
      if (behindNat) {
        const target = (capable ?? answers[0]).target
        const samples: Array<{ local: number, external: number }> = []
        for (let i = 0; i < 5; i++) {
          const c = await newClient()
          const o = await clientProbe(c, timing, signal)(target)
          if (o.kind === 'response') samples.push({ local: c.local.port, external: o.result.mapped.port })
          await c.close()
        }
        portAllocation = classifyPortPattern(samples)
        mark('pattern')
        progress('pattern', `port allocation: ${portAllocation.pattern}${portAllocation.delta !== null ? ` (step ${portAllocation.delta})` : ''}`)
      } else {
        portAllocation = { pattern: 'preserving', delta: null, samples: [first.mapped.port] }
      }

      // 5. Lifetime: the quick lower bound is how long S's mapping has already lasted; --lifetime measures it.
      const again = await probeS((capable ?? answers[0]).target)
      if (again.kind === 'response' && sameEndpoint(again.result.mapped, first.mapped)) {
        lifetimeS = round((performance.now() - started - (timings.resolveMs ?? 0)) / 1000)
      }
      if (options.lifetime !== undefined && options.lifetime !== false && capable !== undefined) {
        const maxS = typeof options.lifetime === 'object' ? options.lifetime.maxS : 120
        progress('lifetime', `measuring the mapping lifetime (up to ${maxS} s)`)
        const l = await testLifetime({
          primary: capable.target, timing, maxS, bindAddress, signal,
          onCheckpoint: (t, alive) => { progress('lifetime', `after ${t} s idle the mapping ${alive ? 'was alive' : 'had expired'}`) }
        })
        if (l.aliveS !== null || l.expiredS !== null) {
          lifetimeS = l.aliveS ?? 0
          lifetimeIsLowerBound = l.expiredS === null
        }
        mark('lifetime')
      }
    }

    // 6. UDP blocked (or asked for): does STUN over TCP or TLS get out?
    if (options.tcpTls === 'always' || (options.tcpTls !== 'never' && !udp)) {
      progress('tcp-tls', 'testing STUN over TCP and TLS')
      const hosts = resolved.filter(r => r.targets !== undefined).map(r => r.targets?.[0] as ResolvedServer)
      const attempt = async (transport: 'tcp' | 'tls', port: number, h: ResolvedServer): Promise<boolean> => {
        try {
          await stunBinding(`${h.address.includes(':') ? `[${h.address}]` : h.address}:${port}`, { transport, timeoutMs: Math.min(timeoutMs, 3000), tls: { rejectUnauthorized: false, servername: ipFamily(h.host) === 0 ? h.host : undefined } })
          return true
        } catch { return false }
      }
      // A plain TCP connect on 443 and 80 too: a server that answers, even with a refusal, proves the path is open.
      const portsProbe = probeTcpPorts(hosts.map(h => h.address), { timeoutMs: Math.min(timeoutMs, 3000), localAddress: options.localAddress, signal })
      // And whether UDP to the STUN port comes back as ICMP port unreachable: UDP gets there, no server listens.
      const udpRefusal = Promise.all(hosts.map(async h => await probeUdpRefusal(h.address, h.port, STUN_PROBE, { timeoutMs: Math.min(timeoutMs, 1500), localAddress: options.localAddress })))
      const results = await Promise.all(hosts.flatMap(h => [
        attempt('tcp', h.port, h).then(ok => ({ kind: 'tcp', ok })),
        attempt('tcp', 443, h).then(ok => ({ kind: 'tcp', ok })),
        attempt('tls', 5349, h).then(ok => ({ kind: 'tls', ok })),
        attempt('tls', 443, h).then(ok => ({ kind: 'tls', ok }))
      ]))
      tcp = results.some(r => r.kind === 'tcp' && r.ok)
      tls = results.some(r => r.kind === 'tls' && r.ok)
      tcpPorts = await portsProbe
      udpRefused = (await udpRefusal).includes('refused')
      mark('tcpTls')
      progress('tcp-tls', `TCP ${tcp ? 'got out' : 'blocked'}, TLS ${tls ? 'got out' : 'blocked'}, TCP connects: ${tcpPorts.map(p => `${p.port} ${p.outcome}`).join(', ') || 'none'}`)
    }

    // 7. IPv6, when this host has a global address.
    const ipv6 = { available: options.ipv6 !== false && hasGlobalIPv6(), tested: false, mapped: null as Endpoint | null }
    if (ipv6.available) {
      progress('ipv6', 'testing IPv6')
      for (const server of servers) {
        try {
          const [target] = await withTimeout(resolveServer(server, { family: 6 }), timeoutMs, 'timeout')
          const r = await stunBinding(formatEndpoint(target), { family: 6, timeoutMs: Math.min(timeoutMs, 2000), signal })
          ipv6.tested = true; ipv6.mapped = r.mapped
          break
        } catch { ipv6.tested = true }
      }
      mark('ipv6')
    }

    const tcpOpenPorts = tcpPorts === null ? null : openTcpPorts(tcpPorts)
    const type = classicType({ udp, udpRefused, tcp, tls, tcpOpenPorts, behindNat, mapping, filtering, variesByDestIp })
    const totalMs = Math.round(performance.now() - started)
    progress('done', `${type} in ${totalMs} ms`)
    return {
      nat: {
        type, behindNat, mapping, filtering, hairpinning, alg, portPreservation, portAllocation,
        mappingVariesByDestIp: variesByDestIp, mappingLifetimeS: lifetimeS, mappingLifetimeIsLowerBound: lifetimeIsLowerBound
      },
      publicAddress,
      localAddress,
      udp, udpRefused, tcp, tls, tcpPorts, ipv6,
      servers: serverReports,
      verdict: verdictFor({ type, udp, udpRefused, hairpinning, portAllocation, tcp, tls, tcpOpenPorts, alg, mappingLifetimeS: lifetimeS, lifetimeIsLowerBound }),
      timings: { ...timings, totalMs }
    }
  } finally {
    await Promise.all(clients.map(async c => { await c.close() }))
  }
}

function emptyServer (server: string, target: Endpoint | null, error: string): ServerReport {
  return { server, address: target?.address ?? null, port: target?.port ?? null, answered: false, rfc5780: false, rttMs: null, mapped: null, otherAddress: null, software: null, error }
}

function round (n: number): number { return Math.round(n * 100) / 100 }

async function withTimeout<T> (p: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  try {
    return await Promise.race([p, new Promise<never>((_resolve, reject) => { timer = setTimeout(() => { reject(new Error(message)) }, ms) })])
  } finally {
    clearTimeout(timer)
  }
}

