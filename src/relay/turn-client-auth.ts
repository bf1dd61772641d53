import { createHmac } from 'node:crypto'
import { InvalidArgumentError } from '../errors.js'
import {
  ErrorCode, MessageBuilder, MessageClass, Nonce, PasswordAlgorithm, PasswordAlgorithmId, PasswordAlgorithms, Realm,
  Username, decodeNonceCookie, longTermKey, type PasswordAlgorithmValue, type StunMessage
} from '../stun/index.js'

/** Long-term credentials for a TURN client: a user and password, or a TURN REST API shared secret. */
export type TurnCredentials =
  | { readonly username: string, readonly password: string }
  | { readonly authSecret: string, readonly user?: string, readonly ttlS?: number }

/**
 * TURN REST API credentials (coturn `--use-auth-secret`): username `EXPIRY:USER` (or `EXPIRY`), password
 * base64(HMAC-SHA1(secret, username)).
 */
export function restCredentials (secret: string, user = '', ttlS = 86_400, now = Date.now()): { username: string, password: string } {
  const expiry = Math.floor(now / 1000) + ttlS
  const username = user === '' ? String(expiry) : `${expiry}:${user}`
  return { username, password: createHmac('sha1', secret).update(username).digest('base64') }
}

/**
 * The client side of the long-term credential mechanism (RFC 8489 §9.2): remembers REALM and NONCE from a 401/438,
 * chooses MD5 or — when the server offers it in PASSWORD-ALGORITHMS and announces it in its nonce cookie — SHA-256,
 * and signs each request.
 */
export class ClientAuth {
  realm: string | undefined
  nonce: string | undefined
  private algorithm: PasswordAlgorithmValue | undefined
  private offered: PasswordAlgorithmValue[] | undefined
  private key: Buffer | undefined
  readonly username: string
  private readonly password: string

  constructor (credentials: TurnCredentials) {
    if ('authSecret' in credentials) {
      const c = restCredentials(credentials.authSecret, credentials.user, credentials.ttlS)
      this.username = c.username; this.password = c.password
    } else {
      if (credentials.username === '') throw new InvalidArgumentError('a TURN username is required: give --user NAME:PASS or --auth-secret')
      this.username = credentials.username; this.password = credentials.password
    }
  }

  /** Whether a challenge has been received (requests can be signed). */
  get ready (): boolean { return this.nonce !== undefined && this.realm !== undefined }

  /**
   * Learn from an error response. Returns true when the request should be retried with credentials: a 401 carrying
   * REALM and NONCE (the first challenge, RFC 8489 §9.2.5), or a 438 with a fresh NONCE.
   */
  learn (response: StunMessage): boolean {
    const error = response.get(ErrorCode)
    if (error === undefined || (error.code !== 401 && error.code !== 438)) return false
    const nonce = response.get(Nonce)
    const realm = response.get(Realm)
    if (nonce === undefined) return false
    const changedRealm = realm !== undefined && realm !== this.realm
    if (realm !== undefined) this.realm = realm
    this.nonce = nonce
    const offered = response.get(PasswordAlgorithms)
    if (offered !== undefined) this.offered = offered
    const cookie = decodeNonceCookie(nonce)
    const sha256 = this.offered?.find(a => a.algorithm === PasswordAlgorithmId.SHA256)
    const nextAlgorithm = cookie?.passwordAlgorithms === true && sha256 !== undefined ? sha256 : undefined
    if (changedRealm || nextAlgorithm?.algorithm !== this.algorithm?.algorithm || this.key === undefined) {
      this.algorithm = nextAlgorithm
      this.key = this.realm === undefined ? undefined : longTermKey(this.username, this.realm, this.password, nextAlgorithm !== undefined ? 'sha256' : 'md5')
    }
    return this.realm !== undefined
  }

  /** Add USERNAME, REALM, NONCE (and the algorithm choice) then integrity to a request. */
  sign (b: MessageBuilder): MessageBuilder {
    if (!this.ready || this.key === undefined) return b
    b.add(Username, this.username).add(Realm, this.realm as string).add(Nonce, this.nonce as string)
    if (this.algorithm !== undefined && this.offered !== undefined) {
      // RFC 8489 §9.2.4: echo the server's list and name the chosen algorithm, then MESSAGE-INTEGRITY-SHA256.
      b.add(PasswordAlgorithms, this.offered).add(PasswordAlgorithm, this.algorithm)
      return b.integritySha256(this.key)
    }
    return b.integrity(this.key)
  }

  /**
   * Whether a response to a request this client signed is authentic (RFC 8489 §9.2.5). Before a challenge nothing
   * was signed, so nothing can be checked (true). After it, a 401 or 438 challenge may come without integrity (the
   * server could not check ours); every other response — success or error — must carry MESSAGE-INTEGRITY(-SHA256)
   * of a valid length that verifies with our key. A response without it is not verified: an attacker who can only
   * inject packets could otherwise answer an Allocate or Refresh for the server.
   */
  verify (response: StunMessage): boolean {
    if (this.key === undefined) return true
    if (response.cls === MessageClass.ErrorResponse && !response.hasIntegrity()) {
      const code = safeErrorCode(response)
      if (code === 401 || code === 438) return true
    }
    return response.verifyIntegrity(this.key)
  }
}

function safeErrorCode (response: StunMessage): number | undefined {
  try { return response.get(ErrorCode)?.code } catch { return undefined }
}
