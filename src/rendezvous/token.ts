import { createHmac, timingSafeEqual } from 'node:crypto'

/**
 * Rendezvous tokens: `EXPIRY:MAC` with EXPIRY in Unix seconds and MAC = base64(HMAC-SHA1(secret, `${EXPIRY}:${ID}`)).
 * That MAC is exactly the TURN REST API password (draft-uberti-behave-turn-rest-00, coturn `--use-auth-secret`) of
 * the username `${EXPIRY}:${ID}`, so one `--auth-secret` serves the TURN relay and the rendezvous server, and a
 * credentials service can hand out both from one computation.
 */

/** Default clock skew allowed after a token's expiry, in seconds. */
export const DEFAULT_TOKEN_SKEW_S = 30

/** Why a token was refused: the wire error codes `unauthorized` and `expired`. */
export type TokenFailure = 'unauthorized' | 'expired'

/** Result of verifyRendezvousToken. */
export type TokenVerification = { readonly ok: true, readonly expiresAt: number } | { readonly ok: false, readonly reason: TokenFailure }

/** Options for verifyRendezvousToken. */
export interface VerifyTokenOptions {
  /** The current time in ms (default Date.now()). */
  readonly now?: number
  /** Seconds a token is still accepted after its expiry, for clock skew (default 30). */
  readonly skewS?: number
}

function mac (secret: string, expiry: string, id: string): Buffer {
  return Buffer.from(createHmac('sha1', secret).update(`${expiry}:${id}`).digest('base64'))
}

/**
 * A token for peer `id`, valid for `ttlS` seconds from `now` (ms, default Date.now()).
 * Same as the TURN REST API password for username `${EXPIRY}:${id}`, prefixed with `${EXPIRY}:`.
 */
export function rendezvousToken (secret: string, id: string, ttlS: number, now: number = Date.now()): string {
  const expiry = String(Math.floor(now / 1000) + Math.floor(ttlS))
  return `${expiry}:${mac(secret, expiry, id).toString()}`
}

/**
 * Check a token for `id` against one secret or several (rotation: any that verifies wins). The MAC is compared in
 * constant time; an expiry more than `skewS` seconds in the past gives `expired` (checked only after the MAC
 * verifies, so an attacker learns nothing from the distinction). Never throws.
 */
export function verifyRendezvousToken (secret: string | readonly string[], id: string, token: unknown, options: VerifyTokenOptions = {}): TokenVerification {
  const secrets = typeof secret === 'string' ? [secret] : secret
  if (typeof token !== 'string' || token.length > 256) return { ok: false, reason: 'unauthorized' }
  const colon = token.indexOf(':')
  if (colon < 1) return { ok: false, reason: 'unauthorized' }
  const expiry = token.slice(0, colon)
  if (!/^\d{1,12}$/.test(expiry)) return { ok: false, reason: 'unauthorized' }
  const given = Buffer.from(token.slice(colon + 1))
  let valid = false
  for (const s of secrets) {
    const expected = mac(s, expiry, id)
    // Lengths are public (a SHA-1 MAC in base64 is always 28 characters); compare the bytes in constant time.
    if (expected.length === given.length && timingSafeEqual(expected, given)) valid = true
  }
  if (!valid) return { ok: false, reason: 'unauthorized' }
  const expiresAt = Number(expiry) * 1000
  const now = options.now ?? Date.now()
  if (expiresAt + (options.skewS ?? DEFAULT_TOKEN_SKEW_S) * 1000 < now) return { ok: false, reason: 'expired' }
  return { ok: true, expiresAt }
}
