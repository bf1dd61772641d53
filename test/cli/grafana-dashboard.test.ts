import { relayPortBase } from '../support/net.js'
import { expect } from 'chai'
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { natcheckStart } from '../support/cli.js'
import type { Started } from '../support/process.js'
import { freePort } from '../integration/relay/support.js'
import { RELAY_COUNTERS, WORKER_METRICS } from '../../src/relay/metrics.js'
import { httpGet } from './support/metrics.js'

const DASHBOARD = fileURLToPath(new URL('../../../docs/grafana/natkit-relay.json', import.meta.url))

/** PromQL words that are not metric names: aggregations, functions, modifiers, and Grafana's template query. */
const PROMQL_WORDS = new Set([
  'sum', 'avg', 'min', 'max', 'count', 'topk', 'bottomk', 'quantile', 'stddev', 'by', 'without', 'on', 'ignoring',
  'group_left', 'group_right', 'and', 'or', 'unless', 'offset', 'rate', 'irate', 'increase', 'delta', 'deriv',
  'histogram_quantile', 'abs', 'clamp_min', 'clamp_max', 'label_values', 'vector', 'time', 'bool'
])
/** Labels Prometheus adds when it scrapes. */
const SCRAPE_LABELS = new Set(['instance', 'job'])

/** Metric names and label names an expression uses (a small PromQL reader: enough for this dashboard's queries). */
function promqlNames (expr: string): { metrics: Set<string>, labels: Set<string> } {
  const metrics = new Set<string>(); const labels = new Set<string>()
  // Label matchers {a="x", b=~"y"}: label names; the values are strings and not names.
  const bare = expr.replace(/\{([^}]*)\}/g, (_m, inner: string) => {
    for (const m of inner.matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"(?:[^"\\]|\\.)*"/g)) labels.add(m[1])
    return ' '
  }).replace(/\[[^\]]*\]/g, ' ') // range selectors [5m], [$__rate_interval]
    .replace(/"(?:[^"\\]|\\.)*"/g, ' ')
  const grouped = bare.replace(/\b(by|without|on|ignoring)\s*\(([^)]*)\)/g, (_m, _w: string, inner: string) => {
    for (const l of inner.split(',').map(s => s.trim()).filter(s => s !== '')) labels.add(l)
    return ' '
  })
  // label_values(metric, label)
  const templ = grouped.replace(/label_values\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)\s*,\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\)/g, (_m, metric: string, label: string) => {
    metrics.add(metric); labels.add(label); return ' '
  })
  for (const m of templ.matchAll(/\$?[a-zA-Z_:][a-zA-Z0-9_:]*/g)) {
    const w = m[0]
    if (w.startsWith('$') || PROMQL_WORDS.has(w)) continue
    metrics.add(w)
  }
  return { metrics, labels }
}

describe('Grafana dashboard docs/grafana/natkit-relay.json', function () {
  this.timeout(30_000)
  let relay: Started | undefined
  after(async () => { await relay?.stop() })

  const dashboard = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as {
    uid: string, panels: Array<{ id: number, title: string, targets: Array<{ expr: string }> }>, templating: { list: Array<{ query?: unknown }> }
  }
  const exprs = [
    ...dashboard.panels.flatMap(p => p.targets.map(t => ({ where: `panel "${p.title}"`, expr: t.expr }))),
    ...dashboard.templating.list.flatMap(v => typeof v.query === 'object' && v.query !== null && 'query' in v.query ? [{ where: 'template variable', expr: String((v.query as { query: string }).query) }] : [])
  ]

  it('reads PromQL names correctly (the checker below relies on it)', () => {
    const n = promqlNames('sum by (code) (rate(natkit_relay_allocation_failures_total{instance=~"$instance", x!="a b"}[$__rate_interval])) / 8 * process_open_fds')
    expect([...n.metrics]).to.have.members(['natkit_relay_allocation_failures_total', 'process_open_fds'])
    expect([...n.labels]).to.have.members(['code', 'instance', 'x'])
  })

  it('is a dashboard with unique panel ids, each panel with at least one query', () => {
    expect(dashboard.uid).to.equal('natkit-relay')
    const ids = dashboard.panels.map(p => p.id)
    expect(new Set(ids).size).to.equal(ids.length)
    for (const p of dashboard.panels) expect(p.targets.length, p.title).to.be.at.least(1)
  })

  it('references only metrics that a running relay\'s /metrics exposes, with labels they carry', async () => {
    const port = await freePort()
    const admin = await freePort()
    const base = relayPortBase()
    relay = await natcheckStart(['relay', '--listen', `127.0.0.1:${port}`, '--ports', `${base}-${base + 99}`, '--realm', 'r', '--user', 'u:p', '--admin', `127.0.0.1:${admin}`], /admin http:/)
    const body = await httpGet(admin, '/metrics', 5000)
    const exposed = new Set([...body.matchAll(/^# TYPE (\S+) /gm)].map(m => m[1]))
    expect(exposed.size).to.be.greaterThan(20)

    const used = new Set<string>()
    for (const { where, expr } of exprs) {
      const { metrics, labels } = promqlNames(expr)
      expect(metrics.size, `${where}: ${expr}`).to.be.at.least(1)
      for (const m of metrics) {
        used.add(m)
        expect(exposed.has(m), `${where} uses ${m}, which /metrics does not expose`).to.equal(true)
        const def = m in WORKER_METRICS ? { labels: ['worker'] } : (RELAY_COUNTERS as Record<string, { labels: readonly string[] } | undefined>)[m]
        for (const l of labels) {
          if (SCRAPE_LABELS.has(l)) continue
          expect(def?.labels ?? [], `${where}: ${m} has no label ${l}`).to.include(l)
        }
      }
    }
    // The dashboard covers what the issue asks for.
    for (const m of ['natkit_relay_allocations', 'natkit_relay_packets_total', 'natkit_relay_bytes_total', 'natkit_relay_auth_failures_total', 'natkit_relay_quota_refusals_total', 'process_cpu_seconds_total', 'natkit_relay_worker_cpu_seconds_total', 'natkit_relay_worker_allocations']) {
      expect(used, m).to.include(m)
    }
  })
})
