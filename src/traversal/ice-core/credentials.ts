import { randomBytes } from 'node:crypto'
import { shortTermKey } from '../../stun/index.js'
import type { IceCredentials } from './types.js'

/** Fresh ICE credentials: 8 and 24 ice-chars (RFC 8839 §5.4: A-Z a-z 0-9 + /, so plain base64 without padding). */
export function newCredentials (): IceCredentials {
  const pwd = randomBytes(18).toString('base64')
  return { ufrag: randomBytes(6).toString('base64'), pwd, key: shortTermKey(pwd) }
}

/** A random 64-bit tie-breaker (RFC 8445 §7.3.1.1). */
export function newTiebreaker (): bigint {
  return randomBytes(8).readBigUInt64BE(0)
}
