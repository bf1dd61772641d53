import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { createSocket, type Socket } from 'node:dgram'
import { readFileSync } from 'node:fs'
import { pathToFileURL } from 'node:url'
import {
  ErrorCode, Lifetime, MessageBuilder, MessageClass, Method, Nonce, Realm, RequestedTransport, StunMessage, TransportProtocol,
  Username, longTermKey
} from '../src/stun/index.js'
import { nativeUdpAvailable } from '../src/net/native.js'
import { CLI, freeUdpPort, killAll, median, procStat, stopChild, track } from './support.js'

/**
 * TURN relay benchmark, natkit against coturn's turnserver under the same load in one run, all on 127.0.0.1:
 *
 * - throughput: coturn's `turnutils_uclient -m CLIENTS -n MESSAGES -l 100 -z 1 -c` (UDP, channels) with
 *   `turnutils_peer` as the echo peer; delivered round trips per second, loss, and server CPU-seconds (utime+stime
 *   from /proc/PID/stat) per million relayed packets (each delivered echo is two relayed packets);
 * - allocation rate: a closed-loop generator in this file (64 clients, each Allocate then Refresh(0), reusing its
 *   socket and nonce) for a few seconds: allocations per second and server CPU per thousand allocations;
 * - memory: RSS growth of the server while 10 000 allocations are held, per allocation.
 *
 * Servers run as child processes and are killed by PID in `finally`. Standalone: `node dist/bench/relay.js [--json]`
 * (env BENCH_RELAY_ROUNDS, BENCH_RELAY_MESSAGES, BENCH_RELAY_HELD).
 */

const USER = 'bench'
const PASS = 'bench-pass'
const REALM = 'natkit.bench'
/** Relay ports below the ephemeral range, so the generator's own sockets never take one. */
const RELAY_PORTS: [number, number] = [10000, 29999]

/** natkit-native: batched I/O everywhere; natkit-hybrid: batched listeners, node:dgram relay sockets; natkit-dgram: none. */
export type RelayServerKind = 'natkit-native' | 'natkit-hybrid' | 'natkit-dgram' | 'coturn'

interface Started { kind: RelayServerKind, child: ChildProcess, port: number }







/** Wait (bounded) until a STUN Binding request to the port is answered. */
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

async function startServer (kind: RelayServerKind): Promise<Started> {
  const port = await freeUdpPort()
  let child: ChildProcess
  if (kind === 'coturn') {
    child = track(spawn('turnserver', ['-c', '/dev/null', '-n', '--no-cli', '--listening-ip', '127.0.0.1', '--listening-port', String(port),
      '--relay-ip', '127.0.0.1', '--min-port', String(RELAY_PORTS[0]), '--max-port', String(RELAY_PORTS[1]), '--allow-loopback-peers',
      '--user', `${USER}:${PASS}`, '--realm', REALM, '--lt-cred-mech', '--log-file', '/dev/null', '--no-tls', '--no-dtls', '--no-tcp'],
    { stdio: 'ignore' }))
  } else {
    const env = { ...process.env, NATKIT_NATIVE: kind === 'natkit-dgram' ? '0' : '1', DEBUG: '' }
    const io = kind === 'natkit-native' ? 'all' : kind === 'natkit-hybrid' ? 'listeners' : 'off'
    child = track(spawn(process.execPath, [CLI, 'relay', '--native-io', io, '--listen', `127.0.0.1:${port}`, '--realm', REALM, '--user', `${USER}:${PASS}`,
      '--allow-peer', '127.0.0.0/8', '--ports', `${RELAY_PORTS[0]}-${RELAY_PORTS[1]}`, '--user-quota', '100000', '--total-quota', '100000',
      // One process: the CPU figures below are read from this PID's /proc/PID/stat (workers would be other PIDs).
      '--workers', '1'],
    { stdio: 'ignore', env }))
  }
  if (!await probe(port, 8000)) throw new Error(`${kind} did not answer on 127.0.0.1:${port} within 8 s`)
  return { kind, child, port }
}

// ---------------------------------------------------------------- throughput (turnutils_uclient)

interface ThroughputRun { sent: number, received: number, lost: number, seconds: number, perSec: number, cpuSeconds: number, cpuPerMillionRelayed: number, relayedPerCpuSecond: number }

async function runCommand (cmd: string, args: string[], timeoutMs: number): Promise<{ code: number | null, output: string }> {
  return await new Promise((resolve) => {
    const child = track(spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] }))
    let output = ''
    child.stdout?.on('data', (d: Buffer) => { output += d.toString() })
    child.stderr?.on('data', (d: Buffer) => { output += d.toString() })
    const t = setTimeout(() => { if (child.pid !== undefined) try { process.kill(child.pid, 'SIGKILL') } catch {} }, timeoutMs)
    child.once('close', (code) => { clearTimeout(t); resolve({ code, output }) })
  })
}

function uclientArgs (port: number, peerPort: number, clients: number, messages: number): string[] {
  return ['-m', String(clients), '-n', String(messages), '-l', '100', '-z', '1', '-c', '-e', '127.0.0.1', '-r', String(peerPort),
    '-u', USER, '-w', PASS, '-p', String(port), '127.0.0.1']
}

async function throughput (s: Started, peerPort: number, clients: number, messages: number): Promise<ThroughputRun> {
  const pid = s.child.pid as number
  // Warm-up (JIT, first allocations), not measured.
  await runCommand('turnutils_uclient', uclientArgs(s.port, peerPort, clients, 200), 60_000)
  const before = procStat(pid).cpu
  const started = process.hrtime.bigint()
  const { output } = await runCommand('turnutils_uclient', uclientArgs(s.port, peerPort, clients, messages), 180_000)
  const seconds = Number(process.hrtime.bigint() - started) / 1e9
  const cpu = procStat(pid).cpu - before
  const totals = [...output.matchAll(/tot_send_msgs=(\d+), tot_recv_msgs=(\d+)/g)].pop()
  if (totals === undefined) throw new Error(`uclient against ${s.kind} printed no totals: ${output.slice(-500)}`)
  const sent = Number(totals[1]); const received = Number(totals[2])
  const relayed = 2 * received
  return {
    sent, received, lost: sent - received, seconds: round(seconds, 2), perSec: Math.round(received / seconds),
    cpuSeconds: round(cpu, 2), cpuPerMillionRelayed: round(cpu / relayed * 1e6, 2), relayedPerCpuSecond: Math.round(relayed / cpu)
  }
}

// ---------------------------------------------------------------- allocation load generator

interface Client {
  socket: Socket
  nonce: string | undefined
  pending: { tx: string, method: number, sentAt: number, resolve: (m: StunMessage | undefined) => void } | undefined
}

const KEY = longTermKey(USER, REALM, PASS, 'md5')

function request (c: Client, port: number, method: number, add: (b: MessageBuilder) => void, timeoutMs = 1000): Promise<StunMessage | undefined> {
  const b = new MessageBuilder(method, MessageClass.Request)
  add(b)
  if (c.nonce !== undefined) b.add(Username, USER).add(Realm, REALM).add(Nonce, c.nonce).integrity(KEY)
  const bytes = b.fingerprint().build()
  const tx = bytes.subarray(8, 20).toString('hex')
  return new Promise((resolve) => {
    const t = setTimeout(() => { c.pending = undefined; resolve(undefined) }, timeoutMs)
    c.pending = { tx, method, sentAt: Date.now(), resolve: (m) => { clearTimeout(t); resolve(m) } }
    c.socket.send(bytes, port, '127.0.0.1')
  })
}

/** A request with the long-term credential dance: on 401/438 take the nonce and send again (bounded). */
async function authed (c: Client, port: number, method: number, add: (b: MessageBuilder) => void, timeoutMs?: number): Promise<StunMessage | undefined> {
  for (let attempt = 0; attempt < 3; attempt++) {
    const res = await request(c, port, method, add, timeoutMs)
    if (res === undefined) return undefined
    const code = res.cls === MessageClass.ErrorResponse ? res.get(ErrorCode)?.code : undefined
    if (code === 401 || code === 438) { c.nonce = res.get(Nonce); continue }
    return res
  }
  return undefined
}

async function openClient (): Promise<Client> {
  const socket = createSocket('udp4')
  await new Promise<void>(resolve => socket.bind(0, '127.0.0.1', () => { resolve() }))
  const c: Client = { socket, nonce: undefined, pending: undefined }
  socket.on('message', (data) => {
    const p = c.pending
    if (p === undefined || data.length < 20 || data.subarray(8, 20).toString('hex') !== p.tx) return
    c.pending = undefined
    try { p.resolve(StunMessage.decode(data)) } catch { p.resolve(undefined) }
  })
  socket.on('error', () => {})
  return c
}

async function closeClients (clients: Client[]): Promise<void> {
  await Promise.all(clients.map(async c => await new Promise<void>(resolve => { try { c.socket.close(() => { resolve() }) } catch { resolve() } })))
}

const allocate = (b: MessageBuilder): void => { b.add(RequestedTransport, TransportProtocol.UDP) }

interface AllocRateRun { allocations: number, failures: number, seconds: number, perSec: number, cpuSeconds: number, cpuMsPerAllocation: number }

async function allocationRate (s: Started, concurrency: number, seconds: number): Promise<AllocRateRun> {
  const clients = await Promise.all(Array.from({ length: concurrency }, openClient))
  try {
    const pid = s.child.pid as number
    let allocations = 0; let failures = 0
    // Each cycle is a fresh 5-tuple (coturn refuses a new allocation on a just-deleted one for a while, 437), so
    // each allocation costs the server a 401 (coturn's nonces are per 5-tuple; natkit's are stateless and reused),
    // the Allocate and a Refresh(0). Bounded: by time, and failures back off.
    const cycle = async (slot: number, until: number): Promise<void> => {
      while (Date.now() < until) {
        const old = clients[slot]
        const c = await openClient()
        c.nonce = old.nonce
        clients[slot] = c
        await closeClients([old])
        const a = await authed(c, s.port, Method.Allocate, allocate)
        if (a?.cls !== MessageClass.SuccessResponse) { failures++; await new Promise(resolve => setTimeout(resolve, 10)); continue }
        const r = await authed(c, s.port, Method.Refresh, (b) => b.add(Lifetime, 0))
        if (r?.cls !== MessageClass.SuccessResponse) { failures++; continue }
        allocations++
      }
    }
    await Promise.all(clients.map(async (_, i) => await cycle(i, Date.now() + 500))) // warm-up
    allocations = 0; failures = 0
    const before = procStat(pid).cpu
    const started = process.hrtime.bigint()
    await Promise.all(clients.map(async (_, i) => await cycle(i, Date.now() + seconds * 1000)))
    const wall = Number(process.hrtime.bigint() - started) / 1e9
    const cpu = procStat(pid).cpu - before
    return { allocations, failures, seconds: round(wall, 2), perSec: Math.round(allocations / wall), cpuSeconds: round(cpu, 2), cpuMsPerAllocation: round(cpu / allocations * 1000, 3) }
  } finally {
    await closeClients(clients)
  }
}

interface MemoryRun { held: number, failures: number, rssBeforeMiB: number, rssAfterMiB: number, bytesPerAllocation: number }

async function memoryPerAllocation (s: Started, held: number): Promise<MemoryRun> {
  const pid = s.child.pid as number
  const clients: Client[] = []
  try {
    // Warm the server's allocation path a little first (own sockets), so code and first-use tables are not counted.
    const warm = await Promise.all(Array.from({ length: 50 }, openClient))
    for (const c of warm) {
      await authed(c, s.port, Method.Allocate, allocate, 2000)
      await authed(c, s.port, Method.Refresh, (b) => b.add(Lifetime, 0), 2000)
    }
    await closeClients(warm)
    for (let i = 0; i < held; i++) clients.push(await openClient())
    await new Promise(resolve => setTimeout(resolve, 500))
    const before = procStat(pid).rssBytes
    let failures = 0
    const window = 64
    let next = 0
    await Promise.all(Array.from({ length: window }, async () => {
      while (next < clients.length) {
        const c = clients[next++]
        const res = await authed(c, s.port, Method.Allocate, allocate, 3000)
        if (res?.cls !== MessageClass.SuccessResponse) failures++
      }
    }))
    await new Promise(resolve => setTimeout(resolve, 1000))
    const after = procStat(pid).rssBytes
    const ok = held - failures
    return { held: ok, failures, rssBeforeMiB: round(before / 2 ** 20, 1), rssAfterMiB: round(after / 2 ** 20, 1), bytesPerAllocation: Math.round((after - before) / Math.max(1, ok)) }
  } finally {
    await closeClients(clients)
  }
}

// ---------------------------------------------------------------- the comparison

function round (x: number, digits: number): number {
  const f = 10 ** digits
  return Math.round(x * f) / f
}


function has (cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0
}

/** Options of benchRelay (environment variables give the defaults for `npm run bench`). */
export interface BenchRelayOptions {
  readonly rounds?: number
  readonly clients?: number
  readonly messages?: number
  readonly allocSeconds?: number
  readonly allocConcurrency?: number
  readonly held?: number
  readonly kinds?: readonly RelayServerKind[]
  readonly parts?: ReadonlyArray<'throughput' | 'alloc-rate' | 'memory'>
}

/** Run the relay comparison; per-server medians and natkit/coturn ratios. */
export async function benchRelay (options: BenchRelayOptions = {}): Promise<Record<string, unknown>> {
  if (!has('turnutils_uclient') || !has('turnutils_peer') || !has('turnserver')) return { unavailable: 'coturn (turnserver, turnutils_uclient, turnutils_peer) not installed' }
  const rounds = options.rounds ?? Number(process.env.BENCH_RELAY_ROUNDS ?? 3)
  const clients = options.clients ?? 20
  const messages = options.messages ?? Number(process.env.BENCH_RELAY_MESSAGES ?? 5000)
  const held = options.held ?? Number(process.env.BENCH_RELAY_HELD ?? 10_000)
  const parts = options.parts ?? ['throughput', 'alloc-rate', 'memory']
  const kinds = options.kinds ?? (nativeUdpAvailable() ? ['natkit-native', 'natkit-hybrid', 'natkit-dgram', 'coturn'] : ['natkit-dgram', 'coturn'])
  const peerPort = await freeUdpPort()
  const tput: Record<string, ThroughputRun[]> = {}
  const alloc: Record<string, AllocRateRun[]> = {}
  const mem: Record<string, MemoryRun> = {}
  try {
    track(spawn('turnutils_peer', ['-L', '127.0.0.1', '-p', String(peerPort)], { stdio: 'ignore' }))
    await new Promise(resolve => setTimeout(resolve, 300))
    for (let round = 0; round < rounds; round++) {
      for (const kind of kinds) {
        const s = await startServer(kind)
        try {
          if (parts.includes('throughput')) (tput[kind] ??= []).push(await throughput(s, peerPort, clients, messages))
          if (parts.includes('alloc-rate')) (alloc[kind] ??= []).push(await allocationRate(s, options.allocConcurrency ?? 64, options.allocSeconds ?? 4))
        } finally {
          await stopChild(s.child)
        }
      }
    }
    if (parts.includes('memory')) {
      for (const kind of kinds) {
        const s = await startServer(kind)
        try { mem[kind] = await memoryPerAllocation(s, held) } finally { await stopChild(s.child) }
      }
    }
  } finally {
    killAll()
  }
  const out: Record<string, unknown> = {
    load: `turnutils_uclient ${uclientArgs(0, 0, clients, messages).join(' ').replace('-r 0', '-r PEERPORT').replace('-p 0', '-p PORT')}`,
    rounds
  }
  const ratios: Record<string, number> = {}
  for (const kind of kinds) {
    const t = tput[kind]; const a = alloc[kind]
    out[kind] = {
      throughput: t === undefined
        ? undefined
        : { perSec: median(t.map(r => r.perSec)), lost: median(t.map(r => r.lost)), cpuPerMillionRelayed: median(t.map(r => r.cpuPerMillionRelayed)), relayedPerCpuSecond: median(t.map(r => r.relayedPerCpuSecond)), runs: t },
      allocationRate: a === undefined ? undefined : { perSec: median(a.map(r => r.perSec)), cpuMsPerAllocation: median(a.map(r => r.cpuMsPerAllocation)), runs: a },
      memory: mem[kind]
    }
  }
  const ref = 'coturn'
  for (const kind of kinds.filter(k => k !== ref)) {
    if (tput[kind] !== undefined && tput[ref] !== undefined) ratios[`${kind}/coturn cpu per relayed packet`] = round(median(tput[kind].map(r => r.cpuPerMillionRelayed)) / median(tput[ref].map(r => r.cpuPerMillionRelayed)), 2)
    if (alloc[kind] !== undefined && alloc[ref] !== undefined) {
      ratios[`${kind}/coturn allocations per second`] = round(median(alloc[kind].map(r => r.perSec)) / median(alloc[ref].map(r => r.perSec)), 2)
      ratios[`${kind}/coturn cpu per allocation`] = round(median(alloc[kind].map(r => r.cpuMsPerAllocation)) / median(alloc[ref].map(r => r.cpuMsPerAllocation)), 2)
    }
    if (mem[kind] !== undefined && mem[ref] !== undefined) ratios[`${kind}/coturn bytes per allocation`] = round(mem[kind].bytesPerAllocation / mem[ref].bytesPerAllocation, 2)
  }
  out.ratios = ratios
  return out
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  process.on('exit', killAll)
  process.on('SIGINT', () => { killAll(); process.exit(130) })
  const parts = process.argv.slice(2).filter(a => a === 'throughput' || a === 'alloc-rate' || a === 'memory') as Array<'throughput' | 'alloc-rate' | 'memory'>
  const kinds = process.argv.slice(2).filter(a => a.startsWith('natkit-') || a === 'coturn') as RelayServerKind[]
  const r = await benchRelay({ parts: parts.length > 0 ? parts : undefined, kinds: kinds.length > 0 ? kinds : undefined })
  console.log(JSON.stringify(r, null, 2))
}
