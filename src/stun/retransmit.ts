import { InvalidArgumentError } from '../errors.js'

/** Retransmission settings for a STUN transaction (RFC 8489 §6.2.1, §6.2.2). */
export interface RetransmitOptions {
  /** Initial retransmission timeout, ms (RFC 8489: 500 ms; more than 500 ms recommended for unknown paths). */
  readonly rtoMs?: number
  /** Total number of sends over UDP (Rc, default 7). */
  readonly rc?: number
  /** After the last send, wait Rm × RTO before giving up (Rm, default 16). */
  readonly rm?: number
  /** Over a reliable transport (TCP/TLS): one send and this timeout (Ti, default 39 500 ms). */
  readonly reliableTimeoutMs?: number
}

/** RFC 8489 defaults. */
export const RETRANSMIT_DEFAULTS = { rtoMs: 500, rc: 7, rm: 16, reliableTimeoutMs: 39_500 } as const

/** Validated, complete retransmission settings. */
export type ResolvedRetransmit = { readonly [K in keyof RetransmitOptions]-?: number }

/** Fill in defaults and validate. Throws InvalidArgumentError for values that cannot work. */
export function resolveRetransmit (options: RetransmitOptions = {}): ResolvedRetransmit {
  const r = { ...RETRANSMIT_DEFAULTS, ...stripUndefined(options) }
  if (!(r.rtoMs > 0)) throw new InvalidArgumentError(`rtoMs must be > 0, got ${r.rtoMs}`)
  if (!Number.isInteger(r.rc) || r.rc < 1) throw new InvalidArgumentError(`rc must be an integer >= 1, got ${r.rc}`)
  if (!(r.rm > 0)) throw new InvalidArgumentError(`rm must be > 0, got ${r.rm}`)
  if (!(r.reliableTimeoutMs > 0)) throw new InvalidArgumentError(`reliableTimeoutMs must be > 0, got ${r.reliableTimeoutMs}`)
  return r
}

function stripUndefined<T extends object> (o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>
}

/**
 * The UDP schedule as offsets from the first send (RFC 8489 §6.2.1): sends at 0, RTO, 3·RTO, 7·RTO, … (the interval
 * doubles each time), Rc sends in all, then the transaction fails Rm·RTO after the last send. With the defaults:
 * sends at 0, 500, 1500, 3500, 7500, 15500, 31500 ms and failure at 39 500 ms.
 */
export function udpSchedule (r: ResolvedRetransmit): { sends: number[], timeout: number } {
  const sends: number[] = []
  let at = 0
  let interval = r.rtoMs
  for (let i = 0; i < r.rc; i++) {
    sends.push(at)
    at += interval
    interval *= 2
  }
  return { sends, timeout: sends[sends.length - 1] + r.rm * r.rtoMs }
}
