import { createHmac } from 'node:crypto'
import { longTermKey, userhash, type PasswordAlgorithmName } from '../stun/index.js'

/**
 * Where the TURN server's long-term credentials come from (RFC 8489 §9.2, RFC 8656 §5): a static user table
 * and/or the TURN REST API shared secret (draft-uberti-behave-turn-rest-00, coturn `--use-auth-secret`).
 */

/** Options for CredentialStore. */
export interface CredentialStoreOptions {
  /** The REALM (RFC 8489 §14.9). */
  readonly realm: string
  /** Static users: name → password. */
  readonly users?: Readonly<Record<string, string>> | ReadonlyMap<string, string>
  /**
   * TURN REST API shared secret(s), as coturn's `--static-auth-secret`. Several are accepted for rotation; the
   * first that verifies wins. Usernames are `EXPIRY` or `EXPIRY:USER` (EXPIRY in Unix seconds); the password is
   * base64(HMAC-SHA1(secret, username)).
   */
  readonly authSecret?: string | readonly string[]
  /** Separator between expiry and user in REST usernames (coturn `--rest-api-separator`, default ':'). */
  readonly restSeparator?: string
  /**
   * The furthest ahead a REST username's expiry may be, in seconds (default 86,400: 24 h, the lifetime the TURN REST
   * draft suggests). A credential service hands out short-lived credentials; an expiry years ahead is a leaked
   * secret's forgery or a misconfigured service, and would be a password that never expires. A further
   * 300 s (REST_CLOCK_SKEW_S) are allowed for the clocks of the credential service and the relay to differ.
   */
  readonly restMaxTtlS?: number
  /**
   * More users, as long-term keys looked up synchronously by name (e.g. a cache of coturn's Redis user database,
   * which holds MD5 keys, not passwords: src/relay/redis-credentials.ts). Undefined: not a user there.
   */
  readonly keySource?: (username: string, algorithm: PasswordAlgorithmName) => Buffer | undefined
}

/** Default for CredentialStoreOptions.restMaxTtlS: 24 hours. */
export const DEFAULT_REST_MAX_TTL_S = 86_400
/** Seconds of clock difference between a credential service and the relay tolerated on top of restMaxTtlS. */
export const REST_CLOCK_SKEW_S = 300

/** The password a TURN REST API user has: base64(HMAC-SHA1(secret, username)), as coturn computes it. */
export function restApiPassword (secret: string, username: string): string {
  return createHmac('sha1', secret).update(username).digest('base64')
}

/** A TURN REST API username that expires `ttlSeconds` after `now` (ms): `EXPIRY:user` (or `EXPIRY`). */
export function restApiUsername (ttlSeconds: number, now: number, user?: string, separator = ':'): string {
  const expiry = Math.floor(now / 1000) + ttlSeconds
  return user === undefined || user === '' ? String(expiry) : `${expiry}${separator}${user}`
}

/** Why a credential lookup failed. */
export type CredentialFailure = 'unknown-user' | 'expired' | 'expiry-too-far'

/** A resolved credential: the long-term key for the requested algorithm. */
export type CredentialLookup = { ok: true, key: Buffer } | { ok: false, reason: CredentialFailure }

const MAX_KEY_CACHE = 10_000

/** Looks up long-term keys (MD5 or SHA-256) by username, with a bounded cache of derived keys. */
export class CredentialStore {
  readonly realm: string
  private readonly users: ReadonlyMap<string, string>
  private readonly secrets: readonly string[]
  private readonly separator: string
  private readonly maxAheadMs: number
  private readonly byUserhash = new Map<string, string>()
  private readonly cache = new Map<string, Buffer>()
  private readonly keySource: CredentialStoreOptions['keySource']

  constructor (options: CredentialStoreOptions) {
    this.keySource = options.keySource
    this.realm = options.realm
    const u = options.users
    this.users = u === undefined ? new Map() : u instanceof Map ? u : new Map(Object.entries(u as Record<string, string>))
    const s = options.authSecret
    this.secrets = s === undefined ? [] : typeof s === 'string' ? [s] : [...s]
    this.separator = options.restSeparator ?? ':'
    this.maxAheadMs = ((options.restMaxTtlS ?? DEFAULT_REST_MAX_TTL_S) + REST_CLOCK_SKEW_S) * 1000
    for (const name of this.users.keys()) this.byUserhash.set(userhash(name, this.realm).toString('hex'), name)
  }

  /** Whether any credential source is configured. */
  get configured (): boolean { return this.users.size > 0 || this.secrets.length > 0 || this.keySource !== undefined }

  /** The username behind a USERHASH (RFC 8489 §14.4), for static users only. */
  usernameForHash (hash: Uint8Array): string | undefined {
    return this.byUserhash.get(Buffer.from(hash).toString('hex'))
  }

  /** The candidate keys for `username` (one per REST secret, or the static user's), or why there is none. */
  lookup (username: string, algorithm: PasswordAlgorithmName, now: number): { ok: true, keys: Buffer[] } | { ok: false, reason: CredentialFailure } {
    const password = this.users.get(username)
    if (password !== undefined) return { ok: true, keys: [this.key(username, password, algorithm)] }
    const sourced = this.keySource?.(username, algorithm)
    if (sourced !== undefined) return { ok: true, keys: [sourced] }
    if (this.secrets.length === 0) return { ok: false, reason: 'unknown-user' }
    const sep = username.indexOf(this.separator)
    const stamp = sep >= 0 ? username.slice(0, sep) : username
    if (!/^\d{1,12}$/.test(stamp)) return { ok: false, reason: 'unknown-user' }
    const expiry = Number(stamp) * 1000
    if (expiry <= now) return { ok: false, reason: 'expired' }
    if (expiry > now + this.maxAheadMs) return { ok: false, reason: 'expiry-too-far' }
    return { ok: true, keys: this.secrets.map(secret => this.key(username, restApiPassword(secret, username), algorithm)) }
  }

  private key (username: string, password: string, algorithm: PasswordAlgorithmName): Buffer {
    const id = `${algorithm}\u0000${username}\u0000${password}`
    let key = this.cache.get(id)
    if (key === undefined) {
      try {
        key = longTermKey(username, this.realm, password, algorithm)
      } catch {
        // A username with prohibited characters can never match: a key nobody can produce.
        key = Buffer.alloc(algorithm === 'md5' ? 16 : 32)
      }
      if (this.cache.size >= MAX_KEY_CACHE) this.cache.clear()
      this.cache.set(id, key)
    }
    return key
  }
}
