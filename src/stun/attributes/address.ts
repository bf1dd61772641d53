import { InvalidArgumentError } from '../../errors.js'
import type { Endpoint } from '../../net/endpoint.js'
import { bytesToIp, writeIPv4, ipToBytes } from '../../net/ip.js'
import { AttrType } from '../attr-type.js'
import { check, type AttributeCodec, type CodecContext } from './codec.js'

const FAMILY_IPV4 = 0x01
const FAMILY_IPV6 = 0x02

function encodeAddress (value: Endpoint, name: string, xor: CodecContext | undefined): Buffer {
  if (!Number.isInteger(value.port) || value.port < 0 || value.port > 0xffff) {
    throw new InvalidArgumentError(`${name}: port ${value.port} is not 0-65535`)
  }
  let out: Buffer
  const v4 = Buffer.allocUnsafe(8)
  if (writeIPv4(value.address, v4, 4)) {
    out = v4
    out[0] = 0; out[1] = FAMILY_IPV4
  } else {
    const ip = ipToBytes(value.address)
    out = Buffer.allocUnsafe(20)
    out[0] = 0; out[1] = FAMILY_IPV6
    out.set(ip, 4)
  }
  out.writeUInt16BE(value.port, 2)
  if (xor !== undefined) applyXor(out, xor.transactionId)
  return out
}

function decodeAddress (value: Uint8Array, name: string, xor: CodecContext | undefined): Endpoint {
  check(value.length >= 4, name, `value is ${value.length} bytes, need at least 4`)
  const family = value[1]
  const length = family === FAMILY_IPV4 ? 4 : family === FAMILY_IPV6 ? 16 : -1
  check(length > 0, name, `unknown address family 0x${family.toString(16)}`)
  check(value.length === 4 + length, name, `IPv${length === 4 ? 4 : 6} value is ${value.length} bytes, expected ${4 + length}`)
  const plain = new Uint8Array(value.length)
  plain.set(value)
  if (xor !== undefined) applyXor(plain, xor.transactionId)
  return { address: bytesToIp(plain.subarray(4)), port: (plain[2] << 8) | plain[3] }
}

/**
 * XOR an address value in place (RFC 8489 §14.2): the port with the magic cookie's high 16 bits, the address with
 * the cookie (IPv4) or the cookie then the transaction id (IPv6). Applying it twice restores the value.
 */
function applyXor (value: Uint8Array, transactionId: Uint8Array): void {
  value[2] ^= 0x21; value[3] ^= 0x12
  value[4] ^= 0x21; value[5] ^= 0x12; value[6] ^= 0xa4; value[7] ^= 0x42
  for (let i = 8; i < value.length; i++) value[i] ^= transactionId[i - 8]
}

/** A codec for an attribute with the plain address format (RFC 8489 §14.1). */
export function addressCodec (type: number, name: string): AttributeCodec<Endpoint> {
  return {
    type,
    name,
    encode: (value) => encodeAddress(value, name, undefined),
    decode: (value) => decodeAddress(value, name, undefined)
  }
}

/** A codec for an attribute with the XOR address format (RFC 8489 §14.2). */
export function xorAddressCodec (type: number, name: string): AttributeCodec<Endpoint> {
  return {
    type,
    name,
    encode: (value, ctx) => encodeAddress(value, name, ctx),
    decode: (value, ctx) => decodeAddress(value, name, ctx)
  }
}

/** MAPPED-ADDRESS. RFC 8489 §14.1. */
export const MappedAddress = addressCodec(AttrType.MappedAddress, 'MAPPED-ADDRESS')
/** XOR-MAPPED-ADDRESS. RFC 8489 §14.2. */
export const XorMappedAddress = xorAddressCodec(AttrType.XorMappedAddress, 'XOR-MAPPED-ADDRESS')
/** ALTERNATE-SERVER. RFC 8489 §14.15. */
export const AlternateServer = addressCodec(AttrType.AlternateServer, 'ALTERNATE-SERVER')
/** RESPONSE-ORIGIN. RFC 5780 §7.3. */
export const ResponseOrigin = addressCodec(AttrType.ResponseOrigin, 'RESPONSE-ORIGIN')
/** OTHER-ADDRESS. RFC 5780 §7.4. */
export const OtherAddress = addressCodec(AttrType.OtherAddress, 'OTHER-ADDRESS')
/** RESPONSE-ADDRESS. RFC 3489 §11.2.2 (classic; deprecated). */
export const ResponseAddress = addressCodec(AttrType.ResponseAddress, 'RESPONSE-ADDRESS')
/** SOURCE-ADDRESS. RFC 3489 §11.2.5 (classic). */
export const SourceAddress = addressCodec(AttrType.SourceAddress, 'SOURCE-ADDRESS')
/** CHANGED-ADDRESS. RFC 3489 §11.2.3 (classic). */
export const ChangedAddress = addressCodec(AttrType.ChangedAddress, 'CHANGED-ADDRESS')
/** REFLECTED-FROM. RFC 3489 §11.2.11 (classic). */
export const ReflectedFrom = addressCodec(AttrType.ReflectedFrom, 'REFLECTED-FROM')
/** XOR-PEER-ADDRESS. RFC 8656 §18.3. */
export const XorPeerAddress = xorAddressCodec(AttrType.XorPeerAddress, 'XOR-PEER-ADDRESS')
/** XOR-RELAYED-ADDRESS. RFC 8656 §18.5. */
export const XorRelayedAddress = xorAddressCodec(AttrType.XorRelayedAddress, 'XOR-RELAYED-ADDRESS')
