import type { ChildProcess } from 'node:child_process'
import { predictPair, type Strategy } from '../discovery/predict.js'
import type { NatType } from '../discovery/types.js'
import { LabError } from '../errors.js'
import { createLogger } from '../log.js'
import { Lab } from './lab.js'
import type { LabNatType } from './types.js'
import { WORKER_PATH, type DiscoverWorkerResult, type PeerWorkerResult, type WorkerTask } from './worker.js'

const log = createLogger('natcheck:lab:matrix')

/** A library-level worker task, as the argv of a process inside a lab namespace (lab/worker.ts). */
const worker = (task: WorkerTask): string[] => [process.execPath, WORKER_PATH, JSON.stringify(task)]
const SECRET = 'natkit-lab-secret'
const RENDEZVOUS_PORT = 80
const TURN_UDP_PORT = 3478
const TURN_TCP_PORT = 443
const STUN_PORT = 3480
const STUN_ALT_PORT = 3481

/** The NAT types of the connection matrix, in the order. */
export const MATRIX_TYPES: readonly LabNatType[] = ['none', 'full-cone', 'restricted-cone', 'port-restricted-cone', 'symmetric', 'symmetric-sequential', 'udp-blocked']

/** Whether standard hole punching can open a pair: no UDP blocked, and no symmetric side facing a filter keyed on ports. */
export function punchable (a: LabNatType, b: LabNatType): boolean {
  if (a === 'udp-blocked' || b === 'udp-blocked') return false
  const symmetric = (t: LabNatType): boolean => t === 'symmetric' || t === 'symmetric-sequential'
  const admitsNewPorts = (t: LabNatType): boolean => t === 'none' || t === 'full-cone' || t === 'restricted-cone'
  if (symmetric(a) && symmetric(b)) return false
  if (symmetric(a)) return admitsNewPorts(b)
  if (symmetric(b)) return admitsNewPorts(a)
  return true
}

/** What one peer reported (lab/worker.ts `peer`: the library's connect and an echo exchange). */
export interface PeerOutcome {
  readonly path: 'direct' | 'relay' | null
  readonly local: string | null
  readonly remote: string | null
  readonly firstDatagramMs: number | null
  readonly directMs: number | null
  /** Wall clock from `connect()` being called (gathering included) to the first datagram from the peer. */
  readonly firstMessageFromStartMs: number | null
  readonly signalledMs: number | null
  /** Round trip of the final path's last check, ms. */
  readonly rttMs: number | null
  readonly delivered: number
  readonly lost: number
  readonly error: string | null
}

/** One cell of the matrix. */
export interface MatrixCell {
  readonly a: LabNatType
  readonly b: LabNatType
  readonly expected: 'direct' | 'relay'
  readonly peerA: PeerOutcome
  readonly peerB: PeerOutcome
  /** What `natcheck pair` predicts from both sides' real discovery reports. */
  readonly predicted: Strategy | null
  readonly predictedTypes: [NatType | null, NatType | null]
  readonly ms: number
}

/** Options for runConnectMatrix. */
export interface MatrixOptions {
  readonly types?: readonly LabNatType[]
  /** Echo datagrams per peer (default 10). */
  readonly count?: number
  readonly onCell?: (cell: MatrixCell) => void
  /** Namespace-name prefix of each cell's lab (default: a fresh random one per lab). */
  readonly prefix?: string
}

/**
 * For every unordered pair of lab NAT types, build the lab (a real kernel NAT per site), run natkit's relay (TURN on
 * UDP 3478 and TCP 443, rendezvous on port 80 — what a udp-blocked site lets out) and an RFC 5780 STUN server in the
 * server namespace, connect the two hosts with the library's `connect` (lab/worker.ts, run in each namespace), and classify both with `discoverNat` so the pair
 * predictor can be compared with what happened. Linux and root only.
 */
export async function runConnectMatrix (options: MatrixOptions = {}): Promise<MatrixCell[]> {
  const types = options.types ?? MATRIX_TYPES
  const cells: MatrixCell[] = []
  for (let i = 0; i < types.length; i++) {
    for (let j = i; j < types.length; j++) {
      const cell = await runCell(types[i], types[j], options.count ?? 10, options.prefix)
      cells.push(cell)
      options.onCell?.(cell)
    }
  }
  return cells
}

async function runCell (a: LabNatType, b: LabNatType, count: number, prefix: string | undefined): Promise<MatrixCell> {
  const started = performance.now()
  const lab = await Lab.up({ natA: a, natB: b, prefix })
  const servers: ChildProcess[] = []
  try {
    const ip = lab.info.server.primaryIp
    const ip2 = lab.info.server.secondaryIp
    const server = lab.spawn('server', worker({
      task: 'servers', ip, ip2, secret: SECRET, turnPorts: [TURN_UDP_PORT, TURN_TCP_PORT], rendezvousPort: RENDEZVOUS_PORT,
      stunPort: STUN_PORT, stunAltPort: STUN_ALT_PORT, allowPeer: ['192.0.2.0/24', '198.51.100.0/24', '203.0.113.0/24']
    }), { stdio: ['ignore', 'pipe', 'inherit'] })
    servers.push(server)
    log('%s × %s: lab up, starting servers', a, b)
    await waitForReady(server)
    log('%s × %s: servers answer', a, b)
    const peer = async (site: 'a' | 'b', me: string, other: string): Promise<PeerOutcome> => {
      const r = await lab.exec(site, worker({
        task: 'peer', rendezvous: `ws://${ip}:${RENDEZVOUS_PORT}/`, id: me, peer: other, secret: SECRET,
        // No ?transport: the agent tries UDP to 443 and, when that is blocked, falls back to TCP (RFC 7065 default).
        turn: [`turn:${ip}:${TURN_TCP_PORT}`], count, timeoutMs: 20_000, settleMs: 3000
      }), { timeoutMs: 60_000 })
      return parseOutcome(r.stdout, r.stderr)
    }
    const [peerA, peerB] = await Promise.all([peer('a', 'peer-a', 'peer-b'), peer('b', 'peer-b', 'peer-a')])
    log('%s × %s: peers done (%s / %s)', a, b, peerA.path, peerB.path)
    const discover = async (site: 'a' | 'b'): Promise<DiscoverWorkerResult | undefined> => {
      const r = await lab.exec(site, worker({ task: 'discover', server: `${ip}:${STUN_PORT}`, timeoutMs: 1500 }), { timeoutMs: 30_000 })
      try { return JSON.parse(r.stdout) as DiscoverWorkerResult } catch { log('discover on %s printed no result: %s', site, r.stderr.slice(-300)); return undefined }
    }
    const [ra, rb] = await Promise.all([discover('a'), discover('b')])
    const predicted = ra !== undefined && rb !== undefined ? predictPair(ra, rb).strategy : null
    return { a, b, expected: punchable(a, b) ? 'direct' : 'relay', peerA, peerB, predicted, predictedTypes: [ra?.type ?? null, rb?.type ?? null], ms: Math.round(performance.now() - started) }
  } finally {
    for (const s of servers) s.kill('SIGINT') // SIGINT stops at once; SIGTERM would drain the relay for 30 s
    await Promise.all(servers.map(async s => { if (s.exitCode === null && s.signalCode === null) await new Promise(resolve => s.once('exit', resolve)) }))
    await lab.down()
  }
}

/** Wait for the servers worker's `{"ready":true}` line (bounded: 20 s). */
async function waitForReady (child: ChildProcess): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    let out = ''
    const timer = setTimeout(() => { done(new LabError('the lab servers did not start within 20 s')) }, 20_000)
    const onData = (d: Buffer): void => { out += d.toString(); if (out.includes('"ready":true')) done() }
    const onExit = (code: number | null): void => { done(new LabError(`the lab servers exited (code ${String(code)}) before they were ready`)) }
    const done = (err?: Error): void => {
      clearTimeout(timer)
      child.stdout?.off('data', onData)
      child.off('exit', onExit)
      if (err !== undefined) reject(err); else resolve()
    }
    child.stdout?.on('data', onData)
    child.once('exit', onExit)
  })
}

function parseOutcome (stdout: string, stderr: string): PeerOutcome {
  let d: PeerWorkerResult
  try {
    d = JSON.parse(stdout) as PeerWorkerResult
  } catch {
    return { path: null, local: null, remote: null, firstDatagramMs: null, directMs: null, firstMessageFromStartMs: null, signalledMs: null, rttMs: null, delivered: 0, lost: 0, error: `no result from the lab worker: ${stderr.trim().slice(-300)}` }
  }
  return {
    path: d.path?.type ?? null,
    local: d.path?.local ?? null,
    remote: d.path?.remote ?? null,
    firstDatagramMs: d.timings?.firstDatagramMs ?? null,
    directMs: d.timings?.directMs ?? null,
    firstMessageFromStartMs: d.timings?.firstMessageFromStartMs ?? null,
    signalledMs: d.timings?.signallingRttMs ?? null,
    rttMs: d.path?.rttMs ?? null,
    delivered: d.delivered,
    lost: d.lost,
    error: d.error?.message ?? null
  }
}

/** The matrix as a markdown table: path and time to first datagram per pair (the record format). */
export function matrixMarkdown (cells: MatrixCell[]): string {
  const rows = cells.map(c => {
    const ok = c.peerA.path === c.expected && c.peerB.path === c.expected
    const t = (p: PeerOutcome): string => p.firstDatagramMs === null ? '—' : `${p.firstDatagramMs}`
    const d = (p: PeerOutcome): string => p.directMs === null ? '—' : `${p.directMs}`
    const s = (p: PeerOutcome): string => p.firstMessageFromStartMs === null ? '—' : `${p.firstMessageFromStartMs}`
    return `| ${c.a} | ${c.b} | ${c.peerA.path ?? 'failed'} / ${c.peerB.path ?? 'failed'} | ${c.expected}${ok ? '' : ' ✗'} | ${t(c.peerA)} / ${t(c.peerB)} | ${s(c.peerA)} / ${s(c.peerB)} | ${d(c.peerA)} / ${d(c.peerB)} | ${c.peerA.delivered}+${c.peerB.delivered} | ${c.predicted ?? '—'} |`
  })
  return ['| A | B | path (A / B) | expected | first datagram ms (A / B) | connect() → first datagram ms (A / B) | direct ms (A / B) | echoes delivered | `natcheck pair` |',
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- |', ...rows].join('\n')
}
