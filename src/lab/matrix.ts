import type { PairPrediction, Strategy } from '../discovery/predict.js'
import type { NatType } from '../discovery/types.js'
import { LabError } from '../errors.js'
import { createLogger } from '../log.js'
import { Lab } from './lab.js'
import { pairWithCli } from './pair-cli.js'
import { LAB_STUN_PORT, LAB_TURN_PORT } from './services.js'
import type { LabNatType, LabSite } from './types.js'
import { WORKER_PATH, type PeerTask, type PeerWorkerResult, type WorkerTask } from './worker.js'

const log = createLogger('natcheck:lab:matrix')

/** A library-level worker task, as the argv of a process inside a lab namespace (lab/worker.ts). */
const worker = (task: WorkerTask): string[] => [process.execPath, WORKER_PATH, JSON.stringify(task)]

/** The NAT types of the connection matrix, in the issue's order. */
export const MATRIX_TYPES: readonly LabNatType[] = ['none', 'full-cone', 'restricted-cone', 'port-restricted-cone', 'symmetric', 'symmetric-sequential', 'udp-blocked', 'tcp-only']

/** A technique that opens a pair directly (`punch`: standard simultaneous hole punching). */
export type DirectTechniqueName = 'punch' | 'port-mapping' | 'port-prediction' | 'birthday-spray' | 'tcp-simultaneous-open'

const isSymmetric = (t: LabNatType): boolean => t === 'symmetric' || t === 'symmetric-sequential'
const noUdp = (t: LabNatType): boolean => t === 'udp-blocked' || t === 'tcp-only'

/** Whether standard hole punching can open a pair: no UDP blocked, and no symmetric side facing a filter keyed on ports. */
export function punchable (a: LabNatType, b: LabNatType): boolean {
  if (noUdp(a) || noUdp(b)) return false
  const admitsNewPorts = (t: LabNatType): boolean => t === 'none' || t === 'full-cone' || t === 'restricted-cone'
  if (isSymmetric(a) && isSymmetric(b)) return false
  if (isSymmetric(a)) return admitsNewPorts(b)
  if (isSymmetric(b)) return admitsNewPorts(a)
  return true
}

/**
 * The technique that should open the pair directly when every opt-in technique of natkit's agent is on, or null
 * where none can (the pair relays):
 * - udp-blocked (only TCP 80/443 out) reaches nobody directly;
 * - tcp-only (no UDP, any TCP out) punches TCP with a tcp-only side, a cone or an open host (TCP simultaneous open;
 *   a symmetric NAT gives the punching connection another port than STUN saw);
 * - standard punching where the mappings allow it;
 * - a side whose router maps ports (UPnP IGD / NAT-PMP / PCP) is reachable like a full cone;
 * - a sequential symmetric NAT against a port-restricted cone or another sequential one: port prediction;
 * - a random-port symmetric NAT against a port-restricted cone: the birthday spray;
 * - two symmetric NATs of which at least one allocates at random: nothing.
 */
export function directTechnique (a: LabNatType, b: LabNatType, upnp: { a?: boolean, b?: boolean } = {}): DirectTechniqueName | null {
  if (a === 'udp-blocked' || b === 'udp-blocked') return null
  if (a === 'tcp-only' || b === 'tcp-only') {
    const other = a === 'tcp-only' ? b : a
    return isSymmetric(other) ? null : 'tcp-simultaneous-open'
  }
  if (punchable(a, b)) return 'punch'
  if ((upnp.a === true && a !== 'none') || (upnp.b === true && b !== 'none')) return 'port-mapping'
  const pair = [a, b].sort().join(' × ')
  if (pair === 'port-restricted-cone × symmetric-sequential' || pair === 'symmetric-sequential × symmetric-sequential') return 'port-prediction'
  if (pair === 'port-restricted-cone × symmetric') return 'birthday-spray'
  return null
}

/** One cell to run: a pair of NAT types and which site routers run miniupnpd. */
export interface MatrixPair {
  readonly a: LabNatType
  readonly b: LabNatType
  readonly upnp: readonly LabSite[]
}

/**
 * The cells: every unordered pair of `types` without port mapping, then (with `upnp`) each pair that relays
 * otherwise again with miniupnpd on one side and on both, and a spray pair with the mapping on its symmetric side.
 */
export function matrixPairs (types: readonly LabNatType[] = MATRIX_TYPES, upnp = true): MatrixPair[] {
  const pairs: MatrixPair[] = []
  for (let i = 0; i < types.length; i++) {
    for (let j = i; j < types.length; j++) pairs.push({ a: types[i], b: types[j], upnp: [] })
  }
  if (!upnp) return pairs
  const extra: MatrixPair[] = []
  for (const p of pairs) {
    if (noUdp(p.a) || noUdp(p.b) || p.a === 'none' || p.b === 'none') continue
    if (directTechnique(p.a, p.b) === null) {
      extra.push({ ...p, upnp: ['a'] })
      if (p.a !== p.b) extra.push({ ...p, upnp: ['b'] })
      extra.push({ ...p, upnp: ['a', 'b'] })
    } else if (directTechnique(p.a, p.b) === 'birthday-spray') {
      extra.push({ ...p, upnp: [p.a === 'symmetric' ? 'a' : 'b'] })
    }
  }
  return [...pairs, ...extra]
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
  /** The path's transport: `tcp` for a TCP simultaneous-open path (else the agent's UDP or relay path). */
  readonly transport: 'udp' | 'tcp' | null
}

/** One cell of the matrix. */
export interface MatrixCell {
  readonly a: LabNatType
  readonly b: LabNatType
  /** Site routers that ran miniupnpd. */
  readonly upnp: readonly LabSite[]
  readonly expected: 'direct' | 'relay'
  /** The technique expected to open it ({@link directTechnique}; null: relay). */
  readonly expectedTechnique: DirectTechniqueName | null
  /** The technique that opened the direct path, from both peers' reports ({@link observedTechnique}; null: relayed). */
  readonly technique: DirectTechniqueName | null
  readonly peerA: PeerOutcome
  readonly peerB: PeerOutcome
  /** What `natcheck pair` predicts from both sides' real `natcheck --json` reports (gateway probe included). */
  readonly predicted: Strategy | null
  /** The technique `natcheck pair` says opens the pair directly (its strategy when direct or punch). */
  readonly predictedTechnique: DirectTechniqueName | null
  readonly predictedTypes: [NatType | null, NatType | null]
  readonly ms: number
}

/** Options for runConnectMatrix. */
export interface MatrixOptions {
  readonly types?: readonly LabNatType[]
  /** Also the port-mapping cells ({@link matrixPairs}; default true). */
  readonly upnp?: boolean
  /**
   * Turn on, in both peers, the opt-in technique that `natcheck pair` names from both sites' real reports (default
   * true), as a user following its advice does: port mapping (on a site whose router maps ports), port prediction,
   * the birthday spray or TCP simultaneous open. Off: standard ICE only (UPnP cells skipped), where only punchable
   * pairs go direct.
   */
  readonly techniques?: boolean
  /** Echo datagrams per peer (default 10). */
  readonly count?: number
  /** Cells run at once, each in its own lab (default 2). */
  readonly parallel?: number
  readonly onCell?: (cell: MatrixCell) => void
}

/**
 * For each cell ({@link matrixPairs}), build the lab (a real kernel NAT per site; miniupnpd where asked) with its
 * servers (natkit's RFC 5780 STUN server, TURN on UDP and TCP 443, rendezvous on port 80 — what a udp-blocked site
 * lets out), run `natcheck --json` in both sites and `natcheck pair` on the two reports, then connect the two hosts
 * with the library's `connect` (lab/worker.ts, run in each namespace) with the technique `natcheck pair` named turned
 * on. Cells run `parallel` at a time, each in its own namespaces. Linux and root only.
 */
export async function runConnectMatrix (options: MatrixOptions = {}): Promise<MatrixCell[]> {
  const techniques = options.techniques ?? true
  const pairs = matrixPairs(options.types ?? MATRIX_TYPES, techniques && (options.upnp ?? true))
  const cells: Array<MatrixCell | undefined> = pairs.map(() => undefined)
  let next = 0
  const lane = async (): Promise<void> => {
    for (let i = next++; i < pairs.length; i = next++) {
      const cell = await runCell(pairs[i], options.count ?? 10, techniques)
      cells[i] = cell
      options.onCell?.(cell)
    }
  }
  await Promise.all(Array.from({ length: Math.max(1, Math.min(options.parallel ?? 2, pairs.length)) }, lane))
  return cells as MatrixCell[]
}

async function runCell (pair: MatrixPair, count: number, techniques: boolean): Promise<MatrixCell> {
  const { a, b, upnp } = pair
  const started = performance.now()
  const label = `${a} × ${b}${upnp.length > 0 ? ` (UPnP ${upnp.join('+')})` : ''}`
  const lab = await Lab.up({ natA: a, natB: b, upnp: [...upnp], servers: true })
  try {
    const s = lab.services
    if (s === undefined) throw new LabError('the lab came up without its servers')
    const ip = lab.info.server.primaryIp
    log('%s: lab and servers up', label)
    // As a user does: natcheck on both sides, natcheck pair, then turn on the technique it names (if any).
    const pair = await pairWithCli(lab)
    if (pair.prediction === undefined) log('%s: natcheck pair printed no result: %s', label, pair.stderr.slice(-300))
    const prediction = pair.prediction
    const named = prediction === undefined ? null : predictedTechnique(prediction)
    const peer = async (site: LabSite, me: string, other: string): Promise<ReturnType<typeof parseOutcome>> => {
      const r = await lab.exec(site, worker({
        task: 'peer', rendezvous: s.rendezvous, id: me, peer: other, secret: s.secret,
        // No ?transport: the agent tries UDP to 443 and, when that is blocked, falls back to TCP (RFC 7065 default).
        // TCP simultaneous open may need its third paced attempt (about 5 s; tcp-only × an open host in this lab).
        turn: [`turn:${ip}:${LAB_TURN_PORT}`], count, timeoutMs: 20_000, settleMs: named === 'tcp-simultaneous-open' ? 8000 : 4000,
        stun: [`${ip}:${LAB_STUN_PORT}`],
        ...(techniques ? techniqueOptions(lab, site, named) : {})
      }), { timeoutMs: 60_000 })
      return parseOutcome(r.stdout, r.stderr)
    }
    const [ra, rb] = await Promise.all([peer('a', 'peer-a', 'peer-b'), peer('b', 'peer-b', 'peer-a')])
    const peerA = ra.outcome
    const peerB = rb.outcome
    log('%s: peers done (%s / %s) with %s', label, peerA.path, peerB.path, named ?? 'standard ICE')
    const expectedTechnique = techniques ? directTechnique(a, b, { a: upnp.includes('a'), b: upnp.includes('b') }) : (punchable(a, b) ? 'punch' : null)
    return {
      a, b, upnp, expected: expectedTechnique === null ? 'relay' : 'direct', expectedTechnique, technique: observedTechnique(ra.raw, rb.raw), peerA, peerB,
      predicted: prediction?.strategy ?? null, predictedTechnique: named,
      predictedTypes: [prediction?.a ?? null, prediction?.b ?? null], ms: Math.round(performance.now() - started)
    }
  } finally {
    await lab.down()
  }
}

/**
 * The agent options that turn on `technique` (what `natcheck pair` named) for the peer in `site`; port mapping only on
 * a site whose router maps ports. Standard punching needs none.
 */
function techniqueOptions (lab: Lab, site: LabSite, technique: DirectTechniqueName | null): Partial<PeerTask> {
  switch (technique) {
    case 'port-mapping': return lab.info[site].upnp ? { portMapping: { gateway: lab.info[site].lanGateway } } : {}
    case 'port-prediction': return { portPrediction: { ports: 12 } }
    case 'birthday-spray': return { birthdaySpray: {} }
    case 'tcp-simultaneous-open': return { tcpSimultaneousOpen: true }
    default: return {}
  }
}

/** The technique a prediction says opens the pair directly (null: it relays). */
export function predictedTechnique (p: PairPrediction): DirectTechniqueName | null {
  if (p.strategy === 'direct' || p.strategy === 'punch') return 'punch'
  if (p.alternatives[0] === 'tcp-simultaneous-open') return 'tcp-simultaneous-open'
  return p.direct?.strategy ?? null
}

function parseOutcome (stdout: string, stderr: string): { outcome: PeerOutcome, raw: PeerWorkerResult | undefined } {
  let d: PeerWorkerResult
  try {
    d = JSON.parse(stdout) as PeerWorkerResult
  } catch {
    return {
      outcome: { path: null, local: null, remote: null, firstDatagramMs: null, directMs: null, firstMessageFromStartMs: null, signalledMs: null, rttMs: null, delivered: 0, lost: 0, error: `no result from the lab worker: ${stderr.trim().slice(-300)}`, transport: null },
      raw: undefined
    }
  }
  return {
    outcome: {
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
      error: d.error?.message ?? null,
      transport: d.path === null ? null : d.transport ?? 'udp'
    },
    raw: d
  }
}

/** `ip:port` of a worker's path end (`type ip:port`). */
const endpointOf = (end: string | undefined): string | undefined => end?.split(' ')[1]

/**
 * Which technique opened the direct path, from both peers' reports: the TCP path; the birthday spray's hit; a
 * predicted port or a port-mapped candidate of one side that the other side's path ends at; else standard punching.
 */
export function observedTechnique (a: PeerWorkerResult | undefined, b: PeerWorkerResult | undefined): DirectTechniqueName | null {
  if (a?.path?.type !== 'direct' || b?.path?.type !== 'direct') return null
  if (a.transport === 'tcp' || b.transport === 'tcp') return 'tcp-simultaneous-open'
  if (a.spray?.state === 'spray-hit' || b.spray?.state === 'spray-hit') return 'birthday-spray'
  for (const [me, other] of [[a, b], [b, a]] as const) {
    const reached = endpointOf(other.path?.remote)
    if (me.portMapped != null && reached === me.portMapped) return 'port-mapping'
    const port = Number(reached?.split(':')[1])
    if (me.prediction?.reason === 'predicted' && me.prediction.ports.includes(port)) return 'port-prediction'
  }
  // Both sides mapped: each side's first check gets in through the other's mapping, and each may select the pair of
  // the other's random (peer-reflexive) port, so no path ends at a mapped port; a granted mapping opened it.
  if (a.portMapped != null || b.portMapped != null) return 'port-mapping'
  return 'punch'
}

/** The matrix as a markdown table: path, technique and times per cell (the issue's record format). */
export function matrixMarkdown (cells: MatrixCell[]): string {
  const rows = cells.map(c => {
    const ok = c.peerA.path === c.expected && c.peerB.path === c.expected && (c.expectedTechnique === null || c.technique === c.expectedTechnique)
    const t = (p: PeerOutcome): string => p.firstDatagramMs === null ? '—' : `${p.firstDatagramMs}`
    const d = (p: PeerOutcome): string => p.directMs === null ? '—' : `${p.directMs}`
    const s = (p: PeerOutcome): string => p.firstMessageFromStartMs === null ? '—' : `${p.firstMessageFromStartMs}`
    const upnp = c.upnp.length === 0 ? '' : ` (UPnP ${c.upnp.join('+')})`
    return `| ${c.a} | ${c.b}${upnp} | ${c.peerA.path ?? 'failed'} / ${c.peerB.path ?? 'failed'} | ${c.technique ?? '—'} | ${c.expectedTechnique ?? 'relay'}${ok ? '' : ' ✗'} | ${t(c.peerA)} / ${t(c.peerB)} | ${s(c.peerA)} / ${s(c.peerB)} | ${d(c.peerA)} / ${d(c.peerB)} | ${c.peerA.delivered}+${c.peerB.delivered} | ${c.predicted ?? '—'}${c.predictedTechnique !== null && c.predictedTechnique !== 'punch' ? ` → ${c.predictedTechnique}` : ''} |`
  })
  return ['| A | B | path (A / B) | technique | expected | first datagram ms (A / B) | connect() → first datagram ms (A / B) | direct ms (A / B) | echoes delivered | `natcheck pair` |',
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |', ...rows].join('\n')
}
