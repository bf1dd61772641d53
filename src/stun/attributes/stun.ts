import { InvalidArgumentError } from '../../errors.js'
import { AttrType } from '../attr-type.js'
import { bytesCodec, textCodec, uint32Codec } from './basic.js'
import { check, view, type AttributeCodec } from './codec.js'

/** USERNAME (at most 513 bytes). RFC 8489 §14.3. */
export const Username = textCodec(AttrType.Username, 'USERNAME', 513)
/** USERHASH: SHA-256 of username ":" realm (32 bytes). RFC 8489 §14.4. */
export const Userhash = bytesCodec(AttrType.Userhash, 'USERHASH', { min: 32, max: 32 })
/** REALM (at most 763 bytes). RFC 8489 §14.9. */
export const Realm = textCodec(AttrType.Realm, 'REALM', 763)
/** NONCE (at most 763 bytes). RFC 8489 §14.10. */
export const Nonce = textCodec(AttrType.Nonce, 'NONCE', 763)
/** SOFTWARE (at most 763 bytes). RFC 8489 §14.14. */
export const Software = textCodec(AttrType.Software, 'SOFTWARE', 763)
/** ALTERNATE-DOMAIN (a host name, at most 255 bytes). RFC 8489 §14.16. */
export const AlternateDomain = textCodec(AttrType.AlternateDomain, 'ALTERNATE-DOMAIN', 255)
/** MESSAGE-INTEGRITY: HMAC-SHA1 (20 bytes). RFC 8489 §14.5. Use MessageBuilder.integrity() to add it. */
export const MessageIntegrity = bytesCodec(AttrType.MessageIntegrity, 'MESSAGE-INTEGRITY', { min: 20, max: 20 })
/** FINGERPRINT: CRC-32 XOR 0x5354554e. RFC 8489 §14.7. Use MessageBuilder.fingerprint() to add it. */
export const Fingerprint = uint32Codec(AttrType.Fingerprint, 'FINGERPRINT')

/** MESSAGE-INTEGRITY-SHA256: a 16-32 byte HMAC-SHA256 prefix, a multiple of 4. RFC 8489 §14.6. */
export const MessageIntegritySha256: AttributeCodec<Uint8Array> = {
  type: AttrType.MessageIntegritySha256,
  name: 'MESSAGE-INTEGRITY-SHA256',
  encode (value) {
    if (value.length < 16 || value.length > 32 || value.length % 4 !== 0) {
      throw new InvalidArgumentError('MESSAGE-INTEGRITY-SHA256 must be 16-32 bytes, a multiple of 4')
    }
    return value
  },
  decode (value) {
    check(value.length >= 16 && value.length <= 32 && value.length % 4 === 0, 'MESSAGE-INTEGRITY-SHA256', `${value.length} bytes`)
    return value
  }
}

/** ERROR-CODE value. */
export interface ErrorCodeValue {
  /** 300-699. */
  readonly code: number
  /** Reason phrase (UTF-8, at most 128 characters). */
  readonly reason: string
}

/** Standard reason phrases (RFC 8489 §14.8, RFC 8656 §18, RFC 6062 §6.3, RFC 8445 §16.1). */
export const ERROR_REASONS: Readonly<Record<number, string>> = {
  300: 'Try Alternate',
  400: 'Bad Request',
  401: 'Unauthenticated',
  403: 'Forbidden',
  405: 'Mobility Forbidden',
  420: 'Unknown Attribute',
  437: 'Allocation Mismatch',
  438: 'Stale Nonce',
  440: 'Address Family not Supported',
  441: 'Wrong Credentials',
  442: 'Unsupported Transport Protocol',
  443: 'Peer Address Family Mismatch',
  446: 'Connection Already Exists',
  447: 'Connection Timeout or Failure',
  486: 'Allocation Quota Reached',
  487: 'Role Conflict',
  500: 'Server Error',
  508: 'Insufficient Capacity'
}

/** Encode the class/number/reason triple shared by ERROR-CODE and ADDRESS-ERROR-CODE into bytes 2.. of `out`. */
export function writeErrorTriple (out: Buffer, code: number, reason: string, name: string): void {
  if (!Number.isInteger(code) || code < 300 || code > 699) throw new InvalidArgumentError(`${name}: code ${code} is not 300-699`)
  out[2] = Math.floor(code / 100) & 0x07
  out[3] = code % 100
  out.write(reason, 4, 'utf8')
}

/** Decode class/number/reason from bytes 2.. of an ERROR-CODE-shaped value. */
export function readErrorTriple (value: Uint8Array, name: string): ErrorCodeValue {
  check(value.length >= 4, name, `${value.length} bytes, need at least 4`)
  const cls = value[2] & 0x07
  const number = value[3]
  check(cls >= 3 && cls <= 6, name, `class ${cls} is not 3-6`)
  check(number <= 99, name, `number ${number} is not 0-99`)
  check(value.length - 4 <= 763, name, 'reason phrase longer than 763 bytes')
  return { code: cls * 100 + number, reason: view(value).toString('utf8', 4) }
}

/** ERROR-CODE. RFC 8489 §14.8. */
export const ErrorCode: AttributeCodec<ErrorCodeValue> = {
  type: AttrType.ErrorCode,
  name: 'ERROR-CODE',
  encode (value) {
    const reason = value.reason ?? ERROR_REASONS[value.code] ?? ''
    const out = Buffer.alloc(4 + Buffer.byteLength(reason))
    writeErrorTriple(out, value.code, reason, 'ERROR-CODE')
    return out
  },
  decode: (value) => readErrorTriple(value, 'ERROR-CODE')
}

/** UNKNOWN-ATTRIBUTES: the types a 420 response did not understand. RFC 8489 §14.13. */
export const UnknownAttributes: AttributeCodec<number[]> = {
  type: AttrType.UnknownAttributes,
  name: 'UNKNOWN-ATTRIBUTES',
  encode (value) {
    const out = Buffer.allocUnsafe(value.length * 2)
    value.forEach((t, i) => out.writeUInt16BE(t, i * 2))
    return out
  },
  decode (value) {
    check(value.length % 2 === 0, 'UNKNOWN-ATTRIBUTES', `odd length ${value.length}`)
    const types: number[] = []
    for (let i = 0; i < value.length; i += 2) types.push((value[i] << 8) | value[i + 1])
    return types
  }
}

/** Password algorithm numbers (RFC 8489 §18.5). */
export const PasswordAlgorithmId = { MD5: 0x0001, SHA256: 0x0002 } as const

/** One PASSWORD-ALGORITHM(S) entry: algorithm number and parameters. */
export interface PasswordAlgorithmValue {
  readonly algorithm: number
  readonly parameters: Uint8Array
}

function encodeAlgorithms (list: readonly PasswordAlgorithmValue[]): Buffer {
  const size = list.reduce((n, a) => n + 4 + Math.ceil(a.parameters.length / 4) * 4, 0)
  const out = Buffer.alloc(size)
  let o = 0
  for (const a of list) {
    out.writeUInt16BE(a.algorithm, o); out.writeUInt16BE(a.parameters.length, o + 2)
    out.set(a.parameters, o + 4)
    o += 4 + Math.ceil(a.parameters.length / 4) * 4
  }
  return out
}

function decodeAlgorithms (value: Uint8Array, name: string): PasswordAlgorithmValue[] {
  const list: PasswordAlgorithmValue[] = []
  let o = 0
  while (o < value.length) {
    check(o + 4 <= value.length, name, 'truncated algorithm entry')
    const algorithm = (value[o] << 8) | value[o + 1]
    const length = (value[o + 2] << 8) | value[o + 3]
    check(o + 4 + length <= value.length, name, `parameters of ${length} bytes overrun the value`)
    list.push({ algorithm, parameters: value.subarray(o + 4, o + 4 + length) })
    o += 4 + Math.ceil(length / 4) * 4
  }
  return list
}

/** PASSWORD-ALGORITHMS: the algorithms a server offers. RFC 8489 §14.11. */
export const PasswordAlgorithms: AttributeCodec<PasswordAlgorithmValue[]> = {
  type: AttrType.PasswordAlgorithms,
  name: 'PASSWORD-ALGORITHMS',
  encode: (value) => encodeAlgorithms(value),
  decode: (value) => decodeAlgorithms(value, 'PASSWORD-ALGORITHMS')
}

/** PASSWORD-ALGORITHM: the algorithm a client chose. RFC 8489 §14.12. */
export const PasswordAlgorithm: AttributeCodec<PasswordAlgorithmValue> = {
  type: AttrType.PasswordAlgorithm,
  name: 'PASSWORD-ALGORITHM',
  encode: (value) => encodeAlgorithms([value]),
  decode (value) {
    const list = decodeAlgorithms(value, 'PASSWORD-ALGORITHM')
    check(list.length === 1, 'PASSWORD-ALGORITHM', `${list.length} entries, expected 1`)
    return list[0]
  }
}
