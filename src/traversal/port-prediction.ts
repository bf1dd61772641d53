/**
 * Port prediction for NATs that allocate a new external port per destination in a fixed step (address-and-port-
 * dependent mapping, RFC 4787 §4.1, with sequential port assignment): the agent measures its own socket's mappings
 * towards a few destinations, one after the other, and when the steps agree it offers the next ports as
 * server-reflexive candidates. The peer's connectivity checks (paced at Ta like every check, and bounded by the
 * number of ports offered) then open its own filter for the port the NAT will give the flow towards it.
 * `predictPorts` is pure; `measurePortAllocation` owns the requests.
 */
import { classifyPortPattern } from '../discovery/port-pattern.js'
import { InvalidArgumentError } from '../errors.js'
import { sameTransportAddress, type Endpoint } from '../net/endpoint.js'
import { resolveServer } from '../net/resolve.js'
import { buildBindingRequest, parseBindingResponse } from '../stun/client.js'
import type { StunTransactions } from '../stun/index.js'
import type { Candidate } from './candidate.js'
import type { GatherAttempt } from './gather.js'

/**
 * Why prediction did or did not offer candidates (the connect report's reason code):
 * - `predicted`: the mappings stepped by a constant delta; the next ports were offered.
 * - `endpoint-independent`: every destination saw the same port; the ordinary srflx candidate already works.
 * - `not-sequential`: the ports show no constant step (random allocation); nothing to predict.
 * - `too-few-samples`: fewer than three destinations answered (an RFC 5780 server gives four).
 */
export type PredictionReason = 'predicted' | 'endpoint-independent' | 'not-sequential' | 'too-few-samples'

/** Options of the agent's port prediction (opt-in). */
export interface PortPredictionOptions {
  /** How many predicted ports to offer (default 12, at most 64): each costs the peer one paced check. */
  readonly ports?: number
  /** Connectivity checks wait at most this long for the measurement (default 500 ms), so they do not take ports from under it. */
  readonly checksWaitMs?: number
}

/** Default number of predicted ports. */
export const PREDICTED_PORTS = 12
/** Upper bound of predicted ports: the burst the peer sends stays small. */
export const MAX_PREDICTED_PORTS = 64
/**
 * Local preference of the first predicted candidate; the k-th gets PREDICTED_LOCAL_PREFERENCE − k: below the
 * STUN-learned server-reflexive ones (65534), and recognisable by a natkit peer (see isPredictedCandidate).
 */
export const PREDICTED_LOCAL_PREFERENCE = 32767
/** Destinations measured at most (an RFC 5780 server's four transport addresses). */
const MAX_SAMPLES = 4

/** One mapping of the measured socket. */
export interface AllocationSample {
  readonly local: number
  readonly external: number
  readonly address: string
}

/** What prediction concluded. */
export interface PortPrediction {
  readonly reason: PredictionReason
  /** The step between consecutive mappings, when constant. */
  readonly delta: number | null
  /** The public address the ports belong to (the measured mapped address). */
  readonly address: string | null
  /** The predicted ports, in the order the NAT should hand them out. */
  readonly ports: number[]
  /** The measured external ports, in order. */
  readonly samples: number[]
}

/** Check the option and return the number of ports to predict. */
export function predictedPortCount (o: PortPredictionOptions): number {
  const n = o.ports ?? PREDICTED_PORTS
  if (!Number.isInteger(n) || n < 1 || n > MAX_PREDICTED_PORTS) throw new InvalidArgumentError(`portPrediction.ports must be a whole number from 1 to ${MAX_PREDICTED_PORTS}, got ${String(o.ports)}`)
  return n
}

/**
 * Predict the next `count` external ports from mappings measured in order (pure). Ports outside 1-65535 are left out.
 */
export function predictPorts (samples: readonly AllocationSample[], count: number): PortPrediction {
  const external = samples.map(s => s.external)
  const address = samples.at(-1)?.address ?? null
  const none = (reason: PredictionReason, delta: number | null = null): PortPrediction => ({ reason, delta, address, ports: [], samples: external })
  if (samples.length >= 2 && external.every(p => p === external[0]) && samples.every(s => s.address === address)) return none('endpoint-independent')
  if (samples.length < 3) return none('too-few-samples')
  const pattern = classifyPortPattern(samples.map(s => ({ local: s.local, external: s.external })))
  if (pattern.pattern !== 'sequential' || pattern.delta === null) return none('not-sequential')
  const last = external[external.length - 1]
  const ports: number[] = []
  for (let k = 1; k <= count; k++) {
    const p = last + pattern.delta * k
    if (p >= 1 && p <= 65535) ports.push(p)
  }
  return { reason: 'predicted', delta: pattern.delta, address, ports, samples: external }
}

/**
 * Measure the socket's mappings: Binding requests to each destination in turn, each sent only after the previous one
 * was answered, so the samples are in allocation order. The first answer's OTHER-ADDRESS (RFC 5780 §7.3) adds the
 * server's other three transport addresses. Bounded by `budgetMs`; destinations that do not answer are skipped.
 */
export async function measurePortAllocation (tx: StunTransactions, servers: readonly string[], budgetMs: number, signal?: AbortSignal): Promise<AllocationSample[]> {
  const deadline = AbortSignal.timeout(budgetMs)
  const stop = signal !== undefined ? AbortSignal.any([signal, deadline]) : deadline
  const dests: Endpoint[] = []
  const add = (e: Endpoint): void => { if (!dests.some(d => sameTransportAddress(d, e))) dests.push(e) }
  for (const s of servers) {
    try { add((await resolveServer(s, { family: 4 }))[0]) } catch { /* an unresolvable server is skipped */ }
  }
  const samples: AllocationSample[] = []
  let expanded = false
  for (let i = 0; i < dests.length && samples.length < MAX_SAMPLES && !stop.aborted; i++) {
    const to = dests[i]
    try {
      const res = await tx.request(buildBindingRequest(), to, { rtoMs: 150, rc: 4, rm: 8, signal: stop })
      const r = parseBindingResponse(res.message, res.from, tx.socket.local, res.rttMs)
      samples.push({ local: tx.socket.local.port, external: r.mapped.port, address: r.mapped.address })
      const other = r.otherAddress
      if (!expanded && other !== undefined && other.address !== to.address && other.port !== to.port) {
        expanded = true
        // The other three of the server's four addresses, next in line (RFC 5780 §4.1).
        dests.splice(i + 1, 0, ...[{ address: to.address, port: other.port }, { address: other.address, port: to.port }, other].filter(e => !dests.some(d => sameTransportAddress(d, e))))
      }
    } catch { /* no answer from this destination: the next one */ }
  }
  return samples
}

/**
 * Measure and predict within `budgetMs` (the agent's gathering step). Never throws: the outcome and its reason code
 * are in the attempt.
 */
export async function gatherPredicted (tx: StunTransactions, servers: readonly string[], budgetMs: number, count: number, signal?: AbortSignal): Promise<{ prediction: PortPrediction, attempt: GatherAttempt }> {
  const started = performance.now()
  const samples = await measurePortAllocation(tx, servers, budgetMs, signal)
  const p = predictPorts(samples, count)
  const range = p.ports.length > 0 ? `; offered ${p.ports.length} ports ${p.ports[0]}..${p.ports[p.ports.length - 1]}` : ''
  return {
    prediction: p,
    attempt: {
      kind: 'prediction', server: servers.join(', '), ok: p.reason === 'predicted', ms: Math.round(performance.now() - started), reason: p.reason,
      detail: `${p.reason}: mapped ports ${p.samples.join(', ') || 'none'}${p.delta !== null ? `, step ${p.delta}` : ''}${range}`
    }
  }
}

/** Whether a remote candidate is one a natkit peer offered by port prediction (srflx, local preference in the predicted band). */
export function isPredictedCandidate (c: Pick<Candidate, 'type' | 'priority'>): boolean {
  const preference = Math.floor(c.priority / 256) % 65536
  return c.type === 'srflx' && preference <= PREDICTED_LOCAL_PREFERENCE && preference > PREDICTED_LOCAL_PREFERENCE - MAX_PREDICTED_PORTS
}

/**
 * Two sequential symmetric NATs facing each other (both sides predicting): the port a NAT gives a flow is the next in
 * line when the flow starts, so each side's k-th new flow after its measurement must go to the peer's k-th predicted
 * port. Then A's flow (a+k → b+k) and B's flow (b+k → a+k) are each other's reply, and the first check that crosses
 * opens the pair. The agent sends these checks first, in this order, before any check to another new destination
 * (which would take a port out of turn). Returns the peer's predicted endpoints in order, when this side predicted.
 */
export function predictedBurst (own: Pick<PortPrediction, 'reason'> | undefined, remote: readonly Candidate[]): Endpoint[] {
  if (own?.reason !== 'predicted') return []
  return remote.filter(isPredictedCandidate).sort((x, y) => y.priority - x.priority).map(c => ({ address: c.address, port: c.port }))
}
