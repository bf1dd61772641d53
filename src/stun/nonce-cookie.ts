/**
 * The nonce cookie of RFC 8489 §9.2: a server that supports the RFC 8489 security features starts its NONCE with
 * "obMatJos2" and 4 base64 characters encoding a 24-bit feature set (bit 0 is the most significant, §18.1).
 */

/** The magic prefix of a nonce cookie. */
export const NONCE_COOKIE = 'obMatJos2'

/** Security features a server can announce in its nonce cookie. RFC 8489 §18.1. */
export interface SecurityFeatures {
  /** Bit 0: PASSWORD-ALGORITHMS negotiation (SHA-256 keys). */
  readonly passwordAlgorithms: boolean
  /** Bit 1: USERHASH (username anonymity). */
  readonly usernameAnonymity: boolean
}

const PASSWORD_ALGORITHMS_BIT = 0x800000
const USERNAME_ANONYMITY_BIT = 0x400000

/** The 13-character cookie that starts a nonce announcing `features`. */
export function encodeNonceCookie (features: SecurityFeatures): string {
  const bits = (features.passwordAlgorithms ? PASSWORD_ALGORITHMS_BIT : 0) | (features.usernameAnonymity ? USERNAME_ANONYMITY_BIT : 0)
  const bytes = Buffer.from([bits >> 16, (bits >> 8) & 0xff, bits & 0xff])
  return NONCE_COOKIE + bytes.toString('base64')
}

/** The features a nonce announces, or undefined when it has no cookie (an RFC 5389 server). */
export function decodeNonceCookie (nonce: string): SecurityFeatures | undefined {
  if (!nonce.startsWith(NONCE_COOKIE) || nonce.length < NONCE_COOKIE.length + 4) return undefined
  const text = nonce.slice(NONCE_COOKIE.length, NONCE_COOKIE.length + 4)
  if (!/^[A-Za-z0-9+/]{4}$/.test(text)) return undefined
  const bytes = Buffer.from(text, 'base64')
  const bits = (bytes[0] << 16) | (bytes[1] << 8) | bytes[2]
  return {
    passwordAlgorithms: (bits & PASSWORD_ALGORITHMS_BIT) !== 0,
    usernameAnonymity: (bits & USERNAME_ANONYMITY_BIT) !== 0
  }
}
