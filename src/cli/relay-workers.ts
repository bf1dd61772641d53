import cluster, { type Worker } from 'node:cluster'
import { randomBytes } from 'node:crypto'
import { createSocket } from 'node:dgram'
import { createServer } from 'node:net'
import { availableParallelism } from 'node:os'
import { AggregatorRegistry } from 'prom-client'
import { InvalidArgumentError, TransportError } from '../errors.js'
import { createLogger } from '../log.js'
import { formatEndpoint, sameEndpoint, type Endpoint } from '../net/endpoint.js'
import { nativeUdpUnavailableReason, wantsNativeUdp } from '../net/native.js'
import { AdminServer } from '../relay/admin-server.js'
import type { TurnServerOptions } from '../relay/turn-server.js'
import type { RendezvousServer } from '../rendezvous/server.js'
import { startRelayRendezvous } from './relay-rendezvous.js'
import { StreamRouter } from './relay-stream-router.js'
import { ENV, ignoreSendError, isWorkerMessage, portSlice, type WorkerMessage } from './relay-worker.js'
import { ExitCode } from './exit-codes.js'
import type { RelayLog } from './relay-log.js'

export { currentWorker, portSlice } from './relay-worker.js'

const log = createLogger('natcheck:relay:workers')

/**
 * `natcheck relay --workers N`: N worker processes (node:cluster), one relay each, sharing the client-facing
 * listeners.
 *
 * - UDP: every worker binds the listeners itself with SO_REUSEPORT (native addon): the kernel hashes each client's
 *   address and port to one worker, so an allocation, its 5-tuple and its relay sockets live in one process.
 * - TCP/TLS: the primary listens and accepts, and hands each connection with its socket to one worker
 *   (relay-stream-router.ts). node:cluster's own round-robin cannot be used: an RFC 6062 data connection's
 *   ConnectionBind must reach the worker that holds its peer connection (a ConnectionBind on another worker gets
 *   400), and the per-source limits on unauthenticated connections must be counted in one place (each worker would
 *   allow its own 32 per IP). So the primary reads a TCP connection's first frame: a ConnectionBind goes to the worker
 *   its CONNECTION-ID names (worker i issues ids ≡ i mod N), anything else to the least-loaded worker. TLS cannot be
 *   read without terminating it here, and a TLS session cannot move between processes, so a TLS connection goes
 *   untouched to the worker chosen by its source address, where the control and data connections of one client
 *   meet (see StreamRouter for why that, and what RFC 6062 §5.4 has a worker answer otherwise). The primary counts
 *   each connection against its source until the worker reports it authenticated or closed.
 * - Relay ports: the range is split into N disjoint slices, one per worker.
 * - Nonces and RESERVATION-TOKENs: one secret for all workers, so a nonce or token from one worker is good at
 *   another (an RTP/RTCP pair's second Allocate comes from another port, or over another TCP connection, so it may
 *   reach another worker; see reservation-token.ts).
 * - Quotas: each worker reports its per-user and total allocation counts through the primary to the others, which
 *   add them to their own when checking (TurnServerCore.quotaElsewhere). Counts are exchanged, not locked: within
 *   one IPC round trip (well under a millisecond) two workers may each admit one allocation, so a burst can exceed a
 *   quota by at most N-1.
 * - Metrics: the primary serves /metrics for the whole relay (prom-client's AggregatorRegistry sums the workers';
 *   natkit_relay_worker_* keep one series per worker; what the primary's router refuses is counted by worker 0);
 *   /healthz and the rendezvous run in the primary.
 * - Signals go to the primary, which forwards them; on SIGHUP it also opens and closes its TCP/TLS listeners. A
 *   worker that dies is replaced (its allocations and connections are lost).
 */

/** `--workers`: a whole number ≥ 1, default the number of CPUs this process may use. */
export function workerCount (value: number | undefined): number {
  if (value === undefined) return availableParallelism()
  if (!Number.isInteger(value) || value < 1 || value > 1024) throw new InvalidArgumentError('--workers must be a whole number from 1 to 1024')
  return value
}

/** Why several workers cannot share the UDP listeners here, or undefined when they can. */
export function reusePortUnavailable (options: Pick<TurnServerOptions, 'nativeIo' | 'udp'>): string | undefined {
  if (options.udp === false) return undefined
  if (wantsNativeUdp({ native: options.nativeIo ?? true })) return undefined
  return `SO_REUSEPORT needs native UDP I/O: ${options.nativeIo === false ? '--native-io off' : process.env.NATKIT_NATIVE === '0' ? 'NATKIT_NATIVE=0' : nativeUdpUnavailableReason() ?? 'unavailable'}`
}

/** Check that a listen address is free (UDP and, unless `udp` only, TCP) and resolve port 0 to one free for both. */
async function claimPort (ep: Endpoint, protocols: { udp: boolean, tcp: boolean }): Promise<Endpoint> {
  const tryUdp = async (port: number): Promise<number> => await new Promise((resolve, reject) => {
    const s = createSocket({ type: ep.address.includes(':') ? 'udp6' : 'udp4' })
    s.once('error', (err) => { s.close(); reject(new TransportError(`cannot bind UDP ${formatEndpoint({ address: ep.address, port })}: ${err.message}`, { cause: err })) })
    s.bind({ address: ep.address, port, exclusive: true }, () => { const p = s.address().port; s.close(() => { resolve(p) }) })
  })
  const tryTcp = async (port: number): Promise<number> => await new Promise((resolve, reject) => {
    const srv = createServer()
    srv.once('error', (err) => { reject(new TransportError(`cannot listen on TCP ${formatEndpoint({ address: ep.address, port })}: ${err.message}`, { cause: err })) })
    srv.listen({ host: ep.address, port, exclusive: true }, () => { const a = srv.address(); srv.close(() => { resolve(typeof a === 'object' && a !== null ? a.port : port) }) })
  })
  for (let attempt = 0; attempt < 20; attempt++) {
    let port = ep.port
    try {
      if (protocols.udp) port = await tryUdp(port)
      if (protocols.tcp) port = await tryTcp(port)
      return { address: ep.address, port }
    } catch (err) {
      if (ep.port !== 0) throw err // a fixed port that is taken: the operator's error
    }
  }
  throw new TransportError(`cannot find a port free for both UDP and TCP on ${ep.address}`)
}

/**
 * The aggregated metrics with what only the primary knows: unauthenticated TCP/TLS connections are counted in its
 * router, for the whole relay (the workers' own counts see only the connections handed to them).
 */
function withPrimaryCounts (text: string, router: StreamRouter): string {
  return text.replace(/^natkit_relay_unauthenticated_connections \S+$/m, `natkit_relay_unauthenticated_connections ${router.unauthenticated}`)
}

/** What the primary needs. */
export interface RelayPrimaryOptions {
  readonly options: TurnServerOptions & { admin?: Endpoint, rendezvous?: Endpoint, drainTimeout: number, redis?: string }
  readonly workers: number
  readonly say: RelayLog
  /** More health for /healthz (e.g. Redis): true, or why not. */
  readonly health?: () => true | string
  /** The options again, re-read for SIGHUP (the primary opens and closes its TCP and TLS listeners as they say). */
  readonly reload?: () => Promise<RelayPrimaryOptions['options']>
}

/** Run the primary: fork the workers, serve /metrics, /healthz and the rendezvous, forward signals. Resolves to the exit code. */
export async function runRelayPrimary ({ options, workers: count, say, health, reload }: RelayPrimaryOptions): Promise<number> {
  const udp = options.udp !== false; const tcp = options.tcp !== false
  const listen: Endpoint[] = []
  for (const ep of options.listen ?? [{ address: '127.0.0.1', port: 3478 }]) listen.push(await claimPort(ep, { udp, tcp }))
  const tls: Endpoint[] = []
  for (const ep of options.tls?.listen ?? []) tls.push(await claimPort(ep, { udp: false, tcp: true }))
  portSlice(options.portRange ?? [49152, 65535], 0, count) // validates the range for this many workers
  const env = {
    [ENV.count]: String(count),
    [ENV.secret]: randomBytes(32).toString('hex'),
    [ENV.listen]: JSON.stringify({ listen, tls: options.tls !== undefined ? tls : undefined })
  }
  const aggregator = new AggregatorRegistry()
  // The rendezvous first: once the relay answers (a worker is up), peers may connect to it at once.
  let rendezvous: RendezvousServer | undefined
  rendezvous = await startRelayRendezvous(options, say)
  const byIndex = new Map<number, Worker>()
  const counts = new Map<number, { users: Map<string, number>, total: number }>()
  let stopping = false
  let allReady = false
  let admin: AdminServer | undefined
  const ready = new Set<number>()
  const router = new StreamRouter({
    workers: count,
    firstMessageTimeoutMs: options.firstMessageTimeoutMs,
    maxUnauthenticatedPerIp: options.maxUnauthenticatedPerIp,
    ready: (i) => ready.has(i) && byIndex.get(i)?.isConnected() === true,
    send: (i, m, socket, done) => {
      const w = byIndex.get(i)
      if (w === undefined || !w.isConnected()) { done(new Error('worker gone')); return }
      w.send(m, socket, { keepOpen: false }, done)
    },
    // The primary has no relay metrics of its own: worker 0 (or the first one up) counts what its router refused.
    count: (c) => {
      const w = [...byIndex.entries()].sort((a, b) => a[0] - b[0]).find(([i, x]) => ready.has(i) && x.isConnected())?.[1]
      w?.send(c, ignoreSendError)
    }
  })
  /** The configured TCP and TLS listen addresses → the ones to listen on (port 0 resolved by claimPort at start). */
  const resolvedStream = new Map<string, Endpoint>([...(options.listen ?? [{ address: '127.0.0.1', port: 3478 }]).map((e, i) => [`listen|${formatEndpoint(e)}`, listen[i]] as const),
    ...(options.tls?.listen ?? []).map((e, i) => [`tls|${formatEndpoint(e)}`, tls[i]] as const)])
  const streamListeners = (o: RelayPrimaryOptions['options']): Array<{ ep: Endpoint, protocol: 'tcp' | 'tls' }> => [
    ...(o.tcp === false ? [] : (o.listen ?? [{ address: '127.0.0.1', port: 3478 }]).map(e => ({ ep: resolvedStream.get(`listen|${formatEndpoint(e)}`) ?? e, protocol: 'tcp' as const }))),
    ...(o.tls?.listen ?? []).map(e => ({ ep: resolvedStream.get(`tls|${formatEndpoint(e)}`) ?? e, protocol: 'tls' as const }))
  ]

  return await new Promise<number>((resolve) => {
    let finished = false
    const finish = (code: number): void => {
      if (finished) return
      finished = true
      process.off('SIGINT', onInt); process.off('SIGTERM', onTerm); process.off('SIGHUP', onHup)
      router.close()
      const closeAll = async (): Promise<void> => { await rendezvous?.close(); await admin?.close() }
      void closeAll().then(() => { resolve(code) })
    }
    const broadcast = (m: WorkerMessage, except?: number): void => {
      for (const [i, w] of byIndex) if (i !== except && w.isConnected()) w.send(m, ignoreSendError)
    }
    const waitForAll = (): void => {
      if (byIndex.size === 0) { if (stopping) { say('info', 'stopped', 'stopped'); finish(ExitCode.Ok) } }
    }
    let first: Extract<WorkerMessage, { natkit: 'ready' }>['addresses'] | undefined

    const fork = (index: number): void => {
      const w = cluster.fork({ ...env, [ENV.index]: String(index) })
      byIndex.set(index, w)
      // A worker's IPC channel may close while messages are on their way (it stops, it dies): never fatal here.
      w.on('error', (err) => { log.trace('worker %d: %s', index, err.message) })
      w.on('message', (m: unknown) => {
        if (!isWorkerMessage(m)) return
        if (m.natkit === 'connection-authenticated' || m.natkit === 'connection-closed') {
          router.report(index, m)
        } else if (m.natkit === 'ready') {
          ready.add(index)
          // TCP and TLS listen in worker 0 only: its addresses are the whole set.
          if (index === 0 || first === undefined) first = m.addresses
          // A replacement learns the others' counts.
          for (const [other, c] of counts) if (other !== index) for (const [user, n] of c.users) w.send({ natkit: 'count', worker: other, user, n, total: c.total }, ignoreSendError)
          if (!allReady && ready.size === count) void onAllReady()
        } else if (m.natkit === 'count') {
          let c = counts.get(index)
          if (c === undefined) { c = { users: new Map(), total: 0 }; counts.set(index, c) }
          if (m.n === 0) c.users.delete(m.user); else c.users.set(m.user, m.n)
          c.total = m.total
          broadcast({ ...m, worker: index }, index)
        }
      })
      w.on('exit', (code, signal) => {
        if (byIndex.get(index) === w) byIndex.delete(index)
        ready.delete(index)
        router.workerGone(index)
        counts.delete(index)
        broadcast({ natkit: 'reset', worker: index })
        if (stopping) { waitForAll(); return }
        if (!allReady) {
          // A worker that cannot start (its port taken, bad TLS files…): stop the others and fail as it did.
          stopping = true
          for (const other of byIndex.values()) other.process.kill('SIGKILL')
          finish(code === 0 || code === null ? ExitCode.Internal : code)
          return
        }
        say('error', 'worker-exit', `worker ${index} exited (${signal ?? String(code)}); its allocations are lost; starting a new one`, { worker: index, code: code ?? undefined, signal: signal ?? undefined })
        fork(index)
      })
    }

    const onAllReady = async (): Promise<void> => {
      allReady = true
      try {
        // TCP and TLS once every worker can take connections.
        for (const { ep, protocol } of streamListeners(options)) await router.listen(ep, protocol)
        const a = { udp: first?.udp ?? [], ...router.addresses }
        for (const proto of ['udp', 'tcp', 'tls'] as const) {
          for (const e of a[proto]) say('info', 'listening', `listening ${proto} ${formatEndpoint(e)}`, { protocol: proto, address: formatEndpoint(e) })
        }
        say('info', 'workers', `workers ${count} (SO_REUSEPORT UDP listeners; TCP and TLS accepted by the primary and handed to workers)`, { workers: count })
        if (options.admin !== undefined) {
          admin = await AdminServer.start({ listen: options.admin, metrics: async () => withPrimaryCounts(await aggregator.clusterMetrics(), router), contentType: aggregator.contentType, healthy: () => stopping ? false : health?.() ?? true })
          const url = `http://${formatEndpoint(admin.local)}/metrics`
          say('info', 'admin', `admin ${url}`, { url })
        }
      } catch (err) {
        say('error', 'error', `error: ${(err as Error).message}`, { error: (err as Error).message })
        stopping = true
        for (const w of byIndex.values()) w.process.kill('SIGKILL')
        finish(ExitCode.Usage)
      }
    }

    let killTimer: NodeJS.Timeout | undefined
    const stop = (how: 'SIGINT' | 'SIGTERM'): void => {
      if (stopping) {
        say('info', 'stopping', 'stopping now')
        for (const w of byIndex.values()) w.process.kill('SIGKILL')
        return
      }
      stopping = true
      // Draining, the listeners stay: RFC 6062 data connections of existing allocations still need them (new
      // Allocates get 508 from the workers).
      if (how === 'SIGINT') router.close()
      if (how === 'SIGTERM') say('info', 'draining', `draining for up to ${options.drainTimeout}s`, { timeout: options.drainTimeout })
      for (const w of byIndex.values()) w.process.kill(how)
      // Bounded: workers that outlive their drain are killed.
      killTimer = setTimeout(() => { for (const w of byIndex.values()) w.process.kill('SIGKILL') }, (how === 'SIGTERM' ? options.drainTimeout * 1000 : 0) + 10_000)
      killTimer.unref()
      waitForAll()
    }
    const onInt = (): void => { stop('SIGINT') }
    const onTerm = (): void => { stop('SIGTERM') }
    const forwardHup = (): void => { for (const w of byIndex.values()) w.process.kill('SIGHUP') }
    const onHup = (): void => {
      if (reload === undefined || !allReady || stopping) { forwardHup(); return }
      // The primary's part first — its TCP and TLS listeners (a new one needs a fixed port, as in the workers, which
      // bind UDP on it too) — then the workers re-read the settings and say what they open and close (UDP).
      reload().then(async (next) => {
        const want = streamListeners(next)
        for (const w of want) {
          if (!router.has(w.ep, w.protocol) && w.ep.port === 0) throw new InvalidArgumentError(`${w.protocol === 'tls' ? '--tls-listen' : '--listen'} ${formatEndpoint(w.ep)}: with --workers, a listener added on reload needs a port`)
        }
        for (const w of want) {
          if (router.has(w.ep, w.protocol)) continue
          const local = await router.listen(w.ep, w.protocol)
          say('info', 'listening', `listening ${w.protocol} ${formatEndpoint(local)}`, { protocol: w.protocol, address: formatEndpoint(local) })
        }
        for (const l of router.list()) {
          if (want.some(w => w.protocol === l.protocol && sameEndpoint(w.ep, l.local))) continue
          router.unlisten(l.local, l.protocol)
          const a = formatEndpoint(l.local)
          say('info', 'listener-removed', `stopped listening ${l.protocol} ${a} (allocations made through it go on until they end)`, { protocol: l.protocol, address: a })
        }
      }).catch((err: Error) => {
        say('error', 'reload-failed', `reload of the TCP/TLS listeners failed, keeping them: ${err.message}`, { error: err.message })
      }).finally(forwardHup)
    }
    process.on('SIGINT', onInt); process.on('SIGTERM', onTerm); process.on('SIGHUP', onHup)
    for (let i = 0; i < count; i++) fork(i)
  })
}
