import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { createSocket } from 'node:dgram'
import { readFileSync } from 'node:fs'
import { availableParallelism } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { CLI, freeUdpPort, killAll, median, procStat, stopChild, track } from './support.js'

/**
 * The relay at saturation, natkit (all workers: `natcheck relay`, one worker per CPU) against coturn's turnserver
 * (its default relay threads) in one run, on 127.0.0.1. The C generator bench/native/turn-load.c makes ALLOCS
 * allocations with channels to an echo peer of its own and keeps INFLIGHT ChannelData messages in flight on each
 * (sendmmsg/recvmmsg), every echo answered by a new message, for SECONDS; rounds alternate between the servers.
 * Reports delivered relayed packets per second (each echo is two) and server CPU-seconds (the whole process tree,
 * from /proc) per million relayed packets, and the natkit/coturn ratios. natkit runs three times: with its native fast
 * path for established channels (the default), the same with UDP GSO off (natkit-nogso: NATKIT_UDP_GSO=0, one
 * datagram per message), and with `--no-fast-path` (natkit-js: every packet through JS). On a 2-core machine the generator takes a
 * core of its own, so both servers are measured with the same competition for CPU.
 *
 * Standalone: `node dist/bench/relay-saturate.js [--json]` (env BENCH_SAT_SECONDS, BENCH_SAT_ROUNDS,
 * BENCH_SAT_ALLOCS, BENCH_SAT_INFLIGHT, BENCH_SAT_PAYLOAD, BENCH_SAT_KINDS: a comma-separated subset of natkit,natkit-nogso,natkit-js,coturn). Needs gcc and libssl-dev (-lcrypto) for the generator.
 */

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..')
const LOAD_SOURCE = join(ROOT, 'bench', 'native', 'turn-load.c')
const LOAD_BIN = '/tmp/natkit-turn-load'
const USER = 'bench'
const PASS = 'bench-pass'
const REALM = 'natkit.bench'
const RELAY_PORTS: [number, number] = [10000, 29999]

/**
 * natkit (native fast path on, the default), natkit-nogso (the same with UDP GSO off, NATKIT_UDP_GSO=0), natkit-js
 * (`--no-fast-path`: every packet through JS), coturn.
 */
export type Kind = 'natkit' | 'natkit-nogso' | 'natkit-js' | 'coturn'
const KINDS: readonly Kind[] = ['natkit', 'natkit-nogso', 'natkit-js', 'coturn']

/** CPU seconds of a process and all its descendants (natkit's workers are child processes). */
export function treeCpu (pid: number): number {
  let cpu = 0
  try { cpu = procStat(pid).cpu } catch { return 0 }
  let kids: number[] = []
  try { kids = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(s => s !== '').map(Number) } catch { /* gone */ }
  for (const k of kids) cpu += treeCpu(k)
  return cpu
}

async function probe (port: number, timeoutMs: number): Promise<boolean> {
  const s = createSocket('udp4')
  const req = Buffer.from('000100002112a442000000000000000000000001', 'hex')
  try {
    return await new Promise<boolean>((resolve) => {
      const again = setInterval(() => { s.send(req, port, '127.0.0.1') }, 100)
      const deadline = setTimeout(() => { clearInterval(again); resolve(false) }, timeoutMs)
      s.on('message', () => { clearTimeout(deadline); clearInterval(again); resolve(true) })
      s.on('error', () => {})
      s.send(req, port, '127.0.0.1')
    })
  } finally {
    s.close()
  }
}

export async function startServer (kind: Kind, port: number): Promise<ChildProcess> {
  const child = kind === 'coturn'
    ? track(spawn('turnserver', ['-c', '/dev/null', '-n', '--no-cli', '--listening-ip', '127.0.0.1', '--listening-port', String(port),
      '--relay-ip', '127.0.0.1', '--min-port', String(RELAY_PORTS[0]), '--max-port', String(RELAY_PORTS[1]), '--allow-loopback-peers',
      '--user', `${USER}:${PASS}`, '--realm', REALM, '--lt-cred-mech', '--log-file', '/dev/null', '--no-tls', '--no-dtls', '--no-tcp'], { stdio: 'ignore' }))
    : track(spawn(process.execPath, [CLI, 'relay', '--listen', `127.0.0.1:${port}`, '--realm', REALM, '--user', `${USER}:${PASS}`,
      '--allow-peer', '127.0.0.0/8', '--ports', `${RELAY_PORTS[0]}-${RELAY_PORTS[1]}`, '--total-quota', '100000', ...(kind === 'natkit-js' ? ['--no-fast-path'] : [])],
    { stdio: 'ignore', env: { ...process.env, DEBUG: '', ...(kind === 'natkit-nogso' ? { NATKIT_UDP_GSO: '0' } : {}) } }))
  if (!await probe(port, 10_000)) throw new Error(`${kind} did not answer on 127.0.0.1:${port} within 10 s`)
  // natkit's workers answer one by one: give the last one time to bind.
  await new Promise((resolve) => setTimeout(resolve, 1000))
  return child
}

export interface LoadResult { allocations: number, sent: number, received: number, lost: number, seconds: number, relayedPacketsPerSecond: number, error?: string }

/** Build the generator (gcc, -lcrypto); an error message, or undefined when it is ready. */
export function buildLoadGenerator (): string | undefined {
  const build = spawnSync('gcc', ['-O2', '-o', LOAD_BIN, LOAD_SOURCE, '-lcrypto'], { encoding: 'utf8' })
  return build.status === 0 ? undefined : `cannot build turn-load.c (needs gcc and libssl-dev): ${build.stderr ?? build.error?.message ?? ''}`
}

export async function runLoad (port: number, allocs: number, inflight: number, seconds: number, payload: number): Promise<LoadResult> {
  const c = track(spawn(LOAD_BIN, ['127.0.0.1', String(port), USER, PASS, String(allocs), String(inflight), String(seconds), String(payload)], { stdio: ['ignore', 'pipe', 'pipe'] }))
  let out = ''; let err = ''
  c.stdout?.on('data', (d: Buffer) => { out += d.toString() })
  c.stderr?.on('data', (d: Buffer) => { err += d.toString() })
  const timer = setTimeout(() => { if (c.pid !== undefined) try { process.kill(c.pid, 'SIGKILL') } catch {} }, (seconds + 60) * 1000)
  const code = await new Promise<number | null>(resolve => c.once('exit', (code) => { resolve(code) }))
  clearTimeout(timer)
  const r = JSON.parse(out.trim() || '{}') as LoadResult
  if (code !== 0 || r.error !== undefined) throw new Error(`turn-load failed (${code}): ${r.error ?? err}`)
  return r
}

/** Options (defaults: 10 s, 2 rounds, 64 allocations × 16 in flight, 100-byte payloads). */
export interface BenchRelaySaturateOptions { seconds?: number, rounds?: number, allocs?: number, inflight?: number, payload?: number }

/** Run the saturation benchmark; a result object with per-server medians and the ratios. */
export async function benchRelaySaturate (o: BenchRelaySaturateOptions = {}): Promise<Record<string, unknown>> {
  const has = (cmd: string): boolean => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0
  const buildError = buildLoadGenerator()
  if (buildError !== undefined) return { unavailable: buildError }
  const seconds = o.seconds ?? Number(process.env.BENCH_SAT_SECONDS ?? 10)
  const rounds = o.rounds ?? Number(process.env.BENCH_SAT_ROUNDS ?? 2)
  const allocs = o.allocs ?? Number(process.env.BENCH_SAT_ALLOCS ?? 64)
  const inflight = o.inflight ?? Number(process.env.BENCH_SAT_INFLIGHT ?? 16)
  const payload = o.payload ?? Number(process.env.BENCH_SAT_PAYLOAD ?? 100)
  const wanted = (process.env.BENCH_SAT_KINDS ?? KINDS.join(',')).split(',').map(k => k.trim())
  const unknown = wanted.filter(k => !KINDS.includes(k as Kind))
  if (unknown.length > 0) return { unavailable: `unknown BENCH_SAT_KINDS ${unknown.join(',')}: use ${KINDS.join(',')}` }
  const kinds = KINDS.filter(k => wanted.includes(k) && (k !== 'coturn' || has('turnserver')))
  const runs: Record<Kind, Array<{ relayedPerSecond: number, cpuSeconds: number, cpuPerMillion: number, lost: number }>> = { natkit: [], 'natkit-nogso': [], 'natkit-js': [], coturn: [] }
  try {
    for (let round = 0; round < rounds; round++) {
      for (const kind of kinds) {
        const port = await freeUdpPort()
        const child = await startServer(kind, port)
        try {
          const pid = child.pid as number
          const before = treeCpu(pid)
          const r = await runLoad(port, allocs, inflight, seconds, payload)
          const cpu = treeCpu(pid) - before
          const relayed = 2 * r.received
          runs[kind].push({ relayedPerSecond: Math.round(r.relayedPacketsPerSecond), cpuSeconds: Number(cpu.toFixed(2)), cpuPerMillion: Number((cpu / (relayed / 1e6)).toFixed(2)), lost: r.lost })
          console.error(`relay-saturate: round ${round + 1} ${kind}: ${Math.round(r.relayedPacketsPerSecond)} relayed packets/s, ${cpu.toFixed(2)} CPU-s, lost ${r.lost}`)
        } finally {
          await stopChild(child, 3000)
        }
      }
    }
  } finally {
    killAll()
  }
  const summary = (k: Kind): Record<string, number> | undefined => runs[k].length === 0
    ? undefined
    : { relayedPacketsPerSecond: median(runs[k].map(r => r.relayedPerSecond)), cpuSecondsPerMillionRelayed: median(runs[k].map(r => r.cpuPerMillion)) }
  const n = summary('natkit'); const g = summary('natkit-nogso'); const j = summary('natkit-js'); const c = summary('coturn')
  const ratio = (a: Record<string, number> | undefined, b: Record<string, number> | undefined, key: string): number | undefined =>
    a === undefined || b === undefined ? undefined : Number((a[key] / b[key]).toFixed(2))
  return {
    load: { allocations: allocs, inflightPerAllocation: inflight, payloadBytes: payload, seconds, rounds, cpus: availableParallelism(), natkitWorkers: availableParallelism() },
    natkit: { fastPath: true, gso: true, ...n, runs: runs.natkit },
    'natkit-nogso': { fastPath: true, gso: false, ...g, runs: runs['natkit-nogso'] },
    'natkit-js': { fastPath: false, ...j, runs: runs['natkit-js'] },
    coturn: c === undefined ? { unavailable: kinds.includes('coturn') || !has('turnserver') ? 'turnserver not installed' : 'not in BENCH_SAT_KINDS' } : { ...c, runs: runs.coturn },
    ratio: {
      throughputNatkitOverCoturn: ratio(n, c, 'relayedPacketsPerSecond'),
      cpuPerPacketNatkitOverCoturn: ratio(n, c, 'cpuSecondsPerMillionRelayed'),
      throughputNatkitNoGsoOverCoturn: ratio(g, c, 'relayedPacketsPerSecond'),
      cpuPerPacketNatkitNoGsoOverCoturn: ratio(g, c, 'cpuSecondsPerMillionRelayed'),
      cpuPerPacketGsoOverNoGso: ratio(n, g, 'cpuSecondsPerMillionRelayed'),
      throughputNatkitJsOverCoturn: ratio(j, c, 'relayedPacketsPerSecond'),
      cpuPerPacketNatkitJsOverCoturn: ratio(j, c, 'cpuSecondsPerMillionRelayed'),
      cpuPerPacketFastOverJs: ratio(n, j, 'cpuSecondsPerMillionRelayed'),
      targets: 'throughput >= 1, CPU per packet <= 0.8 (issue 10; natkit = fast path on)'
    }
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const r = await benchRelaySaturate()
  console.log(process.argv.includes('--json') ? JSON.stringify(r) : JSON.stringify(r, null, 2))
}
