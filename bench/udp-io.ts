import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { createSocket } from 'node:dgram'
import { existsSync, readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { BatchUdpSocket } from '../src/net/batch-udp.js'
import { nativeUdpAvailable, nativeUdpUnavailableReason } from '../src/net/native.js'
import { UdpSocket, type DatagramSocket } from '../src/net/udp.js'
import { StunServerCore } from '../src/stun/server-core.js'
import { cpuSeconds, freeUdpPort, killAll, stopChild, track } from './support.js'

/**
 * Datagram I/O benchmark: a STUN Binding responder (StunServerCore) over the native batched socket and over the
 * node:dgram socket, each in a child process, against coturn (`turnserver --stun-only`), all driven by the closed-loop
 * C generator bench/native/stun-load.c (8 sockets × 32 requests in flight). Reports responses/s and responses per
 * server CPU-second (utime+stime of the server process from /proc/PID/stat), and natkit/coturn ratios.
 *
 * Standalone: `node dist/bench/udp-io.js [seconds] [rounds] [--json]` (defaults 5 s, 2 rounds; or BENCH_SECONDS,
 * BENCH_ROUNDS). Needs gcc for the generator; coturn is skipped when turnserver is not installed.
 */

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..')
const LOAD_SOURCE = join(ROOT, 'bench', 'native', 'stun-load.c')
const LOAD_BIN = '/tmp/stun-load'
const SOCKETS = 8
const IN_FLIGHT = 32

type ServerKind = 'natkit-native' | 'natkit-dgram' | 'coturn'

interface RunResult { responses: number, lost: number, seconds: number, perSec: number, cpuSeconds: number, perCpuSecond: number }






function ensureLoadGenerator (): void {
  if (existsSync(LOAD_BIN)) return
  const r = spawnSync('gcc', ['-O2', '-o', LOAD_BIN, LOAD_SOURCE], { encoding: 'utf8' })
  if (r.status !== 0) throw new Error(`cannot compile ${LOAD_SOURCE}: ${r.stderr || r.error?.message || ''}`)
}

async function runLoad (port: number, seconds: number): Promise<{ received: number, lost: number, seconds: number }> {
  const c = track(spawn(LOAD_BIN, ['127.0.0.1', String(port), String(SOCKETS), String(IN_FLIGHT), String(seconds)], { stdio: ['ignore', 'pipe', 'pipe'] }))
  let out = ''; let err = ''
  c.stdout?.on('data', (d: Buffer) => { out += d.toString() })
  c.stderr?.on('data', (d: Buffer) => { err += d.toString() })
  const code = await new Promise<number | null>(resolve => c.once('exit', (code) => { resolve(code) }))
  if (code !== 0) throw new Error(`stun-load failed (${code}): ${err}`)
  const r = JSON.parse(out.trim()) as { received: number, lost: number, seconds: number }
  return r
}

/** One STUN request/response on loopback, to know a server is up. */
async function probe (port: number, timeoutMs: number): Promise<boolean> {
  const s = createSocket('udp4')
  try {
    const req = Buffer.from('000100002112a442000000000000000000000001', 'hex')
    return await new Promise<boolean>((resolve) => {
      const deadline = setTimeout(() => { resolve(false) }, timeoutMs)
      const again = setInterval(() => { s.send(req, port, '127.0.0.1') }, 100)
      s.on('message', () => { clearTimeout(deadline); clearInterval(again); resolve(true) })
      s.on('error', () => {})
      s.send(req, port, '127.0.0.1')
      deadline.unref?.()
      s.once('close', () => { clearInterval(again) })
    })
  } finally {
    s.close()
  }
}


/** Start one server; resolve with its child process and port once it answers. */
async function startServer (kind: ServerKind): Promise<{ child: ChildProcess, port: number }> {
  if (kind === 'coturn') {
    const port = await freeUdpPort()
    const child = track(spawn('turnserver', ['-c', '/dev/null', '--stun-only', '-n', '--no-cli', '--listening-ip', '127.0.0.1',
      '--listening-port', String(port), '--log-file', '/dev/null', '--no-tls', '--no-dtls'], { stdio: 'ignore' }))
    if (!await probe(port, 5000)) throw new Error('coturn did not answer within 5 s')
    return { child, port }
  }
  const self = fileURLToPath(import.meta.url)
  const child = track(spawn(process.execPath, [self, '--serve', kind], { stdio: ['ignore', 'pipe', 'inherit'] }))
  const port = await new Promise<number>((resolve, reject) => {
    let out = ''
    const t = setTimeout(() => { reject(new Error(`${kind} server not ready`)) }, 5000)
    child.stdout?.on('data', (d: Buffer) => {
      out += d.toString()
      const m = /READY (\d+)/.exec(out)
      if (m !== null) { clearTimeout(t); resolve(Number(m[1])) }
    })
    child.once('exit', (code) => { clearTimeout(t); reject(new Error(`${kind} server exited (${code})`)) })
  })
  return { child, port }
}

async function measureServer (kind: ServerKind, seconds: number): Promise<RunResult> {
  const { child, port } = await startServer(kind)
  try {
    await runLoad(port, 1) // warm up (JIT, buffers)
    const pid = child.pid as number
    const cpu0 = cpuSeconds(pid)
    const r = await runLoad(port, seconds)
    const cpu = cpuSeconds(pid) - cpu0
    return {
      responses: r.received,
      lost: r.lost,
      seconds: r.seconds,
      perSec: Math.round(r.received / r.seconds),
      cpuSeconds: Math.round(cpu * 100) / 100,
      perCpuSecond: Math.round(r.received / cpu)
    }
  } finally {
    await stopChild(child)
  }
}

/** Run the comparison; returns per-server figures (median over rounds) and the natkit/coturn ratios. */
export async function benchUdpIo (options: { seconds?: number, rounds?: number } = {}): Promise<Record<string, unknown>> {
  const seconds = options.seconds ?? Number(process.env.BENCH_SECONDS ?? 5)
  const rounds = options.rounds ?? Number(process.env.BENCH_ROUNDS ?? 2)
  ensureLoadGenerator()
  const kinds: ServerKind[] = []
  if (nativeUdpAvailable()) kinds.push('natkit-native')
  kinds.push('natkit-dgram')
  const haveCoturn = spawnSync('sh', ['-c', 'command -v turnserver'], { stdio: 'ignore' }).status === 0
  if (haveCoturn) kinds.push('coturn')
  const runs: Record<string, RunResult[]> = {}
  try {
    for (let round = 0; round < rounds; round++) {
      for (const kind of kinds) (runs[kind] ??= []).push(await measureServer(kind, seconds))
    }
  } finally {
    killAll()
  }
  const median = (xs: number[]): number => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)] }
  const summary: Record<string, unknown> = { seconds, rounds, sockets: SOCKETS, inFlight: IN_FLIGHT }
  const perCpu: Record<string, number> = {}
  for (const kind of kinds) {
    const rs = runs[kind]
    perCpu[kind] = median(rs.map(r => r.perCpuSecond))
    summary[kind] = { perSec: median(rs.map(r => r.perSec)), perCpuSecond: perCpu[kind], runs: rs }
  }
  if (!nativeUdpAvailable()) summary['natkit-native'] = { unavailable: nativeUdpUnavailableReason() }
  if (!haveCoturn) summary.coturn = { unavailable: 'turnserver not on PATH' }
  const ratio = (a: string): number | undefined => perCpu[a] !== undefined && perCpu.coturn !== undefined ? Math.round(perCpu[a] / perCpu.coturn * 100) / 100 : undefined
  summary.ratios = { 'natkit-native/coturn': ratio('natkit-native'), 'natkit-dgram/coturn': ratio('natkit-dgram') }
  return summary
}

/** Child mode: a STUN Binding responder on 127.0.0.1 over one socket kind; prints READY <port>. */
async function serve (kind: ServerKind): Promise<void> {
  const options = { address: '127.0.0.1', port: 0, bufferSize: 4 * 1024 * 1024 }
  const socket: DatagramSocket = kind === 'natkit-native' ? await BatchUdpSocket.bind(options) : await UdpSocket.bind(options)
  const local = socket.local
  const core = new StunServerCore({ primary: local })
  socket.onMessage((data, from) => {
    const action = core.handle(data, from, local)
    if (action.type === 'send') socket.send(action.data, action.to)
  })
  process.on('SIGTERM', () => { void socket.close().then(() => process.exit(0)) })
  process.stdout.write(`READY ${local.port}\n`)
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  if (process.argv[2] === '--serve') {
    await serve(process.argv[3] as ServerKind)
  } else {
    process.on('exit', killAll)
    process.on('SIGINT', () => { killAll(); process.exit(130) })
    const numbers = process.argv.slice(2).filter(a => /^\d+(\.\d+)?$/.test(a)).map(Number)
    const [seconds, rounds] = numbers
    const r = await benchUdpIo({ seconds, rounds })
    const line = (kind: string): void => {
      const k = r[kind] as { perSec?: number, perCpuSecond?: number, unavailable?: string } | undefined
      if (k?.perSec === undefined) { console.log(`${kind.padEnd(14)} unavailable: ${k?.unavailable ?? ''}`); return }
      console.log(`${kind.padEnd(14)} ${String(k.perSec).padStart(8)} responses/s  ${String(k.perCpuSecond).padStart(8)} responses per server CPU-second`)
    }
    console.log(`STUN Binding over UDP loopback, stun-load ${SOCKETS} sockets × ${IN_FLIGHT} in flight, ${String(r.seconds)} s × ${String(r.rounds)} rounds (medians)`)
    for (const kind of ['natkit-native', 'natkit-dgram', 'coturn']) line(kind)
    const ratios = r.ratios as Record<string, number | undefined>
    console.log(`ratios per CPU-second: natkit-native/coturn ${ratios['natkit-native/coturn'] ?? 'n/a'}, natkit-dgram/coturn ${ratios['natkit-dgram/coturn'] ?? 'n/a'}`)
    if (process.argv.includes('--json')) console.log(JSON.stringify(r))
  }
}
