import { InvalidArgumentError } from '../../errors.js'
import { check, view, type AttributeCodec } from './codec.js'

/**
 * Factories for the wire formats that several attributes share: UTF-8 text, opaque bytes, unsigned integers and
 * empty flags.
 */

/** UTF-8 text of at most `maxBytes` bytes (USERNAME 513, REALM/NONCE 763, SOFTWARE 763: RFC 8489 §14). */
export function textCodec (type: number, name: string, maxBytes: number): AttributeCodec<string> {
  return {
    type,
    name,
    encode (value) {
      const bytes = Buffer.from(value, 'utf8')
      if (bytes.length > maxBytes) throw new InvalidArgumentError(`${name} is ${bytes.length} bytes; the limit is ${maxBytes}`)
      return bytes
    },
    decode (value) {
      check(value.length <= maxBytes, name, `${value.length} bytes exceeds ${maxBytes}`)
      return view(value).toString('utf8')
    }
  }
}

/** Opaque bytes, optionally of an exact or bounded length. */
export function bytesCodec (type: number, name: string, length?: { min?: number, max?: number }): AttributeCodec<Uint8Array> {
  const min = length?.min ?? 0
  const max = length?.max ?? 0xffff
  return {
    type,
    name,
    encode (value) {
      if (value.length < min || value.length > max) throw new InvalidArgumentError(`${name} must be ${min}-${max} bytes, got ${value.length}`)
      return value
    },
    decode (value) {
      check(value.length >= min && value.length <= max, name, `${value.length} bytes, expected ${min === max ? min : `${min}-${max}`}`)
      return value
    }
  }
}

/** A 32-bit unsigned integer. */
export function uint32Codec (type: number, name: string): AttributeCodec<number> {
  return {
    type,
    name,
    encode (value) {
      if (!Number.isInteger(value) || value < 0 || value > 0xffffffff) throw new InvalidArgumentError(`${name} must be a 32-bit unsigned integer, got ${value}`)
      const out = Buffer.allocUnsafe(4)
      out.writeUInt32BE(value, 0)
      return out
    },
    decode (value) {
      check(value.length === 4, name, `${value.length} bytes, expected 4`)
      return view(value).readUInt32BE(0)
    }
  }
}

/** A 64-bit unsigned integer as a bigint (ICE tie-breakers). */
export function uint64Codec (type: number, name: string): AttributeCodec<bigint> {
  return {
    type,
    name,
    encode (value) {
      if (value < 0n || value > 0xffffffffffffffffn) throw new InvalidArgumentError(`${name} must be a 64-bit unsigned integer`)
      const out = Buffer.allocUnsafe(8)
      out.writeBigUInt64BE(value, 0)
      return out
    },
    decode (value) {
      check(value.length === 8, name, `${value.length} bytes, expected 8`)
      return view(value).readBigUInt64BE(0)
    }
  }
}

/** An attribute whose presence is its meaning (USE-CANDIDATE, DONT-FRAGMENT). Its value is `true`. */
export function flagCodec (type: number, name: string): AttributeCodec<true> {
  const empty = new Uint8Array(0)
  return {
    type,
    name,
    encode: () => empty,
    decode (value) {
      check(value.length === 0, name, `${value.length} bytes, expected none`)
      return true
    }
  }
}

/** A 16-bit port followed by 2 reserved bytes (RESPONSE-PORT, RFC 5780 §7.5). */
export function portCodec (type: number, name: string): AttributeCodec<number> {
  return {
    type,
    name,
    encode (value) {
      if (!Number.isInteger(value) || value < 0 || value > 0xffff) throw new InvalidArgumentError(`${name} must be a port 0-65535, got ${value}`)
      const out = Buffer.alloc(4)
      out.writeUInt16BE(value, 0)
      return out
    },
    decode (value) {
      check(value.length === 4, name, `${value.length} bytes, expected 4`)
      return view(value).readUInt16BE(0)
    }
  }
}
