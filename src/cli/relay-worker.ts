import cluster from 'node:cluster'
import type { Socket } from 'node:net'
import { AggregatorRegistry } from 'prom-client'
import { InvalidArgumentError } from '../errors.js'
import { createLogger } from '../log.js'
import { formatEndpoint, type Endpoint } from '../net/endpoint.js'
import type { PrometheusRelayMetrics } from '../relay/metrics.js'
import type { TurnServer, TurnServerOptions } from '../relay/turn-server.js'
import type { HandoffMessage, HandoffReport, RouterCount } from './relay-stream-router.js'
import { ExitCode } from './exit-codes.js'

/**
 * A relay worker process's side of `natcheck relay --workers N` (the primary is relay-workers.ts, which says how the
 * work is shared): its options, its mirror of the other workers' quota counts, the connections the primary hands it,
 * and the IPC messages between the two.
 */

/** Environment variables the primary hands each worker. */
export const ENV = {
  index: 'NATKIT_RELAY_WORKER_INDEX',
  count: 'NATKIT_RELAY_WORKER_COUNT',
  secret: 'NATKIT_RELAY_WORKER_SECRET',
  listen: 'NATKIT_RELAY_WORKER_LISTEN'
} as const

/** IPC messages between primary and workers (other cluster messages, e.g. prom-client's, are ignored). */
export type WorkerMessage =
  | { natkit: 'ready', addresses: { udp: Endpoint[], tcp: Endpoint[], tls: Endpoint[] } }
  | { natkit: 'count', worker: number, user: string, n: number, total: number }
  | { natkit: 'reset', worker: number }
  | HandoffMessage | HandoffReport | RouterCount

const log = createLogger('natcheck:relay:workers')

/** Sends to a closing IPC channel fail; the receiver is going away, so there is nothing to do. */
export function ignoreSendError (err: Error | null): void {
  if (err !== null) log.trace('IPC send failed: %s', err.message)
}

/** Whether an IPC message is one of natkit's (not prom-client's or node:cluster's own). */
export function isWorkerMessage (m: unknown): m is WorkerMessage {
  return typeof m === 'object' && m !== null && typeof (m as { natkit?: unknown }).natkit === 'string'
}

/** Worker `index`'s slice of the relay port range [low, high] split `count` ways. */
export function portSlice (range: readonly [number, number], index: number, count: number): [number, number] {
  const size = Math.floor((range[1] - range[0] + 1) / count)
  if (size < 2) throw new InvalidArgumentError(`--ports ${range[0]}-${range[1]} is too small for ${count} workers (each needs 2 ports at least)`)
  const low = range[0] + index * size
  return [low, index === count - 1 ? range[1] : low + size - 1]
}

/** This process's part when it is a relay worker, or undefined (the primary, or a single process). */
export function currentWorker (): RelayWorker | undefined {
  if (!cluster.isWorker || process.env[ENV.index] === undefined) return undefined
  return new RelayWorker(Number(process.env[ENV.index]), Number(process.env[ENV.count]),
    Buffer.from(process.env[ENV.secret] ?? '', 'hex'), JSON.parse(process.env[ENV.listen] ?? '{}') as ResolvedListen)
}

interface ResolvedListen { listen?: Endpoint[], tls?: Endpoint[] }

/** A worker process's side: its options, quota mirror and messages to the primary. */
export class RelayWorker {
  private readonly ownUsers = new Map<string, number>()
  private ownTotal = 0
  private readonly userOf = new Map<number, string>()
  private readonly remote = new Map<number, { users: Map<string, number>, total: number }>()

  constructor (readonly index: number, readonly count: number, private readonly secret: Buffer, private readonly resolved: ResolvedListen) {
    process.on('message', (m: unknown, handle: unknown) => { if (isWorkerMessage(m)) this.onMessage(m, handle) })
    // The primary is gone (killed, crashed): nobody forwards signals or serves /metrics any more, so stop at once
    // rather than linger as an orphan holding the ports.
    process.once('disconnect', () => { if (!this.leaving) process.exit(ExitCode.Internal) })
  }

  private leaving = false
  private server: TurnServer | undefined
  private metrics: PrometheusRelayMetrics | undefined
  /** Configured listen address → the one the primary bound (its port 0 resolved), learnt on the first apply. */
  private readonly resolvedBy: { listen?: Map<string, Endpoint>, tls?: Map<string, Endpoint> } = {}

  /**
   * The relay options of this worker: shared listeners, the shared nonce secret, its slice of the relay ports. On a
   * reload, listen addresses the primary resolved keep their resolved port; a new one needs a fixed port (port 0 would
   * pick a different port in every worker): InvalidArgumentError otherwise.
   */
  apply<T extends TurnServerOptions & { admin?: Endpoint, rendezvous?: Endpoint }> (options: T): T {
    const listen = this.resolve('listen', options.listen ?? [{ address: '127.0.0.1', port: 3478 }])
    const tlsListen = options.tls === undefined ? undefined : this.resolve('tls', options.tls.listen)
    return {
      ...options,
      listen,
      tls: options.tls === undefined || tlsListen === undefined ? undefined : { ...options.tls, listen: tlsListen },
      // The primary listens on TCP and TLS and hands the connections over (relay-stream-router.ts).
      streamHandoff: true,
      connectionIds: { index: this.index, of: this.count },
      reusePort: options.udp !== false,
      nonceSecret: this.secret,
      portRange: portSlice(options.portRange ?? [49152, 65535], this.index, this.count),
      admin: undefined,
      rendezvous: undefined
    }
  }

  private resolve (kind: 'listen' | 'tls', configured: readonly Endpoint[]): Endpoint[] {
    const resolved = this.resolved[kind]
    if (resolved === undefined) return [...configured]
    let map = this.resolvedBy[kind]
    if (map === undefined) {
      map = new Map(configured.map((e, i) => [formatEndpoint(e), resolved[i] ?? e]))
      this.resolvedBy[kind] = map
    }
    const known = map
    return configured.map((e) => {
      const r = known.get(formatEndpoint(e))
      if (r !== undefined) return r
      if (e.port === 0) throw new InvalidArgumentError(`${kind === 'tls' ? '--tls-listen' : '--listen'} ${formatEndpoint(e)}: with --workers, a listener added on reload needs a port (port 0 would differ between workers)`)
      return e
    })
  }

  /** Wire the server: quotas count the other workers' allocations; this worker's counts go to them. */
  attach (server: TurnServer, metrics: PrometheusRelayMetrics): void {
    this.server = server
    this.metrics = metrics
    new AggregatorRegistry() // installs the worker's answer to the primary's metrics requests
    AggregatorRegistry.setRegistries([metrics.registry])
    server.core.sharedReservations = true
    server.core.quotaElsewhere = {
      user: (name) => { let n = 0; for (const r of this.remote.values()) n += r.users.get(name) ?? 0; return n },
      total: () => { let n = 0; for (const r of this.remote.values()) n += r.total; return n }
    }
    server.on('allocation', (e) => { this.userOf.set(e.id, e.username); this.change(e.username, +1) })
    server.on('deallocation', (e) => {
      const user = this.userOf.get(e.id)
      if (user === undefined) return
      this.userOf.delete(e.id)
      this.change(user, -1)
    })
  }

  /** Tell the primary this worker listens. */
  ready (addresses: { udp: readonly Endpoint[], tcp: readonly Endpoint[], tls: readonly Endpoint[] }): void {
    this.send({ natkit: 'ready', addresses: { udp: [...addresses.udp], tcp: [...addresses.tcp], tls: [...addresses.tls] } })
  }

  /** Let the process exit once the relay has stopped (the IPC channel would keep it alive). */
  done (): void {
    this.leaving = true
    if (process.connected) process.disconnect()
  }

  private change (user: string, delta: number): void {
    const n = (this.ownUsers.get(user) ?? 0) + delta
    if (n <= 0) this.ownUsers.delete(user); else this.ownUsers.set(user, n)
    this.ownTotal += delta
    this.send({ natkit: 'count', worker: this.index, user, n: Math.max(0, n), total: this.ownTotal })
  }

  private send (m: WorkerMessage): void {
    // With a callback, a channel closing under us (the primary stopping) is reported there, not thrown.
    if (process.connected && process.send !== undefined) process.send(m, undefined, undefined, ignoreSendError)
  }

  private onMessage (m: WorkerMessage, handle: unknown): void {
    if (m.natkit === 'connection') {
      this.onConnection(m, handle)
    } else if (m.natkit === 'count-close') {
      this.metrics?.inc('natkit_relay_connections_closed_total', m.reason)
    } else if (m.natkit === 'count-malformed') {
      this.metrics?.inc('natkit_relay_malformed_total', 'stream-framing')
    } else if (m.natkit === 'count' && m.worker !== this.index) {
      let r = this.remote.get(m.worker)
      if (r === undefined) { r = { users: new Map(), total: 0 }; this.remote.set(m.worker, r) }
      if (m.n === 0) r.users.delete(m.user); else r.users.set(m.user, m.n)
      r.total = m.total
    } else if (m.natkit === 'reset') this.remote.delete(m.worker)
  }

  /** A connection the primary accepted and handed over: serve it, and report when it authenticates and ends. */
  private onConnection (m: HandoffMessage, handle: unknown): void {
    const socket = handle as Socket | undefined
    const closed = (): void => { this.send({ natkit: 'connection-closed', key: m.key }) }
    if (socket === undefined || typeof socket.destroy !== 'function') { closed(); return }
    if (this.server === undefined || this.leaving) { socket.destroy(); closed(); return }
    this.server.serveConnection(socket, m.protocol, m.bytes === '' ? undefined : Buffer.from(m.bytes, 'base64'), {
      authenticated: () => { this.send({ natkit: 'connection-authenticated', key: m.key }) },
      closed
    })
  }
}
