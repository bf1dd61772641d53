import type { Endpoint } from '../../net/endpoint.js'
import {
  ErrorCode, IceControlled, IceControlling, MessageBuilder, MessageClass, Method, Priority, UseCandidate, Username,
  XorMappedAddress, type StunMessage
} from '../../stun/index.js'

/** ICE roles (RFC 8445 §6.1.1). */
export type IceRole = 'controlling' | 'controlled'

/** Everything a connectivity-check request carries (RFC 8445 §7.2.2). */
export interface CheckRequest {
  /** USERNAME is `remoteUfrag:localUfrag` (the receiver's fragment first). */
  readonly localUfrag: string
  readonly remoteUfrag: string
  /** The remote password's short-term key (MESSAGE-INTEGRITY). */
  readonly remoteKey: Uint8Array
  /** PRIORITY: what a peer-reflexive candidate learnt from this check would get. */
  readonly priority: number
  readonly role: IceRole
  readonly tiebreaker: bigint
  readonly nominate: boolean
}

/** Encode a check request with FINGERPRINT. */
export function buildCheckRequest (c: CheckRequest): Buffer {
  const b = new MessageBuilder(Method.Binding, MessageClass.Request)
    .add(Username, `${c.remoteUfrag}:${c.localUfrag}`)
    .add(Priority, c.priority)
  if (c.role === 'controlling') b.add(IceControlling, c.tiebreaker)
  else b.add(IceControlled, c.tiebreaker)
  if (c.nominate) b.add(UseCandidate, true)
  return b.integrity(c.remoteKey).fingerprint().build()
}

/** Whether a received check is for us: USERNAME starts with our fragment and MESSAGE-INTEGRITY verifies (§7.3). */
export function isAuthenticCheck (m: StunMessage, localUfrag: string, localKey: Uint8Array): boolean {
  const username = m.get(Username)
  return username !== undefined && username.startsWith(`${localUfrag}:`) && m.verifyIntegrity(localKey)
}

/**
 * RFC 8445 §7.3.1.1, on receiving a check: `respond-487` when we keep our role and the sender must switch, `switch`
 * when we must switch ours, `none` when the roles do not conflict. The agent with the larger tie-breaker controls.
 */
export function resolveRoleConflict (m: StunMessage, role: IceRole, tiebreaker: bigint): 'none' | 'switch' | 'respond-487' {
  if (role === 'controlling') {
    const theirs = m.get(IceControlling)
    if (theirs === undefined) return 'none'
    return tiebreaker >= theirs ? 'respond-487' : 'switch'
  }
  const theirs = m.get(IceControlled)
  if (theirs === undefined) return 'none'
  return tiebreaker >= theirs ? 'switch' : 'respond-487'
}

/** A success response (XOR-MAPPED-ADDRESS = the source) or a 487, with integrity from our key (§7.3.1). */
export function buildCheckResponse (m: StunMessage, from: Endpoint, localKey: Uint8Array, roleConflict = false): Buffer {
  const b = new MessageBuilder(Method.Binding, roleConflict ? MessageClass.ErrorResponse : MessageClass.SuccessResponse, m.transactionId)
  if (roleConflict) b.add(ErrorCode, { code: 487, reason: 'Role Conflict' })
  else b.add(XorMappedAddress, from)
  return b.integrity(localKey).fingerprint().build()
}

/** A 401 for a check with the wrong credentials (without integrity: the sender cannot share our key). */
export function buildUnauthenticated (m: StunMessage): Buffer {
  return new MessageBuilder(Method.Binding, MessageClass.ErrorResponse, m.transactionId)
    .add(ErrorCode, { code: 401, reason: 'Unauthenticated' }).fingerprint().build()
}
