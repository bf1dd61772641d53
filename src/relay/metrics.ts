import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client'

/**
 * Relay metrics: the small interface the TURN server reports through, an in-memory implementation (what tests and
 * stats() read), and PrometheusRelayMetrics, which exposes the same numbers through prom-client with a registry of
 * its own (never the global one, so several servers can run in one process). No label carries a username or an
 * address (unbounded cardinality, and personal data).
 */

/** Counters (monotonic). Label values are from small fixed sets. */
export const RELAY_COUNTERS = {
  natkit_relay_allocations_total: { help: 'Allocations created', labels: ['transport'] },
  natkit_relay_allocation_failures_total: { help: 'Allocate requests answered with an error', labels: ['code'] },
  natkit_relay_requests_total: { help: 'STUN/TURN requests received', labels: ['method'] },
  natkit_relay_error_responses_total: { help: 'Error responses sent', labels: ['code'] },
  natkit_relay_auth_failures_total: { help: 'Failed authentications', labels: ['reason'] },
  natkit_relay_quota_refusals_total: { help: 'Allocate requests refused with 486, by quota (user, total)', labels: ['quota'] },
  natkit_relay_packets_total: { help: 'Relayed packets', labels: ['direction'] },
  natkit_relay_bytes_total: { help: 'Relayed payload bytes', labels: ['direction'] },
  natkit_relay_dropped_total: { help: 'Packets dropped', labels: ['reason'] },
  natkit_relay_malformed_total: { help: 'Malformed packets received', labels: ['reason'] },
  natkit_relay_tcp_connections_total: { help: 'RFC 6062 peer TCP connections', labels: ['kind'] },
  natkit_relay_connections_closed_total: { help: 'TCP/TLS client connections refused or closed by the connection limits', labels: ['reason'] }
} as const
/** Gauges (current values). */
export const RELAY_GAUGES = {
  natkit_relay_allocations: { help: 'Current allocations' },
  natkit_relay_permissions: { help: 'Current permissions' },
  natkit_relay_channels: { help: 'Current channel bindings' },
  natkit_relay_tcp_connections: { help: 'Current RFC 6062 peer TCP connections' },
  natkit_relay_client_connections: { help: 'Current TCP/TLS client connections' },
  natkit_relay_unauthenticated_connections: { help: 'Current TCP/TLS client connections not yet authenticated' },
  natkit_relay_client_queued_bytes: { help: 'Bytes queued for writing to TCP/TLS clients' }
} as const

/** A counter name. */
export type RelayCounter = keyof typeof RELAY_COUNTERS
/** A gauge name. */
export type RelayGauge = keyof typeof RELAY_GAUGES

/** What the relay reports to. */
export interface RelayMetrics {
  /** Add `value` (default 1) to a counter, with its one label value (see RELAY_COUNTERS for the label name). */
  inc (name: RelayCounter, label: string, value?: number): void
  /** Set a gauge. */
  set (name: RelayGauge, value: number): void
  /**
   * Register a function to run before the metrics are read (a snapshot, a scrape): the core uses it to flush the
   * traffic counters it keeps in plain numbers on the hot path. Optional for implementations.
   */
  onCollect? (collector: () => void): void
}

/** A snapshot: counters by name then label value, gauges by name. */
export interface RelayMetricsSnapshot {
  readonly counters: Record<string, Record<string, number>>
  readonly gauges: Record<string, number>
}

/** RelayMetrics kept in memory. */
export class InMemoryRelayMetrics implements RelayMetrics {
  private readonly counters = new Map<string, Map<string, number>>()
  private readonly gauges = new Map<string, number>()
  private readonly collectors: Array<() => void> = []

  inc (name: RelayCounter, label: string, value = 1): void {
    let m = this.counters.get(name)
    if (m === undefined) { m = new Map(); this.counters.set(name, m) }
    m.set(label, (m.get(label) ?? 0) + value)
  }

  set (name: RelayGauge, value: number): void {
    this.gauges.set(name, value)
  }

  onCollect (collector: () => void): void {
    this.collectors.push(collector)
  }

  /** Run the registered collectors (done by every read below). */
  collect (): void {
    for (const c of this.collectors) c()
  }

  /** One counter's value for a label (0 when never incremented). */
  get (name: RelayCounter, label: string): number {
    this.collect()
    return this.counters.get(name)?.get(label) ?? 0
  }

  /** One counter summed over its labels. */
  total (name: RelayCounter): number {
    this.collect()
    let sum = 0
    for (const v of this.counters.get(name)?.values() ?? []) sum += v
    return sum
  }

  /** A gauge's value (0 when never set). */
  gauge (name: RelayGauge): number {
    this.collect()
    return this.gauges.get(name) ?? 0
  }

  /** A plain-object copy of everything. */
  snapshot (): RelayMetricsSnapshot {
    this.collect()
    const counters: Record<string, Record<string, number>> = {}
    for (const [name, m] of this.counters) counters[name] = Object.fromEntries(m)
    return { counters, gauges: Object.fromEntries(this.gauges) }
  }
}

/** Options for PrometheusRelayMetrics. */
export interface PrometheusRelayMetricsOptions {
  /** Also export prom-client's default process metrics (CPU, memory, event loop lag, GC) (default false). */
  readonly processMetrics?: boolean
  /**
   * This process's worker number (default 0), the `worker` label of the per-worker load metrics (WORKER_GAUGES), so
   * that they stay apart when the metrics of several worker processes are summed (prom-client's AggregatorRegistry).
   */
  readonly worker?: number
}

/** Per-worker load, labelled `worker`: one series per relay worker process (see src/cli/relay-workers.ts). */
export const WORKER_METRICS = {
  natkit_relay_worker_allocations: { help: 'Current allocations held by this worker process', type: 'gauge' },
  natkit_relay_worker_client_connections: { help: 'Current TCP/TLS client connections served by this worker process', type: 'gauge' },
  natkit_relay_worker_cpu_seconds_total: { help: 'CPU seconds (user + system) used by this worker process', type: 'counter' }
} as const

/**
 * The relay metrics as Prometheus exposition through prom-client, with a Registry of its own. The in-memory values
 * stay the source of truth (the hot path never calls prom-client); each prom-client metric copies them in its
 * `collect` hook when scraped, under the names and labels of RELAY_COUNTERS and RELAY_GAUGES.
 */
export class PrometheusRelayMetrics extends InMemoryRelayMetrics {
  /** This server's registry (not prom-client's global default). */
  readonly registry = new Registry()

  constructor (options: PrometheusRelayMetricsOptions = {}) {
    super()
    const values = (): RelayMetricsSnapshot => this.snapshot()
    for (const [name, def] of Object.entries(RELAY_COUNTERS)) {
      const labelName = def.labels[0]
      const counter: Counter<string> = new Counter({
        name,
        help: def.help,
        labelNames: [labelName],
        registers: [this.registry],
        collect () {
          counter.reset()
          for (const [label, v] of Object.entries(values().counters[name] ?? {})) counter.inc({ [labelName]: label }, v)
        }
      })
    }
    for (const [name, def] of Object.entries(RELAY_GAUGES)) {
      const gauge: Gauge<string> = new Gauge({
        name,
        help: def.help,
        registers: [this.registry],
        collect () { gauge.set(values().gauges[name] ?? 0) }
      })
    }
    const worker = String(options.worker ?? 0)
    const allocations: Gauge<string> = new Gauge({
      name: 'natkit_relay_worker_allocations',
      help: WORKER_METRICS.natkit_relay_worker_allocations.help,
      labelNames: ['worker'],
      registers: [this.registry],
      collect () { allocations.set({ worker }, values().gauges.natkit_relay_allocations ?? 0) }
    })
    const connections: Gauge<string> = new Gauge({
      name: 'natkit_relay_worker_client_connections',
      help: WORKER_METRICS.natkit_relay_worker_client_connections.help,
      labelNames: ['worker'],
      registers: [this.registry],
      collect () { connections.set({ worker }, values().gauges.natkit_relay_client_connections ?? 0) }
    })
    const cpu: Counter<string> = new Counter({
      name: 'natkit_relay_worker_cpu_seconds_total',
      help: WORKER_METRICS.natkit_relay_worker_cpu_seconds_total.help,
      labelNames: ['worker'],
      registers: [this.registry],
      collect () {
        const u = process.cpuUsage()
        cpu.reset()
        cpu.inc({ worker }, (u.user + u.system) / 1e6)
      }
    })
    if (options.processMetrics === true) collectDefaultMetrics({ register: this.registry })
  }

  /** The Content-Type of render()'s output (Prometheus text format 0.0.4). */
  get contentType (): string {
    return this.registry.contentType
  }

  /** The Prometheus text exposition of every metric in the registry. */
  async render (): Promise<string> {
    return await this.registry.metrics()
  }
}
