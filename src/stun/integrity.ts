import { createHash, type Hash } from 'node:crypto'
import { crc32 } from 'node:zlib'
import { FINGERPRINT_XOR, HEADER_LENGTH } from './constants.js'
import { Sha1HmacKey } from './sha1-hmac.js'

/**
 * MESSAGE-INTEGRITY (HMAC-SHA1, RFC 8489 §14.5), MESSAGE-INTEGRITY-SHA256 (§14.6) and FINGERPRINT (§14.7), computed
 * over the bytes as they are on the wire, with the header length adjusted as the RFC describes — never over a
 * re-encoding.
 */

/** HMAC hash of an integrity attribute. */
export type IntegrityHash = 'sha1' | 'sha256'

const BLOCK = 64

/**
 * An HMAC key with its inner and outer pad hashes precomputed (RFC 2104), so each message costs two hash
 * continuations instead of a full HMAC setup. Results are identical to `crypto.createHmac`.
 */
export class HmacKey {
  private readonly inner: Hash
  private readonly outer: Hash
  constructor (readonly key: Uint8Array, readonly hash: IntegrityHash) {
    let k = Buffer.from(key)
    if (k.length > BLOCK) k = createHash(hash).update(k).digest()
    const ipad = Buffer.alloc(BLOCK, 0x36)
    const opad = Buffer.alloc(BLOCK, 0x5c)
    for (let i = 0; i < k.length; i++) { ipad[i] ^= k[i]; opad[i] ^= k[i] }
    this.inner = createHash(hash).update(ipad)
    this.outer = createHash(hash).update(opad)
  }

  /** HMAC over the concatenation of `parts`. */
  digest (...parts: Uint8Array[]): Buffer {
    const h = this.inner.copy()
    for (const p of parts) h.update(p)
    return this.outer.copy().update(h.digest()).digest()
  }
}

/** Something that computes a keyed HMAC over a list of byte ranges. */
export interface KeyedHmac {
  digest (...parts: Uint8Array[]): Buffer
}

const keyCache = new WeakMap<Uint8Array, { sha1?: KeyedHmac, sha256?: KeyedHmac }>()

/**
 * The precomputed HMAC for a key buffer, cached per buffer object: the pure-TypeScript SHA-1 (see sha1-hmac.ts for
 * why) for MESSAGE-INTEGRITY, node:crypto for SHA-256.
 */
export function hmacKey (key: Uint8Array, hash: IntegrityHash): KeyedHmac {
  let entry = keyCache.get(key)
  if (entry === undefined) { entry = {}; keyCache.set(key, entry) }
  return (entry[hash] ??= hash === 'sha1' ? new Sha1HmacKey(key) : new HmacKey(key, hash))
}

/** Scratch for the first four header bytes with the adjusted length (the codec is synchronous). */
const head = Buffer.alloc(4)

/**
 * The HMAC for an integrity attribute whose header starts at `attrOffset` in `message`, with a value of
 * `valueLength` bytes: the header's length field is set as if the message ended after that attribute.
 */
export function computeIntegrity (message: Uint8Array, attrOffset: number, valueLength: number, key: Uint8Array, hash: IntegrityHash): Buffer {
  head[0] = message[0]; head[1] = message[1]
  head.writeUInt16BE(attrOffset - HEADER_LENGTH + 4 + valueLength, 2)
  const mac = hmacKey(key, hash).digest(head, message.subarray(4, attrOffset))
  return hash === 'sha1' ? mac : mac.subarray(0, valueLength)
}

/** FINGERPRINT value for a message whose FINGERPRINT attribute header starts at `attrOffset`. */
export function computeFingerprint (message: Uint8Array, attrOffset: number): number {
  head[0] = message[0]; head[1] = message[1]
  head.writeUInt16BE(attrOffset - HEADER_LENGTH + 8, 2)
  return (crc32(message.subarray(4, attrOffset), crc32(head)) ^ FINGERPRINT_XOR) >>> 0
}
