import { timingSafeEqual } from 'node:crypto'
import { StunDecodeError } from '../errors.js'
import { AttrType, attrName, isComprehensionRequired, isKnownAttr } from './attr-type.js'
import type { AttributeCodec, CodecContext } from './attributes/codec.js'
import { HEADER_LENGTH, MAGIC_COOKIE, decodeMessageType, describeType, type MessageClass } from './constants.js'
import { computeFingerprint, computeIntegrity } from './integrity.js'

/** One attribute as received: its type, where its header starts in the message, and a view of its value. */
export interface RawAttribute {
  readonly type: number
  /** Offset of the attribute's 4-byte header within the message. */
  readonly offset: number
  /** The value bytes (a view into the message; no padding). */
  readonly value: Buffer
}

/** Options for StunMessage.decode. */
export interface DecodeOptions {
  /** Copy the input first so the message owns its bytes (default true). Pass false when the caller will not reuse the buffer. */
  readonly copy?: boolean
}

/**
 * A decoded STUN message (RFC 8489 §5): header fields plus the attributes as raw views, decoded on demand by typed
 * codecs. Classic RFC 3489 messages (no magic cookie) decode too, with `classic` set.
 */
export class StunMessage implements CodecContext {
  private constructor (
    /** The whole message as received (owned copy unless decode was told otherwise). */
    readonly raw: Buffer,
    readonly method: number,
    readonly cls: MessageClass,
    /** The 12-byte transaction id (for a classic message, its last 12 bytes). */
    readonly transactionId: Buffer,
    /** True for an RFC 3489 message without the magic cookie (its 16-byte id is bytes 4..20). */
    readonly classic: boolean,
    /** Attributes in order; those after MESSAGE-INTEGRITY other than MESSAGE-INTEGRITY-SHA256 and FINGERPRINT are dropped (RFC 8489 §14.5). */
    readonly attributes: readonly RawAttribute[]
  ) {}

  /**
   * Decode one STUN message. The input must be exactly one message (a UDP datagram, or a frame cut from a stream by
   * its length field). Throws StunDecodeError, and nothing else, on malformed input.
   */
  static decode (input: Uint8Array, options?: DecodeOptions): StunMessage {
    if (input.length < HEADER_LENGTH) throw new StunDecodeError('header', `${input.length} bytes is shorter than the 20-byte header`)
    if ((input[0] & 0xc0) !== 0) throw new StunDecodeError('header', 'the first two bits are not zero')
    const length = (input[2] << 8) | input[3]
    if ((length & 3) !== 0) throw new StunDecodeError('header', `message length ${length} is not a multiple of 4`)
    if (length !== input.length - HEADER_LENGTH) {
      throw new StunDecodeError('header', `message length ${length} does not match the ${input.length - HEADER_LENGTH} bytes after the header`)
    }
    const raw = options?.copy === false ? toBuffer(input) : Buffer.from(input)
    const classic = raw.readUInt32BE(4) !== MAGIC_COOKIE
    const { method, cls } = decodeMessageType((raw[0] << 8) | raw[1])
    const attributes: RawAttribute[] = []
    let offset = HEADER_LENGTH
    let sawIntegrity = false
    let sawFingerprint = false
    while (offset < raw.length) {
      if (offset + 4 > raw.length) throw new StunDecodeError('attribute header', `truncated at offset ${offset}`)
      const type = (raw[offset] << 8) | raw[offset + 1]
      const len = (raw[offset + 2] << 8) | raw[offset + 3]
      const end = offset + 4 + len
      if (end > raw.length) throw new StunDecodeError(`attribute ${attrName(type)}`, `length ${len} overruns the message`)
      if (sawFingerprint) throw new StunDecodeError(`attribute ${attrName(type)}`, 'follows FINGERPRINT, which must be last')
      if (type === AttrType.Fingerprint) sawFingerprint = true
      if (!sawIntegrity || type === AttrType.MessageIntegritySha256 || type === AttrType.Fingerprint) {
        attributes.push({ type, offset, value: raw.subarray(offset + 4, end) })
      }
      if (type === AttrType.MessageIntegrity || type === AttrType.MessageIntegritySha256) sawIntegrity = true
      offset = end + ((4 - (len & 3)) & 3)
    }
    if (offset !== raw.length) throw new StunDecodeError('attribute padding', 'the last attribute\'s padding overruns the message')
    return new StunMessage(raw, method, cls, raw.subarray(8, 20), classic, attributes)
  }

  /** The first attribute of a type, raw. */
  getRaw (type: number): RawAttribute | undefined {
    const attrs = this.attributes
    for (let i = 0; i < attrs.length; i++) if (attrs[i].type === type) return attrs[i]
    return undefined
  }

  /** Whether an attribute of this type is present. */
  has (type: number): boolean {
    return this.getRaw(type) !== undefined
  }

  /** The first attribute decoded by its codec, or undefined. Throws StunDecodeError if present but malformed. */
  get<T> (codec: AttributeCodec<T>): T | undefined {
    const attr = this.getRaw(codec.type)
    return attr === undefined ? undefined : codec.decode(attr.value, this)
  }

  /** Every attribute of the codec's type, decoded (e.g. several XOR-PEER-ADDRESS in a CreatePermission). */
  getAll<T> (codec: AttributeCodec<T>): T[] {
    return this.attributes.filter(a => a.type === codec.type).map(a => codec.decode(a.value, this))
  }

  /** Like get(), but a missing attribute is a StunDecodeError too. */
  require<T> (codec: AttributeCodec<T>): T {
    const value = this.get(codec)
    if (value === undefined) throw new StunDecodeError(`attribute ${codec.name}`, `missing from ${describeType(this.method, this.cls)}`)
    return value
  }

  /** Comprehension-required attribute types this codec does not know, for a 420 response (RFC 8489 §6.3.1). */
  unknownComprehensionRequired (): number[] {
    const unknown: number[] = []
    for (const a of this.attributes) {
      if (isComprehensionRequired(a.type) && !isKnownAttr(a.type) && !unknown.includes(a.type)) unknown.push(a.type)
    }
    return unknown
  }

  /** 16 bytes that identify the transaction across both RFC 5389 and classic RFC 3489 messages. */
  get transactionKey (): string {
    return this.raw.toString('latin1', 4, 20)
  }

  /** `Binding request` etc. */
  describe (): string {
    return describeType(this.method, this.cls)
  }

  /**
   * Verify the message's integrity with `key` (RFC 8489 §9.1.3 / §9.2.4): MESSAGE-INTEGRITY-SHA256 when present,
   * else MESSAGE-INTEGRITY. False when neither is present, when the attribute's length is not one RFC 8489 allows
   * (see {@link integrityLengthValid}: a short value must never compare equal to a cut MAC), or when the HMAC does
   * not match (constant-time comparison).
   */
  verifyIntegrity (key: Uint8Array): boolean {
    const attr = this.integrityAttribute()
    if (attr === undefined || !integrityLengthValid(attr.type, attr.value.length)) return false
    const hash = attr.type === AttrType.MessageIntegritySha256 ? 'sha256' : 'sha1'
    const expected = computeIntegrity(this.raw, attr.offset, attr.value.length, key, hash)
    return expected.length === attr.value.length && timingSafeEqual(expected, attr.value)
  }

  /**
   * The integrity attribute verification uses: MESSAGE-INTEGRITY-SHA256 when present, else MESSAGE-INTEGRITY
   * (RFC 8489 §14.6: a receiver that understands both uses MESSAGE-INTEGRITY-SHA256).
   */
  integrityAttribute (): RawAttribute | undefined {
    return this.getRaw(AttrType.MessageIntegritySha256) ?? this.getRaw(AttrType.MessageIntegrity)
  }

  /** Whether the message carries an integrity attribute at all. */
  hasIntegrity (): boolean {
    return this.has(AttrType.MessageIntegrity) || this.has(AttrType.MessageIntegritySha256)
  }

  /** True when FINGERPRINT is present and correct; false when absent or wrong (RFC 8489 §14.7). */
  verifyFingerprint (): boolean {
    const attr = this.getRaw(AttrType.Fingerprint)
    if (attr === undefined || attr.value.length !== 4) return false
    return computeFingerprint(this.raw, attr.offset) === attr.value.readUInt32BE(0)
  }
}

/**
 * Whether an integrity attribute's value length is one RFC 8489 allows: MESSAGE-INTEGRITY is exactly 20 bytes
 * (§14.5, HMAC-SHA1); MESSAGE-INTEGRITY-SHA256 is 16 to 32 bytes in multiples of 4 (§14.6: "the value will be at
 * most 32 bytes, but it MUST be at least 16 bytes and MUST be a multiple of 4 bytes"). natkit sends 32.
 */
export function integrityLengthValid (type: number, length: number): boolean {
  if (type === AttrType.MessageIntegrity) return length === 20
  if (type === AttrType.MessageIntegritySha256) return length >= 16 && length <= 32 && (length & 3) === 0
  return false
}

function toBuffer (bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
}
