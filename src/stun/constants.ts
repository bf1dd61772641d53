/** STUN wire constants. RFC 8489 §5, §18; TURN methods RFC 8656 §17 and RFC 6062 §6.1. */

/** The fixed value in bytes 4..8 of every RFC 5389/8489 message (RFC 8489 §5). */
export const MAGIC_COOKIE = 0x2112a442
/** Bytes in a STUN header. */
export const HEADER_LENGTH = 20
/** Bytes in a transaction id (RFC 8489 §5). */
export const TRANSACTION_ID_LENGTH = 12
/** XORed into the CRC-32 to make FINGERPRINT (RFC 8489 §14.7): "STUN" in ASCII. */
export const FINGERPRINT_XOR = 0x5354554e

/** The two class bits of a message type (RFC 8489 §5). */
export const MessageClass = {
  Request: 0,
  Indication: 1,
  SuccessResponse: 2,
  ErrorResponse: 3
} as const
export type MessageClass = typeof MessageClass[keyof typeof MessageClass]

/** Methods: Binding (RFC 8489), the TURN methods (RFC 8656) and the TCP relay methods (RFC 6062). */
export const Method = {
  Binding: 0x001,
  Allocate: 0x003,
  Refresh: 0x004,
  Send: 0x006,
  Data: 0x007,
  CreatePermission: 0x008,
  ChannelBind: 0x009,
  Connect: 0x00a,
  ConnectionBind: 0x00b,
  ConnectionAttempt: 0x00c
} as const
export type Method = typeof Method[keyof typeof Method]

const METHOD_NAMES = new Map<number, string>(Object.entries(Method).map(([name, value]) => [value, name]))
const CLASS_NAMES = ['request', 'indication', 'success response', 'error response'] as const

/** `Binding request`, `Allocate error response`, `method 0x123 indication`. */
export function describeType (method: number, cls: MessageClass): string {
  const name = METHOD_NAMES.get(method) ?? `method 0x${method.toString(16)}`
  return `${name} ${CLASS_NAMES[cls]}`
}

/** The 14-bit message type from method and class: M11..M7 C1 M6..M4 C0 M3..M0 (RFC 8489 §5, Figure 3). */
export function encodeMessageType (method: number, cls: MessageClass): number {
  return ((method & 0xf80) << 2) | ((method & 0x070) << 1) | (method & 0x00f) |
    ((cls & 2) << 7) | ((cls & 1) << 4)
}

/** Split a 14-bit message type into method and class. */
export function decodeMessageType (type: number): { method: number, cls: MessageClass } {
  const method = ((type & 0x3e00) >> 2) | ((type & 0x00e0) >> 1) | (type & 0x000f)
  const cls = (((type & 0x0100) >> 7) | ((type & 0x0010) >> 4)) as MessageClass
  return { method, cls }
}
