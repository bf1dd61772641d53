import { InvalidArgumentError } from '../errors.js'
import { AttrType } from './attr-type.js'
import type { AttributeCodec, CodecContext } from './attributes/codec.js'
import { HEADER_LENGTH, MAGIC_COOKIE, TRANSACTION_ID_LENGTH, encodeMessageType, type MessageClass } from './constants.js'
import { computeFingerprint, computeIntegrity } from './integrity.js'
import { newTransactionId } from './transaction-id.js'

type Part =
  | { kind: 'attr', type: number, value: Uint8Array }
  | { kind: 'integrity', hash: 'sha1' | 'sha256', key: Uint8Array, length: number }

/**
 * Builds one STUN message (RFC 8489 §5, §14). Attributes are written in the order added; `integrity()`,
 * `integritySha256()` and `fingerprint()` are computed at `build()` over the bytes written before them.
 *
 * ```ts
 * const bytes = new MessageBuilder(Method.Binding, MessageClass.Request)
 *   .add(ChangeRequest, { ip: true, port: false }).fingerprint().build()
 * ```
 */
export class MessageBuilder implements CodecContext {
  private readonly parts: Part[] = []
  private size = HEADER_LENGTH
  private withFingerprint = false
  /** The 16 bytes after the message length: the cookie and id, or a classic RFC 3489 16-byte id. */
  private readonly idBytes: Uint8Array | undefined

  readonly transactionId: Uint8Array

  /**
   * @param transactionId 12 bytes (default: fresh random), or 16 bytes to write a classic RFC 3489 message
   *   whose id takes the magic cookie's place (for answering RFC 3489 clients).
   */
  constructor (readonly method: number, readonly cls: MessageClass, transactionId?: Uint8Array) {
    if (transactionId === undefined) {
      this.transactionId = newTransactionId()
    } else if (transactionId.length === TRANSACTION_ID_LENGTH) {
      this.transactionId = transactionId
    } else if (transactionId.length === 16) {
      this.idBytes = transactionId
      this.transactionId = transactionId.subarray(4)
    } else {
      throw new InvalidArgumentError(`a transaction id is 12 bytes (or 16 for RFC 3489), not ${transactionId.length}`)
    }
    if (method < 0 || method > 0xfff) throw new InvalidArgumentError(`method 0x${method.toString(16)} does not fit 12 bits`)
  }

  /** Add an attribute through its typed codec. */
  add<T> (codec: AttributeCodec<T>, value: T): this {
    return this.addRaw(codec.type, codec.encode(value, this))
  }

  /** Add an attribute's raw value bytes (padding is added). */
  addRaw (type: number, value: Uint8Array): this {
    if (this.withFingerprint) throw new InvalidArgumentError('FINGERPRINT must be the last attribute: add it last')
    if (value.length > 0xffff) throw new InvalidArgumentError(`attribute 0x${type.toString(16)} value of ${value.length} bytes exceeds 65535`)
    this.parts.push({ kind: 'attr', type, value })
    this.size += 4 + ((value.length + 3) & ~3)
    return this
  }

  /** Add MESSAGE-INTEGRITY (HMAC-SHA1) with this key (RFC 8489 §14.5). */
  integrity (key: Uint8Array): this {
    return this.addIntegrity('sha1', key, 20)
  }

  /** Add MESSAGE-INTEGRITY-SHA256 (HMAC-SHA256, 32 bytes) with this key (RFC 8489 §14.6). */
  integritySha256 (key: Uint8Array): this {
    return this.addIntegrity('sha256', key, 32)
  }

  private addIntegrity (hash: 'sha1' | 'sha256', key: Uint8Array, length: number): this {
    if (this.withFingerprint) throw new InvalidArgumentError('FINGERPRINT must be the last attribute: add integrity before it')
    this.parts.push({ kind: 'integrity', hash, key, length })
    this.size += 4 + length
    return this
  }

  /** Add FINGERPRINT (RFC 8489 §14.7); nothing may be added after it. */
  fingerprint (): this {
    if (!this.withFingerprint) { this.withFingerprint = true; this.size += 8 }
    return this
  }

  /** Encode the message. The builder can be built again (it is not consumed). */
  build (): Buffer {
    const size = this.size
    if (size - HEADER_LENGTH > 0xffff) throw new InvalidArgumentError(`message of ${size} bytes is too long for STUN`)
    const out = Buffer.allocUnsafe(size)
    out.writeUInt16BE(encodeMessageType(this.method, this.cls), 0)
    out.writeUInt16BE(size - HEADER_LENGTH, 2)
    if (this.idBytes !== undefined) out.set(this.idBytes, 4)
    else { out.writeUInt32BE(MAGIC_COOKIE, 4); out.set(this.transactionId, 8) }
    let o = HEADER_LENGTH
    for (const part of this.parts) {
      if (part.kind === 'attr') {
        const len = part.value.length
        out.writeUInt16BE(part.type, o); out.writeUInt16BE(len, o + 2)
        out.set(part.value, o + 4)
        o += 4 + len
        while ((len & 3) !== 0 && (o & 3) !== 0) out[o++] = 0
      } else {
        out.writeUInt16BE(part.hash === 'sha1' ? AttrType.MessageIntegrity : AttrType.MessageIntegritySha256, o)
        out.writeUInt16BE(part.length, o + 2)
        out.set(computeIntegrity(out, o, part.length, part.key, part.hash), o + 4)
        o += 4 + part.length
      }
    }
    if (this.withFingerprint) {
      out.writeUInt16BE(AttrType.Fingerprint, o); out.writeUInt16BE(4, o + 2)
      out.writeUInt32BE(computeFingerprint(out, o), o + 4)
    }
    return out
  }
}
