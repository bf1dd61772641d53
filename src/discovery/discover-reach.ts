import { ResolveError } from '../errors.js'
import { formatEndpoint } from '../net/endpoint.js'
import { resolveServer, type ResolvedServer } from '../net/resolve.js'
import type { BindingResult, StunClient } from '../stun/client.js'
import { round, type DiscoveryRun } from './discover-run.js'
import { ArrivalWatch } from './hairpin.js'
import { clientProbe, type ProbeTiming } from './probe.js'
import type { ServerReport } from './types.js'

/** A server's resolution: its addresses, or why there are none. */
export interface Resolved { readonly server: string, readonly targets?: ResolvedServer[], readonly error?: string }

/** A server that answered the reach probe, and its answer. */
export interface Answer { readonly target: ResolvedServer, readonly result: BindingResult }

/** What the reach phase learned: the socket S that asked every server, its answers and the per-server reports. */
export interface Reach {
  readonly s: StunClient
  readonly watchS: ArrivalWatch
  readonly answers: Answer[]
  readonly serverReports: ServerReport[]
}

/** Phase 1: resolve every server, each bounded by the run's timeout (an offline resolver must not hang the report). */
export async function resolveServers (run: DiscoveryRun): Promise<Resolved[]> {
  run.progress('resolve', `resolving ${run.servers.length} server(s)`)
  const resolved = await Promise.all(run.servers.map(async (server): Promise<Resolved> => {
    try {
      return { server, targets: await withTimeout(resolveServer(server, { family: 4, dns: run.options.dns }), run.timeoutMs, server) }
    } catch (err) {
      return { server, error: (err as Error).message }
    }
  }))
  run.check()
  run.mark('resolve')
  return resolved
}

/**
 * Phase 2, reach: one socket asks every server at once. Its answers give test I of the mapping test, the RTT, which
 * servers are RFC 5780-capable, and — across server IPs — whether the mapping varies by destination.
 */
export async function reachServers (run: DiscoveryRun, resolved: readonly Resolved[]): Promise<Reach> {
  const watchS = new ArrivalWatch()
  const s = await run.newClient(watchS)
  run.progress('reach', `asking ${resolved.filter(r => r.targets !== undefined).length} server(s) over UDP from ${formatEndpoint(s.local)}`)
  const reachTiming: ProbeTiming = { rtoMs: 250, rc: 4, rm: Math.max(1, (run.timeoutMs - 1750) / 250) }
  const probeS0 = clientProbe(s, reachTiming, run.signal)
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
      serverReports.push(emptyServer(r.server, target, outcome.kind === 'error' ? `error response ${outcome.code} ${outcome.reason}` : `no response within ${run.timeoutMs} ms`))
    }
  }))
  serverReports.sort((a, b) => run.servers.indexOf(a.server) - run.servers.indexOf(b.server))
  run.check()
  run.mark('reach')
  run.progress('reach', answers.length > 0 ? `${answers.length} of ${run.servers.length} server(s) answered over UDP` : 'no server answered over UDP')
  return { s, watchS, answers, serverReports }
}

function emptyServer (server: string, target: { address: string, port: number } | null, error: string): ServerReport {
  return { server, address: target?.address ?? null, port: target?.port ?? null, answered: false, rfc5780: false, rttMs: null, mapped: null, otherAddress: null, software: null, error }
}

/** `p`, or a ResolveError naming `host` after `ms`. */
export async function withTimeout<T> (p: Promise<T>, ms: number, host: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  try {
    return await Promise.race([p, new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => { reject(new ResolveError(host, `took longer than ${ms} ms`)) }, ms)
    })])
  } finally {
    clearTimeout(timer)
  }
}
