import { createHmac, timingSafeEqual } from 'node:crypto'

/**
 * Rendezvous tokens: `EXPIRY:MAC` with EXPIRY in Unix seconds and
 * MAC = base64url(HMAC-SHA256(secret, "natkit-rendezvous-token-v1" NUL EXPIRY NUL ID)), 43 characters.
 *
 * The secret is the TURN relay's `--auth-secret`, so one secret serves both servers, but the MAC is derived under its
 * own label: it is never the TURN REST API password (draft-uberti-behave-turn-rest-00: base64(HMAC-SHA1(secret,
 * "EXPIRY:USER"))) of any username, so a TURN credential cannot be replayed as a rendezvous token nor the other way
 * round. The NUL separators keep (EXPIRY, ID) pairs unambiguous: ids cannot contain control characters.
 */

/** The HMAC label of rendezvous tokens (domain separation from TURN REST passwords). */
export const RENDEZVOUS_TOKEN_LABEL = 'natkit-rendezvous-token-v1'

/** Default clock skew allowed around a token's expiry, in seconds. */
export const DEFAULT_TOKEN_SKEW_S = 30

/** Default furthest a token's expiry may lie in the future, in seconds (24 h, as the TURN REST usernames). */
export const DEFAULT_MAX_TOKEN_AHEAD_S = 86_400

/**
 * Why a token was refused. `unauthorized`: malformed or wrong MAC; `expired`: the expiry (plus skew) has passed;
 * `too_far_ahead`: the expiry lies more than maxAheadS (plus skew) in the future. On the wire, `too_far_ahead` is
 * sent as `unauthorized` (the token will not do, and retrying with it will not help).
 */
export type TokenFailure = 'unauthorized' | 'expired' | 'too_far_ahead'

/** Result of verifyRendezvousToken. */
export type TokenVerification = { readonly ok: true, readonly expiresAt: number } | { readonly ok: false, readonly reason: TokenFailure }

/** Options for verifyRendezvousToken. */
export interface VerifyTokenOptions {
  /** The current time in ms (default Date.now()). */
  readonly now?: number
  /** Seconds of clock skew allowed on either side: after the expiry, and beyond maxAheadS (default 30). */
  readonly skewS?: number
  /** Furthest ahead of `now` an expiry may be, in seconds (default 86400). A leaked long-lived token is refused. */
  readonly maxAheadS?: number
}

function mac (secret: string, expiry: string, id: string): Buffer {
  const digest = createHmac('sha256', secret).update(`${RENDEZVOUS_TOKEN_LABEL}\0${expiry}\0${id}`).digest('base64url')
  return Buffer.from(digest)
}

/**
 * A token for peer `id`, valid for `ttlS` seconds from `now` (ms, default Date.now()). Servers refuse tokens whose
 * expiry is more than their `maxTokenAheadS` (default 24 h) ahead, so keep `ttlS` below that.
 */
export function rendezvousToken (secret: string, id: string, ttlS: number, now: number = Date.now()): string {
  const expiry = String(Math.floor(now / 1000) + Math.floor(ttlS))
  return `${expiry}:${mac(secret, expiry, id).toString()}`
}

/**
 * Check a token for `id` against one secret or several (rotation: any that verifies wins). The MAC is compared in
 * constant time; only after it verifies is the expiry checked: more than `skewS` seconds in the past gives `expired`,
 * more than `maxAheadS + skewS` seconds in the future gives `too_far_ahead` (so an attacker learns nothing from the
 * distinction). Never throws.
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
    // Lengths are public (a SHA-256 MAC in base64url is always 43 characters); compare the bytes in constant time.
    if (expected.length === given.length && timingSafeEqual(expected, given)) valid = true
  }
  if (!valid) return { ok: false, reason: 'unauthorized' }
  const expiresAt = Number(expiry) * 1000
  const now = options.now ?? Date.now()
  const skewMs = (options.skewS ?? DEFAULT_TOKEN_SKEW_S) * 1000
  if (expiresAt + skewMs < now) return { ok: false, reason: 'expired' }
  if (expiresAt - now > (options.maxAheadS ?? DEFAULT_MAX_TOKEN_AHEAD_S) * 1000 + skewMs) return { ok: false, reason: 'too_far_ahead' }
  return { ok: true, expiresAt }
}
