/**
 * The birthday spray's plan (pure): options and caps, the announcement each side signals (`natkit/spray`) and its
 * validation, each side's part from the two announcements with the success probability P = 1 − (1 − N/R)^M, and the
 * random ports to probe. The spraying itself is birthday-spray.ts.
 */
import { birthdaySprayProbability } from '../discovery/predict.js'
import { InvalidArgumentError } from '../errors.js'
import { ipFamily, type Endpoint } from '../net/endpoint.js'
import type { DatagramSocket } from '../net/udp.js'
import type { PortPrediction } from './port-prediction.js'

/**
 * How a spray ended (the connect report's reason code):
 * - `spray-hit`: a probed port was a mapped one; the pair it found was handed to the agent's checks.
 * - `spray-exhausted`: every socket and probe was spent (and the wait for late hits ran out) without a hit.
 * - `spray-not-applicable`: the pair is not symmetric-random × endpoint-independent, or the peer did not take part
 *   (the detail says why).
 * - `spray-superseded`: another pair went direct first (e.g. the cone's filter admitted the ordinary checks); the
 *   spray stopped there.
 * - `spray-aborted`: the agent closed while the spray ran.
 */
export type SprayReason = 'spray-hit' | 'spray-exhausted' | 'spray-not-applicable' | 'spray-superseded' | 'spray-aborted'

/** A side's mapping behaviour as the spray sees it (from the port-prediction measurement's reason code). */
export type SprayMapping = 'random' | 'endpoint-independent' | 'sequential' | 'unknown'

/** The part a side plays: `sockets` (the symmetric side, N mappings) or `probes` (the cone side, M probes). */
export type SprayRole = 'sockets' | 'probes'

/** Options of the agent's birthday spray (opt-in; both peers must turn it on). */
export interface BirthdaySprayOptions {
  /** N: sockets the symmetric side opens, one mapping each (default 256, at most 1024). */
  readonly sockets?: number
  /** M: ports the cone side probes (default 2048, at most 8192). */
  readonly probes?: number
  /** Spray packets per second this side sends at most (default 1000, 10-10000). */
  readonly rate?: number
  /** The ports this side's NAT allocates from, when known (default 1024-65535: Linux, most routers). */
  readonly portRange?: readonly [number, number]
  /** How long after checks start to wait for the peer's announcement (default 3000 ms). */
  readonly waitMs?: number
  /** Bind one spray socket (default: a UDP socket on the agent's bind address). A seam for the simulator. */
  readonly bind?: () => Promise<DatagramSocket>
}

/** Default N. */
export const SPRAY_SOCKETS = 256
/** Upper bound of N: file descriptors, and the burst the symmetric side sends. */
export const MAX_SPRAY_SOCKETS = 1024
/** Default M. */
export const SPRAY_PROBES = 2048
/** Upper bound of M. */
export const MAX_SPRAY_PROBES = 8192
/** Default pace, packets per second (about 1 Mbit/s of ~100-byte checks). */
export const SPRAY_RATE = 1000
const MAX_SPRAY_RATE = 10_000
/** The port range a NAT allocates from when nothing better is known: 1024-65535 (R = 64512). */
export const SPRAY_PORT_RANGE: readonly [number, number] = [1024, 65535]
/** What a side signals to its peer in `natkit/spray`. */
export interface SprayAnnouncement {
  readonly mapping: SprayMapping
  /** The side's public address (null when the measurement got no answer). */
  readonly address: string | null
  /** The public port every destination sees, for an endpoint-independent mapping; null otherwise. */
  readonly port: number | null
  readonly sockets: number
  readonly probes: number
  readonly rate: number
  readonly portRange: readonly [number, number]
}

/** What the two announcements mean for this side. */
export type SprayPlan =
  | {
    readonly applicable: true
    readonly role: SprayRole
    /** sockets: the cone side's public endpoint; probes: the symmetric side's public address (port 0). */
    readonly target: Endpoint
    readonly sockets: number
    readonly probes: number
    /** This side's pace. */
    readonly rate: number
    readonly portRange: readonly [number, number]
    /** P = 1 − (1 − N/R)^M. */
    readonly probability: number
    /** The peer's pace and count, for how long the sockets side holds its mappings. */
    readonly peerProbes: number
    readonly peerRate: number
  }
  | { readonly applicable: false, readonly why: string }

/** Check the options (throws InvalidArgumentError saying how to fix them) and fill the defaults. */
export function resolveSprayOptions (o: BirthdaySprayOptions): Required<Omit<BirthdaySprayOptions, 'bind'>> & Pick<BirthdaySprayOptions, 'bind'> {
  const int = (v: number | undefined, def: number, min: number, max: number, name: string): number => {
    const n = v ?? def
    if (!Number.isInteger(n) || n < min || n > max) throw new InvalidArgumentError(`birthdaySpray.${name} must be a whole number from ${min} to ${max}, got ${String(v)}`)
    return n
  }
  const range = o.portRange ?? SPRAY_PORT_RANGE
  if (!Array.isArray(range) || range.length !== 2 || !range.every(p => Number.isInteger(p) && p >= 1 && p <= 65535) || range[0] > range[1]) {
    throw new InvalidArgumentError(`birthdaySpray.portRange must be [low, high] within 1-65535, got ${JSON.stringify(o.portRange)}`)
  }
  return {
    sockets: int(o.sockets, SPRAY_SOCKETS, 1, MAX_SPRAY_SOCKETS, 'sockets'),
    probes: int(o.probes, SPRAY_PROBES, 1, MAX_SPRAY_PROBES, 'probes'),
    rate: int(o.rate, SPRAY_RATE, 10, MAX_SPRAY_RATE, 'rate'),
    portRange: [range[0], range[1]],
    waitMs: int(o.waitMs, 3000, 0, 60_000, 'waitMs'),
    bind: o.bind
  }
}

/** A side's mapping from the port-prediction measurement's reason code. */
export function sprayMappingOf (p: Pick<PortPrediction, 'reason'>): SprayMapping {
  switch (p.reason) {
    case 'endpoint-independent': return 'endpoint-independent'
    case 'not-sequential': return 'random'
    case 'predicted': return 'sequential'
    case 'too-few-samples': return 'unknown'
  }
}

/**
 * Validate a peer's `natkit/spray` announcement (untrusted signalling input): undefined when malformed. Numbers
 * outside natkit's caps are clamped to them, so a peer cannot make this side hold sockets longer than the caps allow.
 */
export function parseSprayAnnouncement (raw: unknown): SprayAnnouncement | undefined {
  if (typeof raw !== 'object' || raw === null) return undefined
  const r = raw as Record<string, unknown>
  const mappings: readonly string[] = ['random', 'endpoint-independent', 'sequential', 'unknown']
  if (typeof r.mapping !== 'string' || !mappings.includes(r.mapping)) return undefined
  const address = r.address === null ? null : typeof r.address === 'string' && ipFamily(r.address) !== 0 ? r.address : undefined
  const port = r.port === null ? null : Number.isInteger(r.port) && (r.port as number) >= 1 && (r.port as number) <= 65535 ? r.port as number : undefined
  if (address === undefined || port === undefined) return undefined
  const count = (v: unknown, max: number): number | undefined => Number.isInteger(v) && (v as number) >= 1 ? Math.min(v as number, max) : undefined
  const sockets = count(r.sockets, MAX_SPRAY_SOCKETS)
  const probes = count(r.probes, MAX_SPRAY_PROBES)
  const rate = count(r.rate, MAX_SPRAY_RATE)
  const range = r.portRange
  if (sockets === undefined || probes === undefined || rate === undefined || !Array.isArray(range) || range.length !== 2) return undefined
  const [lo, hi] = range as unknown[]
  if (!Number.isInteger(lo) || !Number.isInteger(hi) || (lo as number) < 1 || (hi as number) > 65535 || (lo as number) > (hi as number)) return undefined
  return { mapping: r.mapping as SprayMapping, address, port, sockets, probes, rate, portRange: [lo as number, hi as number] }
}

/**
 * Decide this side's part from both announcements (pure): the symmetric-random side opens sockets towards the
 * endpoint-independent side's public endpoint, which probes the other's address. Anything else is not applicable,
 * with the reason.
 */
export function planSpray (self: SprayAnnouncement, peer: SprayAnnouncement): SprayPlan {
  const no = (why: string): SprayPlan => ({ applicable: false, why })
  const kinds = [self.mapping, peer.mapping]
  if (kinds.includes('unknown')) return no(`${self.mapping === 'unknown' ? 'this side\'s' : 'the peer\'s'} mapping is unknown (fewer than three STUN answers; an RFC 5780 server gives four)`)
  if (kinds.includes('sequential')) return no('sequential ports: port prediction (portPrediction) opens this pair with a handful of packets')
  if (kinds.every(k => k === 'endpoint-independent')) return no('both mappings are endpoint-independent: ordinary hole punching opens this pair')
  if (kinds.every(k => k === 'random')) return no('both sides are symmetric with random ports: neither side has one port the other could probe, so a spray cannot meet (relay)')
  if (self.address === null || peer.address === null) return no('a public address is unknown')
  if (ipFamily(self.address) !== 4 || ipFamily(peer.address) !== 4) return no('IPv6: no NAT to spray through')
  const sockets = self.mapping === 'random' ? self : peer
  const probes = self.mapping === 'random' ? peer : self
  if (probes.port === null) return no('the endpoint-independent side announced no public port')
  const portRange = sockets.portRange
  const probability = birthdaySprayProbability(sockets.sockets, probes.probes, portRange[1] - portRange[0] + 1)
  const common = { sockets: sockets.sockets, probes: probes.probes, rate: self.rate, portRange, probability, peerProbes: peer.probes, peerRate: peer.rate }
  return self.mapping === 'random'
    ? { applicable: true, role: 'sockets', target: { address: peer.address, port: probes.port }, ...common }
    : { applicable: true, role: 'probes', target: { address: peer.address, port: 0 }, ...common }
}

/**
 * `count` distinct ports from `range`, in random order (a partial Fisher-Yates shuffle over a sparse map, so memory
 * is O(count), not O(range)). `random` returns [0, 1).
 */
export function samplePorts (range: readonly [number, number], count: number, random: () => number = Math.random): number[] {
  const size = range[1] - range[0] + 1
  const n = Math.min(count, size)
  const swapped = new Map<number, number>()
  const out: number[] = []
  for (let i = 0; i < n; i++) {
    const j = i + Math.floor(random() * (size - i))
    const vi = swapped.get(i) ?? i
    const vj = swapped.get(j) ?? j
    swapped.set(j, vi)
    out.push(range[0] + vj)
  }
  return out
}
