/**
 * Every error natkit throws or rejects with. Each class carries a stable `code`; callers test
 * `instanceof` or `code`, never the message text.
 */

/** Base class of all natkit errors. */
export class NatError extends Error {
  constructor (message: string, readonly code: string, options?: ErrorOptions) {
    super(message, options)
    this.name = new.target.name
  }
}

/** A caller passed an option or argument that cannot work; the message says how to fix it. */
export class InvalidArgumentError extends NatError {
  constructor (message: string, options?: ErrorOptions) {
    super(message, 'ERR_INVALID_ARGUMENT', options)
  }
}

/** Bytes that are not a well-formed STUN message (or attribute). `where` names the part. */
export class StunDecodeError extends NatError {
  constructor (readonly where: string, detail: string) {
    super(`malformed STUN ${where}: ${detail}`, 'ERR_STUN_DECODE')
  }
}

/** A well-formed message that fails MESSAGE-INTEGRITY or FINGERPRINT verification. */
export class StunIntegrityError extends NatError {
  constructor (detail: string) {
    super(`STUN integrity check failed: ${detail}`, 'ERR_STUN_INTEGRITY')
  }
}

/** A STUN transaction got no response after all retransmissions (RFC 8489 §6.2.1 Ti). */
export class StunTimeoutError extends NatError {
  constructor (readonly server: string, readonly elapsedMs: number) {
    super(`no STUN response from ${server} after ${elapsedMs} ms`, 'ERR_STUN_TIMEOUT')
  }
}

/** A STUN transaction was answered with an error response (RFC 8489 §14.8). */
export class StunErrorResponse extends NatError {
  constructor (readonly errorCode: number, readonly reason: string, readonly response?: unknown) {
    super(`STUN error response ${errorCode} ${reason}`, 'ERR_STUN_ERROR_RESPONSE')
  }
}

/** A request or operation was cancelled through its AbortSignal. */
export class AbortError extends NatError {
  constructor (message = 'the operation was aborted', options?: ErrorOptions) {
    super(message, 'ABORT_ERR', options)
  }
}

/** A socket-level failure (bind, connect, send, TLS handshake). */
export class TransportError extends NatError {
  constructor (message: string, options?: ErrorOptions) {
    super(message, 'ERR_TRANSPORT', options)
  }
}

/** A host name could not be resolved to an address. */
export class ResolveError extends NatError {
  constructor (readonly host: string, detail: string, options?: ErrorOptions) {
    super(`cannot resolve ${host}: ${detail}`, 'ERR_RESOLVE', options)
  }
}

/** The NAT lab could not be built or driven (not root, missing nftables, a command failed). */
export class LabError extends NatError {
  constructor (message: string, options?: ErrorOptions) {
    super(message, 'ERR_LAB', options)
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
