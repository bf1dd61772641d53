import { AbortError, StunErrorResponse, StunTimeoutError } from '../errors.js'
import type { Endpoint } from '../net/endpoint.js'
import type { BindingRequestOptions, BindingResult, StunClient } from '../stun/client.js'

/** The outcome of one discovery probe: a response, an error response, or silence. Probes never throw (except on abort). */
export type ProbeOutcome =
  | { readonly kind: 'response', readonly result: BindingResult }
  | { readonly kind: 'error', readonly code: number, readonly reason: string }
  | { readonly kind: 'timeout' }

/** One Binding probe from a fixed local socket. The decision logic depends only on this, so tests can replay recordings. */
export type Probe = (target: Endpoint, options?: Pick<BindingRequestOptions, 'changeRequest' | 'responsePort' | 'padding'>) => Promise<ProbeOutcome>

/** Retransmission for probes: sends at 0, rto, 3·rto…, and silence is concluded `waitMs` after the first send. */
export interface ProbeTiming {
  readonly rtoMs: number
  readonly rc: number
  readonly rm: number
}

/**
 * Probe timing derived from the measured round trip, so a negative result (no response, the normal outcome of a
 * filtering test) costs a few RTTs, not the 39.5 s of RFC 8489's defaults: RTO = 2·RTT + 20 ms (at least 30 ms),
 * three sends, giving up 4 RTOs after the last. On a LAN-speed path that is ~250 ms; on a 100 ms path ~1.7 s.
 */
export function timingFromRtt (rttMs: number): ProbeTiming {
  const rtoMs = Math.min(500, Math.max(30, 2 * rttMs + 20))
  return { rtoMs, rc: 3, rm: 4 }
}

/** Total time a probe may take with this timing before it reports silence. */
export function probeBudgetMs (t: ProbeTiming): number {
  return t.rtoMs * (2 ** (t.rc - 1) - 1) + t.rm * t.rtoMs
}

/** A Probe on a StunClient's socket. */
export function clientProbe (client: StunClient, timing: ProbeTiming, signal?: AbortSignal): Probe {
  return async (target, options = {}) => {
    try {
      const result = await client.binding(target, { ...options, ...timing, signal })
      return { kind: 'response', result }
    } catch (err) {
      if (err instanceof StunErrorResponse) return { kind: 'error', code: err.errorCode, reason: err.reason }
      if (err instanceof StunTimeoutError) return { kind: 'timeout' }
      if (err instanceof AbortError) throw err
      // A malformed response counts as no usable response.
      return { kind: 'timeout' }
    }
  }
}

/**
 * Send a raw request on the probe schedule (at 0, RTO, 3·RTO, … — `rc` sends), for probes whose answer arrives
 * elsewhere than a pending transaction (hairpinning, lifetime). Returns a function that cancels the sends left.
 */
export function sendOnSchedule (send: () => void, timing: ProbeTiming): () => void {
  const timers: NodeJS.Timeout[] = []
  let at = 0
  for (let i = 0; i < timing.rc; i++) {
    timers.push(setTimeout(send, at))
    at += timing.rtoMs * 2 ** i
  }
  return () => { for (const t of timers) clearTimeout(t) }
}
