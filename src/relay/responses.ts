import {
  ERROR_REASONS, ErrorCode, MessageBuilder, MessageClass, Software, UnknownAttributes, type StunMessage
} from '../stun/index.js'

/** How a response is protected: the long-term key and the HMAC the request used (RFC 8489 §9.2.4: reply in kind). */
export interface ResponseSecurity {
  readonly key: Uint8Array
  readonly integrity: 'sha1' | 'sha256'
}

/** Extra attributes for a response, written through the builder. */
export type AddAttributes = (b: MessageBuilder) => void

/**
 * Finish a response: MESSAGE-INTEGRITY(-SHA256) when the request was authenticated, SOFTWARE when configured,
 * FINGERPRINT when the request carried one (RFC 8489 §7.3: a server answering a request with FINGERPRINT should
 * include one). Responses echo the request's transaction id and method.
 */
export function buildResponse (
  req: StunMessage, cls: MessageClass, add: AddAttributes | undefined, security: ResponseSecurity | undefined, software: string | undefined
): Buffer {
  const b = new MessageBuilder(req.method, cls, req.transactionId)
  add?.(b)
  if (software !== undefined) b.add(Software, software)
  if (security !== undefined) {
    if (security.integrity === 'sha256') b.integritySha256(security.key)
    else b.integrity(security.key)
  }
  if (req.verifyFingerprint()) b.fingerprint()
  return b.build()
}

/** A success response. */
export function successResponse (req: StunMessage, add: AddAttributes | undefined, security: ResponseSecurity | undefined, software?: string): Buffer {
  return buildResponse(req, MessageClass.SuccessResponse, add, security, software)
}

/** An error response with ERROR-CODE `code` and its standard reason phrase (RFC 8489 §14.8). */
export function errorResponse (
  req: StunMessage, code: number, add: AddAttributes | undefined, security: ResponseSecurity | undefined, software?: string
): Buffer {
  return buildResponse(req, MessageClass.ErrorResponse, (b) => {
    b.add(ErrorCode, { code, reason: ERROR_REASONS[code] ?? '' })
    add?.(b)
  }, security, software)
}

/** A 420 (Unknown Attribute) listing the types (RFC 8489 §6.3.1.1). */
export function unknownAttributesResponse (req: StunMessage, types: number[], software?: string): Buffer {
  return errorResponse(req, 420, (b) => b.add(UnknownAttributes, types), undefined, software)
}
