import { ERROR_CODES, NatError, rendezvousRemoteCode } from '../errors.js'
import type { RendezvousErrorCode } from './protocol.js'

/**
 * Errors of the rendezvous (signalling) client and server. Each has a stable `code`; callers test `instanceof` or
 * `code`, never the message text.
 */

/** Base class of every rendezvous error. */
export class RendezvousError extends NatError {}

/**
 * The server answered with an `error` frame. `reason` is the wire code (`rate_limited`, `queue_full`, `unauthorized`,
 * …, see RENDEZVOUS_ERROR_CODES) and `code` is `ERR_RENDEZVOUS_` + the wire code in upper case, e.g.
 * `ERR_RENDEZVOUS_RATE_LIMITED`. `ref` is the `seq` of the frame that caused it, when it had one.
 */
export class RendezvousRemoteError extends RendezvousError {
  constructor (readonly reason: RendezvousErrorCode | string, detail: string, readonly ref?: number) {
    super(`rendezvous server error ${reason}: ${detail}`, rendezvousRemoteCode(reason))
  }
}

/** A request (send, ping, connect) got no answer in time. */
export class RendezvousTimeoutError extends RendezvousError {
  constructor (readonly operation: string, readonly timeoutMs: number) {
    super(`rendezvous ${operation} got no answer within ${timeoutMs} ms`, ERROR_CODES.RENDEZVOUS_TIMEOUT)
  }
}

/** The client was closed (or gave up reconnecting) while the operation was pending. */
export class RendezvousClosedError extends RendezvousError {
  constructor (detail = 'the rendezvous client is closed', options?: ErrorOptions) {
    super(detail, ERROR_CODES.RENDEZVOUS_CLOSED, options)
  }
}

/** Too many sends are waiting for an ack (the client's outbox is full): slow down. */
export class RendezvousOutboxFullError extends RendezvousError {
  constructor (readonly limit: number) {
    super(`more than ${limit} rendezvous messages are waiting for an ack`, ERROR_CODES.RENDEZVOUS_OUTBOX_FULL)
  }
}
