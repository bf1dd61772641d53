import { readdirSync, readFileSync } from 'node:fs'
import { pathToFileURL } from 'node:url'
import { freeUdpPort, killAll, procStat, stopChild } from './support.js'
import { buildLoadGenerator, runLoad, startServer } from './relay-saturate.js'

/**
 * `npm run soak` (not in CI): natkit's relay (all workers) under steady relaying plus allocation churn for
 * SOAK_SECONDS (default 1800): back-to-back runs of bench/native/turn-load.c of SOAK_CHUNK seconds (default 60), each
 * making SOAK_ALLOCS new allocations (default 32, 4 messages in flight each) that are left to expire (600 s), so
 * after the first 600 s allocations expire as fast as they are made. After each run it samples the relay's process
 * tree: resident memory and open file descriptors. Reports their growth from the first sample after SOAK_WARMUP
 * (default 660 s) to the last, and packets lost against packets sent. Targets (issue 10): RSS growth < 5 %, no fd
 * growth, no loss beyond the generator's own.
 */

function tree (pid: number): number[] {
  let kids: number[] = []
  try { kids = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(s => s !== '').map(Number) } catch { return [] }
  return [pid, ...kids.flatMap(tree)]
}

/** The tree's totals, and each process's resident MiB (the primary first, then its workers) to tell who grows. */
function sample (pid: number): { rssBytes: number, fds: number, processes: number, rssMiB: number[] } {
  let rssBytes = 0; let fds = 0
  const pids = tree(pid)
  const rssMiB: number[] = []
  for (const p of pids) {
    try {
      const rss = procStat(p).rssBytes
      rssBytes += rss; fds += readdirSync(`/proc/${p}/fd`).length
      rssMiB.push(Number((rss / 2 ** 20).toFixed(1)))
    } catch { /* gone */ }
  }
  return { rssBytes, fds, processes: pids.length, rssMiB }
}

/**
 * The least-squares line through RSS over time after warm-up: its rise over that span as a percentage of its start
 * (null with fewer than 3 samples). Unlike first-versus-last, one sample taken just before or after a collection
 * barely moves it.
 */
export function rssTrend (samples: ReadonlyArray<{ t: number, rssBytes: number }>): number | null {
  if (samples.length < 3) return null
  const n = samples.length
  const mt = samples.reduce((a, s) => a + s.t, 0) / n
  const mr = samples.reduce((a, s) => a + s.rssBytes, 0) / n
  let num = 0; let den = 0
  for (const s of samples) { num += (s.t - mt) * (s.rssBytes - mr); den += (s.t - mt) ** 2 }
  if (den === 0) return null
  const slope = num / den
  const t0 = samples[0].t; const t1 = samples[n - 1].t
  const start = mr + slope * (t0 - mt)
  return Number((100 * slope * (t1 - t0) / start).toFixed(2))
}

/** The median RSS of the last fifth of the samples after warm-up against that of the first fifth (at least 3 each). */
export function rssMedianGrowth (samples: ReadonlyArray<{ rssBytes: number }>): number | null {
  const k = Math.max(3, Math.floor(samples.length / 5))
  if (samples.length < 2 * k) return null
  const median = (xs: number[]): number => { const v = [...xs].sort((a, b) => a - b); return v[Math.floor(v.length / 2)] }
  const a = median(samples.slice(0, k).map(s => s.rssBytes)); const b = median(samples.slice(-k).map(s => s.rssBytes))
  return Number((100 * (b - a) / a).toFixed(2))
}

export async function soakRelay (): Promise<Record<string, unknown>> {
  const buildError = buildLoadGenerator()
  if (buildError !== undefined) return { unavailable: buildError }
  const total = Number(process.env.SOAK_SECONDS ?? 1800)
  const chunk = Number(process.env.SOAK_CHUNK ?? 60)
  const warmup = Number(process.env.SOAK_WARMUP ?? 660)
  const allocs = Number(process.env.SOAK_ALLOCS ?? 32)
  const port = await freeUdpPort()
  const child = await startServer('natkit', port)
  const pid = child.pid as number
  const samples: Array<{ t: number, rssBytes: number, fds: number, processes: number, rssMiB: number[], relayedPerSecond: number }> = []
  let sent = 0; let received = 0; let lost = 0
  const started = Date.now()
  try {
    while ((Date.now() - started) / 1000 + chunk <= total) {
      const r = await runLoad(port, allocs, 4, chunk, 100)
      sent += r.sent; received += r.received; lost += r.lost
      const s = sample(pid)
      const t = Math.round((Date.now() - started) / 1000)
      samples.push({ t, ...s, relayedPerSecond: Math.round(r.relayedPacketsPerSecond) })
      console.error(`soak: t=${t}s rss=${(s.rssBytes / 2 ** 20).toFixed(1)} MiB fds=${s.fds} processes=${s.processes} per-process=${s.rssMiB.join('/')} MiB relayed/s=${Math.round(r.relayedPacketsPerSecond)} lost=${r.lost}`)
    }
  } finally {
    await stopChild(child, 5000)
    killAll()
  }
  const after = samples.filter(s => s.t >= warmup)
  const first = after[0]; const last = after[after.length - 1]
  return {
    seconds: total, chunkSeconds: chunk, warmupSeconds: warmup, allocationsPerChunk: allocs,
    sent, received, lost, lossRate: sent === 0 ? 0 : Number((lost / sent).toFixed(6)),
    // Two single samples: a worker's RSS swings by 30-40 MiB with the timing of V8's collections (see docs/relay.md),
    // so this says little on its own; the trend and the window medians below are the growth figures.
    rssGrowthPercent: first === undefined ? null : Number((100 * (last.rssBytes - first.rssBytes) / first.rssBytes).toFixed(2)),
    rssTrendPercent: rssTrend(after),
    rssMedianGrowthPercent: rssMedianGrowth(after),
    fdGrowth: first === undefined ? null : last.fds - first.fds,
    samples
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  console.log(JSON.stringify(await soakRelay(), null, 2))
}
