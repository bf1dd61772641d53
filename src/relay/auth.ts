import { AttrType, integrityLengthValid, PasswordAlgorithm, PasswordAlgorithmId, PasswordAlgorithms, Nonce, Realm, Username, Userhash, type PasswordAlgorithmName, type PasswordAlgorithmValue, type StunMessage } from '../stun/index.js'
import { StunDecodeError } from '../errors.js'
import type { Endpoint } from '../net/endpoint.js'
import { CredentialStore, type CredentialStoreOptions } from './credentials.js'
import { NonceIssuer } from './nonce.js'
import { errorResponse, type ResponseSecurity } from './responses.js'
import { KeyedTokenBuckets } from '../util/token-bucket.js'

/**
 * Long-term credential checking for TURN requests: RFC 8489 §9.2.4 ("Receiving a Request") as RFC 8656 §5
 * requires, with MD5 and SHA-256 keys (PASSWORD-ALGORITHMS, §9.2.4 step on password algorithms), USERHASH,
 * the TURN REST API shared secret, stateless nonces, and a per-source-IP limit on failed attempts.
 *
 * Rate limit: a failed attempt (unknown user, expired REST username, bad MESSAGE-INTEGRITY, a malformed
 * authenticated request) takes a token from the source IP's bucket (default 1/s, burst 20) only when that source has
 * proven it owns its address, by echoing a NONCE this server issued to that IP (the nonce's MAC binds it to the IP;
 * stale counts, it still proves the 401 reached the sender). An off-path attacker who spoofs a victim's source IP
 * cannot see the victim's nonces, so spoofed failures cost the victim nothing. While a bucket is empty, requests that
 * carry MESSAGE-INTEGRITY from that IP are dropped without an answer (no 401, so a guesser learns nothing and gets no
 * amplification); the first 401 challenge of a request without credentials is still sent.
 *
 * Integrity checks (RFC 8489 §14.5, §14.6): MESSAGE-INTEGRITY must be exactly 20 bytes and MESSAGE-INTEGRITY-SHA256
 * 16-32 bytes in multiples of 4, or the request gets a 400 and is never "verified". A request that names no
 * PASSWORD-ALGORITHM is checked with an MD5 key only when MD5 is offered (no downgrade from a SHA-256-only server).
 */

/** A request that passed authentication. */
export interface AuthContext {
  readonly username: string
  readonly security: ResponseSecurity
}

/** The outcome of authenticate(): a context, an error response to send, or a silent drop. */
export type AuthOutcome =
  | { ok: true, context: AuthContext }
  | { ok: false, response: Buffer, failure?: string }
  | { ok: false, response: undefined, failure: 'rate-limited' }

/** Options for RequestAuthenticator. */
export interface RequestAuthenticatorOptions extends CredentialStoreOptions {
  readonly passwordAlgorithms: readonly PasswordAlgorithmName[]
  readonly nonceSecret?: Uint8Array
  readonly nonceLifetime: number
  readonly failureRate: number
  readonly failureBurst: number
  readonly software?: string
}

const ALGORITHM_IDS: Record<PasswordAlgorithmName, number> = { md5: PasswordAlgorithmId.MD5, sha256: PasswordAlgorithmId.SHA256 }
const MAX_RATE_KEYS = 100_000

/** Checks long-term credentials; builds the 400/401/438 answers (RFC 8489 §9.2.4). */
export class RequestAuthenticator {
  readonly credentials: CredentialStore
  private readonly nonces: NonceIssuer
  private readonly offered: PasswordAlgorithmValue[]
  private readonly offeredBytes: Buffer
  readonly failures: KeyedTokenBuckets

  constructor (private readonly options: RequestAuthenticatorOptions, failures?: KeyedTokenBuckets) {
    this.credentials = new CredentialStore(options)
    this.nonces = new NonceIssuer({ secret: options.nonceSecret, lifetime: options.nonceLifetime, passwordAlgorithms: true })
    this.offered = options.passwordAlgorithms.map(a => ({ algorithm: ALGORITHM_IDS[a], parameters: new Uint8Array(0) }))
    this.offeredBytes = Buffer.from(PasswordAlgorithms.encode(this.offered, { transactionId: new Uint8Array(12) }))
    this.failures = failures ?? new KeyedTokenBuckets(options.failureRate, options.failureBurst, MAX_RATE_KEYS)
  }

  /** A fresh nonce for a client (exposed for tests). */
  issueNonce (client: Endpoint, now: number): string {
    return this.nonces.issue(client.address, now)
  }

  /** 401 or 438 with REALM, a fresh NONCE and PASSWORD-ALGORITHMS (RFC 8489 §9.2.4). */
  private challenge (req: StunMessage, code: 401 | 438, from: Endpoint, now: number): Buffer {
    return errorResponse(req, code, (b) => {
      b.add(Realm, this.credentials.realm)
      b.add(Nonce, this.nonces.issue(from.address, now))
      b.add(PasswordAlgorithms, this.offered)
    }, undefined, this.options.software)
  }

  /** A failure; `proven` says whether the source echoed a nonce issued to its IP (only then is its bucket charged). */
  private fail (req: StunMessage, code: 400 | 401, from: Endpoint, now: number, failure: string, proven: boolean): AuthOutcome {
    if (proven) this.failures.take(from.address, 1, now)
    const response = code === 401 ? this.challenge(req, 401, from, now) : errorResponse(req, 400, undefined, undefined, this.options.software)
    return { ok: false, response, failure }
  }

  /** Authenticate a request (RFC 8489 §9.2.4). Never throws. */
  authenticate (req: StunMessage, from: Endpoint, now: number): AuthOutcome {
    // "If the message does not contain a MESSAGE-INTEGRITY or MESSAGE-INTEGRITY-SHA256 attribute, the server MUST
    //  generate an error response with an error code of 401 (Unauthenticated)" with REALM, NONCE, PASSWORD-ALGORITHMS.
    if (!req.hasIntegrity()) return { ok: false, response: this.challenge(req, 401, from, now) }
    if (!this.failures.peek(from.address, 1, now)) return { ok: false, response: undefined, failure: 'rate-limited' }
    try {
      return this.check(req, from, now)
    } catch (err) {
      if (err instanceof StunDecodeError) return this.fail(req, 400, from, now, 'malformed', this.proven(req, from, now))
      throw err
    }
  }

  /** Whether the request echoes a nonce this server issued to the source IP (used for malformed requests). */
  private proven (req: StunMessage, from: Endpoint, now: number): boolean {
    const raw = req.getRaw(AttrType.Nonce)
    return raw !== undefined && this.nonces.check(raw.value.toString('utf8'), from.address, now) !== 'invalid'
  }

  private check (req: StunMessage, from: Endpoint, now: number): AuthOutcome {
    // "If the message contains a MESSAGE-INTEGRITY or a MESSAGE-INTEGRITY-SHA256 attribute, but is missing either
    //  the USERNAME or USERHASH, REALM, or NONCE attribute, the server MUST generate an error response with an error
    //  code of 400 (Bad Request)."
    const username = req.get(Username)
    const hash = username === undefined ? req.get(Userhash) : undefined
    const realm = req.get(Realm)
    const nonce = req.get(Nonce)
    if ((username === undefined && hash === undefined) || realm === undefined || nonce === undefined) {
      return this.fail(req, 400, from, now, 'missing-attributes', false)
    }
    const nonceCheck = this.nonces.check(nonce, from.address, now)
    const proven = nonceCheck !== 'invalid'
    // RFC 8489 §14.5/§14.6: an integrity attribute of a length the RFC does not allow is malformed, never verified.
    const mac = req.integrityAttribute()
    if (mac === undefined || !integrityLengthValid(mac.type, mac.value.length)) return this.fail(req, 400, from, now, 'malformed-integrity', proven)
    // "If the NONCE attribute starts with the "nonce cookie" with the STUN Security Feature "Password algorithms" bit
    //  set to 1, the server performs these checks in the order specified: [...] If the request contains neither the
    //  PASSWORD-ALGORITHMS nor the PASSWORD-ALGORITHM algorithm, then the request is processed as though
    //  PASSWORD-ALGORITHM were MD5. Otherwise, unless (1) PASSWORD-ALGORITHM and PASSWORD-ALGORITHMS are both present,
    //  (2) PASSWORD-ALGORITHMS matches the value sent in the response that sent this NONCE, and (3)
    //  PASSWORD-ALGORITHM matches one of the entries in PASSWORD-ALGORITHMS, the server MUST generate an error
    //  response with an error code of 400 (Bad Request)."
    const algorithms = req.getRaw(AttrType.PasswordAlgorithms)
    const chosen = req.get(PasswordAlgorithm)
    let algorithm: PasswordAlgorithmName
    if (algorithms === undefined && chosen === undefined) {
      // No downgrade: a server that offers only SHA-256 never checks a request with an MD5 key.
      if (!this.options.passwordAlgorithms.includes('md5')) return this.fail(req, 400, from, now, 'password-algorithms', proven)
      algorithm = 'md5'
    } else {
      if (algorithms === undefined || chosen === undefined || !algorithms.value.equals(this.offeredBytes)) {
        return this.fail(req, 400, from, now, 'password-algorithms', proven)
      }
      const name = (Object.keys(ALGORITHM_IDS) as PasswordAlgorithmName[]).find(n => ALGORITHM_IDS[n] === chosen.algorithm)
      if (name === undefined || !this.options.passwordAlgorithms.includes(name)) return this.fail(req, 400, from, now, 'password-algorithms', proven)
      algorithm = name
    }
    // "If the value of the USERNAME or USERHASH attribute is not valid, the server MUST generate an error response
    //  with an error code of 401 (Unauthenticated)."
    const name = username ?? this.credentials.usernameForHash(hash as Uint8Array)
    if (name === undefined || realm !== this.credentials.realm) return this.fail(req, 401, from, now, 'unknown-user', proven)
    const lookup = this.credentials.lookup(name, algorithm, now)
    if (!lookup.ok) return this.fail(req, 401, from, now, lookup.reason, proven)
    // "Using the password associated with the username in the REALM, compute the value for the message integrity
    //  [...]. If the resulting value does not match the contents of the corresponding message integrity attribute,
    //  the server MUST reject the request with an error response. This response MUST use an error code of 401."
    const key = lookup.keys.find(k => req.verifyIntegrity(k))
    if (key === undefined) return this.fail(req, 401, from, now, 'bad-integrity', proven)
    // "If the NONCE is no longer valid, the server MUST generate an error response with an error code of 438 (Stale
    //  Nonce)." (A nonce not issued by us, or to another client IP, is treated the same way: the client retries.)
    if (nonceCheck !== 'valid') return { ok: false, response: this.challenge(req, 438, from, now) }
    const integrity = mac.type === AttrType.MessageIntegritySha256 ? 'sha256' : 'sha1'
    return { ok: true, context: { username: name, security: { key, integrity } } }
  }
}
