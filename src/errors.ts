/**
 * Every error natkit throws or rejects with. Each class carries a stable `code`; callers test
 * `instanceof` or `code`, never the message text.
 */

/**
 * Every stable error `code` natkit uses, in one place. Rendezvous server errors add one code per wire error:
 * `ERR_RENDEZVOUS_` + the wire code in upper case (rendezvous/errors.ts RendezvousRemoteError).
 */
export const ERROR_CODES = {
  /** InvalidArgumentError: an option or argument that cannot work. */
  INVALID_ARGUMENT: 'ERR_INVALID_ARGUMENT',
  /** A command line that cannot be run (natcheck only). */
  USAGE: 'ERR_USAGE',
  STUN_DECODE: 'ERR_STUN_DECODE',
  STUN_INTEGRITY: 'ERR_STUN_INTEGRITY',
  STUN_TIMEOUT: 'ERR_STUN_TIMEOUT',
  STUN_ERROR_RESPONSE: 'ERR_STUN_ERROR_RESPONSE',
  /** AbortError, Node's own code for aborts. */
  ABORT: 'ABORT_ERR',
  TRANSPORT: 'ERR_TRANSPORT',
  RESOLVE: 'ERR_RESOLVE',
  LAB: 'ERR_LAB',
  /** traversal ConnectError: no candidate pair worked. */
  CONNECT: 'ERR_CONNECT',
  /** NoPathError: a session lost its last working path. */
  NO_PATH: 'ERR_NO_PATH',
  /** SignallingTimeoutError: the peer's offer or answer did not come in time. */
  SIGNALLING_TIMEOUT: 'ERR_SIGNALLING_TIMEOUT',
  /** RelaySilentError: a TURN allocation worked but nothing sent through it came back. */
  RELAY_SILENT: 'ERR_RELAY_SILENT',
  /** TcpPunchError: a TCP simultaneous-open step failed (its `outcome` is the reason code). */
  TCP_PUNCH: 'ERR_TCP_PUNCH',
  /** A TCP simultaneous-open connect() got no answer within its attempt (reported as `tcp-so-timeout`). */
  TCP_PUNCH_TIMEOUT: 'ERR_TCP_PUNCH_TIMEOUT',
  RENDEZVOUS_TIMEOUT: 'ERR_RENDEZVOUS_TIMEOUT',
  RENDEZVOUS_CLOSED: 'ERR_RENDEZVOUS_CLOSED',
  RENDEZVOUS_OUTBOX_FULL: 'ERR_RENDEZVOUS_OUTBOX_FULL',
  /** Anything that is not a NatError (a bug), as natcheck reports it. */
  INTERNAL: 'ERR_INTERNAL'
} as const

/** The code of a rendezvous server's error frame: this prefix + the wire code in upper case. */
export function rendezvousRemoteCode (wireCode: string): `ERR_RENDEZVOUS_${string}` {
  return `ERR_RENDEZVOUS_${wireCode.toUpperCase()}`
}

/** One of ERROR_CODES, or a rendezvous server's `ERR_RENDEZVOUS_<WIRE CODE>`. */
export type NatErrorCode = typeof ERROR_CODES[keyof typeof ERROR_CODES] | `ERR_RENDEZVOUS_${string}`

/** Base class of all natkit errors. */
export class NatError extends Error {
  constructor (message: string, readonly code: NatErrorCode | string, options?: ErrorOptions) {
    super(message, options)
    this.name = new.target.name
  }
}

/** A caller passed an option or argument that cannot work; the message says how to fix it. */
export class InvalidArgumentError extends NatError {
  constructor (message: string, options?: ErrorOptions) {
    super(message, ERROR_CODES.INVALID_ARGUMENT, options)
  }
}

/** Bytes that are not a well-formed STUN message (or attribute). `where` names the part. */
export class StunDecodeError extends NatError {
  constructor (readonly where: string, detail: string) {
    super(`malformed STUN ${where}: ${detail}`, ERROR_CODES.STUN_DECODE)
  }
}

/** A well-formed message that fails MESSAGE-INTEGRITY or FINGERPRINT verification. */
export class StunIntegrityError extends NatError {
  constructor (detail: string) {
    super(`STUN integrity check failed: ${detail}`, ERROR_CODES.STUN_INTEGRITY)
  }
}

/** A STUN transaction got no response after all retransmissions (RFC 8489 §6.2.1 Ti). */
export class StunTimeoutError extends NatError {
  constructor (readonly server: string, readonly elapsedMs: number) {
    super(`no STUN response from ${server} after ${elapsedMs} ms`, ERROR_CODES.STUN_TIMEOUT)
  }
}

/** A STUN transaction was answered with an error response (RFC 8489 §14.8). */
export class StunErrorResponse extends NatError {
  constructor (readonly errorCode: number, readonly reason: string, readonly response?: unknown) {
    super(`STUN error response ${errorCode} ${reason}`, ERROR_CODES.STUN_ERROR_RESPONSE)
  }
}

/** A request or operation was cancelled through its AbortSignal. */
export class AbortError extends NatError {
  constructor (message = 'the operation was aborted', options?: ErrorOptions) {
    super(message, ERROR_CODES.ABORT, options)
  }
}

/** A socket-level failure (bind, connect, send, TLS handshake). */
export class TransportError extends NatError {
  constructor (message: string, options?: ErrorOptions) {
    super(message, ERROR_CODES.TRANSPORT, options)
  }
}

/** A host name could not be resolved to an address. */
export class ResolveError extends NatError {
  constructor (readonly host: string, detail: string, options?: ErrorOptions) {
    super(`cannot resolve ${host}: ${detail}`, ERROR_CODES.RESOLVE, options)
  }
}

/** The NAT lab could not be built or driven (not root, missing nftables, a command failed). */
export class LabError extends NatError {
  constructor (message: string, options?: ErrorOptions) {
    super(message, ERROR_CODES.LAB, options)
  }
}

/** A session lost its last working path (every pair failed consent). */
export class NoPathError extends NatError {
  constructor (message = 'the session has no working path any more', options?: ErrorOptions) {
    super(message, ERROR_CODES.NO_PATH, options)
  }
}

/**
 * A TCP simultaneous-open step failed (traversal/tcp-punch.ts); `outcome` is its reason code (`tcp-so-unauthenticated`,
 * `tcp-so-reset`, `tcp-so-cancelled`, …).
 */
export class TcpPunchError extends NatError {
  constructor (message: string, readonly outcome: string, options?: ErrorOptions) {
    super(message, ERROR_CODES.TCP_PUNCH, options)
  }
}

/** The peer's offer or answer did not arrive through the signalling channel in time. */
export class SignallingTimeoutError extends NatError {
  constructor (readonly expected: string, options?: ErrorOptions) {
    super(`no ${expected} from the peer within the time allowed`, ERROR_CODES.SIGNALLING_TIMEOUT, options)
  }
}

/** A TURN allocation was made, but none of the datagrams sent to its relayed address came back. */
export class RelaySilentError extends NatError {
  constructor (message: string, options?: ErrorOptions) {
    super(message, ERROR_CODES.RELAY_SILENT, options)
  }
}

/** Bytes that are not a well-formed NAT-PMP, PCP or UPnP IGD message. `where` names the protocol part. */
export class PortMapDecodeError extends NatError {
  constructor (readonly where: string, detail: string) {
    super(`malformed ${where}: ${detail}`, 'ERR_PORTMAP_DECODE')
  }
}

/** No gateway protocol granted a port mapping; `reasons` has each protocol's answer. */
export class PortMapError extends NatError {
  constructor (message: string, readonly reasons: Record<string, string>) {
    super(message, 'ERR_PORTMAP')
  }
}
