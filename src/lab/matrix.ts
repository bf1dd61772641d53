import type { ChildProcess } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { predictPair, type Strategy } from '../discovery/predict.js'
import type { NatType } from '../discovery/types.js'
import { createLogger } from '../log.js'
import { Lab } from './lab.js'
import type { LabNatType } from './types.js'

const log = createLogger('natcheck:lab:matrix')

/** The built natcheck CLI (dist/src/cli.js), run inside the lab's namespaces. */
const CLI = fileURLToPath(new URL('../cli.js', import.meta.url))
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

/** What one peer's `natcheck connect --json` said. */
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
}

/**
 * For every unordered pair of lab NAT types, build the lab (a real kernel NAT per site), run natkit's relay (TURN on
 * UDP 3478 and TCP 443, rendezvous on port 80 — what a udp-blocked site lets out) and an RFC 5780 STUN server in the
 * server namespace, connect the two hosts with `natcheck connect`, and classify both with `natcheck` so the pair
 * predictor can be compared with what happened. Linux and root only.
 */
export async function runConnectMatrix (options: MatrixOptions = {}): Promise<MatrixCell[]> {
  const types = options.types ?? MATRIX_TYPES
  const cells: MatrixCell[] = []
  for (let i = 0; i < types.length; i++) {
    for (let j = i; j < types.length; j++) {
      const cell = await runCell(types[i], types[j], options.count ?? 10)
      cells.push(cell)
      options.onCell?.(cell)
    }
  }
  return cells
}

async function runCell (a: LabNatType, b: LabNatType, count: number): Promise<MatrixCell> {
  const started = performance.now()
  const lab = await Lab.up({ natA: a, natB: b })
  const servers: ChildProcess[] = []
  try {
    const ip = lab.info.server.primaryIp
    const ip2 = lab.info.server.secondaryIp
    servers.push(lab.spawn('server', [process.execPath, CLI, 'relay', '--listen', `${ip}:${TURN_UDP_PORT}`, '--listen', `${ip}:${TURN_TCP_PORT}`,
      '--realm', 'natkit-lab', '--auth-secret', SECRET, '--rendezvous', `${ip}:${RENDEZVOUS_PORT}`,
      '--allow-peer', '192.0.2.0/24', '--allow-peer', '198.51.100.0/24', '--allow-peer', '203.0.113.0/24'], { stdio: 'ignore' }))
    servers.push(lab.spawn('server', [process.execPath, CLI, 'server', '--listen', `${ip}:${STUN_PORT}`, '--alternate', `${ip2}:${STUN_ALT_PORT}`], { stdio: 'ignore' }))
    log('%s × %s: lab up, starting servers', a, b)
    await waitForServers(lab, ip)
    log('%s × %s: servers answer', a, b)
    const peer = async (site: 'a' | 'b', me: string, other: string): Promise<PeerOutcome> => {
      const r = await lab.exec(site, [process.execPath, CLI, 'connect', '--rendezvous', `ws://${ip}:${RENDEZVOUS_PORT}/`, '--id', me, '--peer', other,
        '--auth-secret', SECRET, '--turn', `turn:${ip}:${TURN_TCP_PORT}`,
        '--count', String(count), '--timeout', '20000', '--json'], { timeoutMs: 60_000 })
      return parseOutcome(r.stdout, r.stderr)
    }
    const [peerA, peerB] = await Promise.all([peer('a', 'peer-a', 'peer-b'), peer('b', 'peer-b', 'peer-a')])
    log('%s × %s: peers done (%s / %s)', a, b, peerA.path, peerB.path)
    const discover = async (site: 'a' | 'b'): Promise<{ nat?: { type: NatType, portAllocation?: { pattern: 'preserving' | 'sequential' | 'random' | 'unknown', delta: number | null, samples: number[] } }, tcp?: boolean | null, tls?: boolean | null }> => {
      const r = await lab.exec(site, [process.execPath, CLI, '--server', `${ip}:${STUN_PORT}`, '--json', '--timeout', '1500'], { timeoutMs: 30_000 })
      try { return JSON.parse(r.stdout) } catch { return {} }
    }
    const [ra, rb] = await Promise.all([discover('a'), discover('b')])
    const predicted = ra.nat !== undefined && rb.nat !== undefined
      ? predictPair({ type: ra.nat.type, portAllocation: ra.nat.portAllocation, tcp: ra.tcp, tls: ra.tls }, { type: rb.nat.type, portAllocation: rb.nat.portAllocation, tcp: rb.tcp, tls: rb.tls }).strategy
      : null
    return { a, b, expected: punchable(a, b) ? 'direct' : 'relay', peerA, peerB, predicted, predictedTypes: [ra.nat?.type ?? null, rb.nat?.type ?? null], ms: Math.round(performance.now() - started) }
  } finally {
    for (const s of servers) s.kill('SIGINT') // SIGINT stops at once; SIGTERM would drain the relay for 30 s
    await Promise.all(servers.map(async s => { if (s.exitCode === null && s.signalCode === null) await new Promise(resolve => s.once('exit', resolve)) }))
    await lab.down()
  }
}

async function waitForServers (lab: Lab, ip: string): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const [turn, stun] = await Promise.all([
      lab.exec('server', [process.execPath, CLI, 'stun', `${ip}:${TURN_UDP_PORT}`, '--timeout', '300'], { timeoutMs: 5000 }),
      lab.exec('server', [process.execPath, CLI, 'stun', `${ip}:${STUN_PORT}`, '--timeout', '300'], { timeoutMs: 5000 })
    ])
    if (turn.code === 0 && stun.code === 0) return
    await new Promise(resolve => setTimeout(resolve, 100))
  }
  throw new Error('the lab servers did not start')
}

function parseOutcome (stdout: string, stderr: string): PeerOutcome {
  try {
    const d = JSON.parse(stdout) as { path: { type: 'direct' | 'relay', rttMs: number | null, local: { type: string, address: string, port: number }, remote: { type: string, address: string, port: number } } | null, timings?: { firstDatagramMs: number | null, directMs: number | null, signalledMs: number | null, firstMessageFromStartMs?: number | null }, delivered?: number, lost?: number, error?: { message: string } }
    const ep = (c: { type: string, address: string, port: number } | undefined): string | null => c === undefined ? null : `${c.type} ${c.address}:${c.port}`
    return {
      path: d.path?.type ?? null,
      local: ep(d.path?.local),
      remote: ep(d.path?.remote),
      firstDatagramMs: d.timings?.firstDatagramMs ?? null,
      directMs: d.timings?.directMs ?? null,
      firstMessageFromStartMs: d.timings?.firstMessageFromStartMs ?? null,
      signalledMs: d.timings?.signalledMs ?? null,
      rttMs: d.path?.rttMs ?? null,
      delivered: d.delivered ?? 0,
      lost: d.lost ?? 0,
      error: d.error?.message ?? null
    }
  } catch {
    return { path: null, local: null, remote: null, firstDatagramMs: null, directMs: null, firstMessageFromStartMs: null, signalledMs: null, rttMs: null, delivered: 0, lost: 0, error: `no JSON from natcheck connect: ${stderr.trim().slice(-300)}` }
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
