import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto'
import { encodeNonceCookie } from '../stun/index.js'

/**
 * Stateless NONCEs (RFC 8489 §9.2, RFC 8656 §5): the server keeps no per-client state. A nonce is
 *
 *   cookie (13 chars, RFC 8489 §9.2: "obMatJos2" + base64 feature bits) + hex(expiry seconds) + "." +
 *   base64url(HMAC-SHA256(secret, cookie | expiry | client IP))[0..16]
 *
 * so the server can check that it issued the nonce, to this client IP, and that it has not expired. An expired
 * nonce earns a 438 (Stale Nonce) with a fresh one (RFC 8489 §9.2.4 step 3).
 */

/** The verdict on a received nonce. */
export type NonceCheck = 'valid' | 'stale' | 'invalid'

/** Options for NonceIssuer. */
export interface NonceIssuerOptions {
  /** HMAC secret (default: 32 random bytes, so nonces do not survive a restart). */
  readonly secret?: Uint8Array
  /** How long a nonce is valid, in seconds (default 600, coturn's `--stale-nonce` default). */
  readonly lifetime?: number
  /** Announce SHA-256 password algorithms in the nonce cookie (RFC 8489 §18.1 bit 0); default true. */
  readonly passwordAlgorithms?: boolean
}

/** Issues and verifies stateless nonces bound to a client IP. */
export class NonceIssuer {
  private readonly secret: Uint8Array
  private readonly lifetime: number
  private readonly cookie: string

  constructor (options: NonceIssuerOptions = {}) {
    this.secret = options.secret ?? randomBytes(32)
    this.lifetime = options.lifetime ?? 600
    this.cookie = encodeNonceCookie({ passwordAlgorithms: options.passwordAlgorithms ?? true, usernameAnonymity: false })
  }

  /**
   * A fresh nonce for a client at `clientIp`, valid for at least `lifetime` seconds from `now` (ms) and less than one
   * second more: the expiry is in whole seconds, rounded up (rounded down, a nonce issued late in a second would lose
   * up to that second; with a 1 s lifetime it could be stale a millisecond after it was issued).
   */
  issue (clientIp: string, now: number): string {
    const expiry = Math.ceil(now / 1000) + this.lifetime
    const body = `${this.cookie}${expiry.toString(16)}`
    return `${body}.${this.mac(body, clientIp)}`
  }

  /** Check a nonce received from `clientIp` at `now` (ms). */
  check (nonce: string, clientIp: string, now: number): NonceCheck {
    const dot = nonce.lastIndexOf('.')
    if (dot < 0 || !nonce.startsWith(this.cookie)) return 'invalid'
    const body = nonce.slice(0, dot)
    const expected = Buffer.from(this.mac(body, clientIp))
    const got = Buffer.from(nonce.slice(dot + 1))
    if (got.length !== expected.length || !timingSafeEqual(got, expected)) return 'invalid'
    const expiry = parseInt(body.slice(this.cookie.length), 16)
    if (!Number.isFinite(expiry)) return 'invalid'
    return expiry * 1000 > now ? 'valid' : 'stale'
  }

  private mac (body: string, clientIp: string): string {
    return createHmac('sha256', this.secret).update(`${body}|${clientIp}`).digest('base64url').slice(0, 16)
  }
}
