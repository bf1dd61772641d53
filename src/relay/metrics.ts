/**
 * Relay metrics: a small interface the TURN server reports through, an in-memory implementation, and a
 * Prometheus text-exposition renderer (format 0.0.4) so /metrics works without prom-client. No label carries a
 * username or an address (unbounded cardinality, and personal data).
 */

/** Counters (monotonic). Label values are from small fixed sets. */
export const RELAY_COUNTERS = {
  natkit_relay_allocations_total: { help: 'Allocations created', labels: ['transport'] },
  natkit_relay_allocation_failures_total: { help: 'Allocate requests answered with an error', labels: ['code'] },
  natkit_relay_requests_total: { help: 'STUN/TURN requests received', labels: ['method'] },
  natkit_relay_error_responses_total: { help: 'Error responses sent', labels: ['code'] },
  natkit_relay_auth_failures_total: { help: 'Failed authentications', labels: ['reason'] },
  natkit_relay_packets_total: { help: 'Relayed packets', labels: ['direction'] },
  natkit_relay_bytes_total: { help: 'Relayed payload bytes', labels: ['direction'] },
  natkit_relay_dropped_total: { help: 'Packets dropped', labels: ['reason'] },
  natkit_relay_malformed_total: { help: 'Malformed packets received', labels: ['reason'] },
  natkit_relay_tcp_connections_total: { help: 'RFC 6062 peer TCP connections', labels: ['kind'] }
} as const
/** Gauges (current values). */
export const RELAY_GAUGES = {
  natkit_relay_allocations: { help: 'Current allocations' },
  natkit_relay_permissions: { help: 'Current permissions' },
  natkit_relay_channels: { help: 'Current channel bindings' },
  natkit_relay_tcp_connections: { help: 'Current RFC 6062 peer TCP connections' },
  natkit_relay_client_connections: { help: 'Current TCP/TLS client connections' }
} as const

/** A counter name. */
export type RelayCounter = keyof typeof RELAY_COUNTERS
/** A gauge name. */
export type RelayGauge = keyof typeof RELAY_GAUGES

/** What the relay reports to. A prom-client implementation can wrap Counter/Gauge objects with the same names. */
export interface RelayMetrics {
  /** Add `value` (default 1) to a counter, with its one label value (see RELAY_COUNTERS for the label name). */
  inc (name: RelayCounter, label: string, value?: number): void
  /** Set a gauge. */
  set (name: RelayGauge, value: number): void
}

/** A snapshot: counters by name then label value, gauges by name. */
export interface RelayMetricsSnapshot {
  readonly counters: Record<string, Record<string, number>>
  readonly gauges: Record<string, number>
}

/** RelayMetrics kept in memory, renderable as Prometheus text. */
export class InMemoryRelayMetrics implements RelayMetrics {
  private readonly counters = new Map<string, Map<string, number>>()
  private readonly gauges = new Map<string, number>()

  inc (name: RelayCounter, label: string, value = 1): void {
    let m = this.counters.get(name)
    if (m === undefined) { m = new Map(); this.counters.set(name, m) }
    m.set(label, (m.get(label) ?? 0) + value)
  }

  set (name: RelayGauge, value: number): void {
    this.gauges.set(name, value)
  }

  /** One counter's value for a label (0 when never incremented). */
  get (name: RelayCounter, label: string): number {
    return this.counters.get(name)?.get(label) ?? 0
  }

  /** One counter summed over its labels. */
  total (name: RelayCounter): number {
    let sum = 0
    for (const v of this.counters.get(name)?.values() ?? []) sum += v
    return sum
  }

  /** A gauge's value (0 when never set). */
  gauge (name: RelayGauge): number {
    return this.gauges.get(name) ?? 0
  }

  /** A plain-object copy of everything. */
  snapshot (): RelayMetricsSnapshot {
    const counters: Record<string, Record<string, number>> = {}
    for (const [name, m] of this.counters) counters[name] = Object.fromEntries(m)
    return { counters, gauges: Object.fromEntries(this.gauges) }
  }

  /** Prometheus text exposition format 0.0.4. */
  renderPrometheus (): string {
    return renderPrometheus(this.snapshot())
  }
}

function escapeLabel (value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"')
}

/** Render a snapshot in the Prometheus text exposition format (version 0.0.4). */
export function renderPrometheus (snapshot: RelayMetricsSnapshot): string {
  const lines: string[] = []
  for (const [name, def] of Object.entries(RELAY_COUNTERS)) {
    lines.push(`# HELP ${name} ${def.help}`, `# TYPE ${name} counter`)
    const values = snapshot.counters[name] ?? {}
    const labelName = def.labels[0]
    for (const [label, v] of Object.entries(values)) lines.push(`${name}{${labelName}="${escapeLabel(label)}"} ${v}`)
  }
  for (const [name, def] of Object.entries(RELAY_GAUGES)) {
    lines.push(`# HELP ${name} ${def.help}`, `# TYPE ${name} gauge`, `${name} ${snapshot.gauges[name] ?? 0}`)
  }
  return lines.join('\n') + '\n'
}
