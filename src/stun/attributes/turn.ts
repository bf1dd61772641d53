import { InvalidArgumentError } from '../../errors.js'
import { AttrType } from '../attr-type.js'
import { bytesCodec, flagCodec, uint32Codec } from './basic.js'
import { check, type AttributeCodec } from './codec.js'
import { readErrorTriple, writeErrorTriple, type ErrorCodeValue } from './stun.js'

/** CHANNEL-NUMBER: 0x4000-0x4FFF, then 2 RFFU bytes. RFC 8656 §18.1. */
export const ChannelNumber: AttributeCodec<number> = {
  type: AttrType.ChannelNumber,
  name: 'CHANNEL-NUMBER',
  encode (value) {
    if (!Number.isInteger(value) || value < 0 || value > 0xffff) throw new InvalidArgumentError(`CHANNEL-NUMBER ${value} is not 16-bit`)
    const out = Buffer.alloc(4)
    out.writeUInt16BE(value, 0)
    return out
  },
  decode (value) {
    check(value.length === 4, 'CHANNEL-NUMBER', `${value.length} bytes, expected 4`)
    return (value[0] << 8) | value[1]
  }
}

/** LIFETIME in seconds. RFC 8656 §18.2. */
export const Lifetime = uint32Codec(AttrType.Lifetime, 'LIFETIME')
/** DATA: the application bytes of a Send or Data indication. RFC 8656 §18.4. */
export const Data = bytesCodec(AttrType.Data, 'DATA')
/** DONT-FRAGMENT. RFC 8656 §18.8. */
export const DontFragment = flagCodec(AttrType.DontFragment, 'DONT-FRAGMENT')
/** RESERVATION-TOKEN (8 bytes). RFC 8656 §18.9. */
export const ReservationToken = bytesCodec(AttrType.ReservationToken, 'RESERVATION-TOKEN', { min: 8, max: 8 })
/** CONNECTION-ID of an RFC 6062 TCP relay connection. RFC 6062 §6.2.1. */
export const ConnectionId = uint32Codec(AttrType.ConnectionId, 'CONNECTION-ID')

/** IANA protocol numbers carried in REQUESTED-TRANSPORT. */
export const TransportProtocol = { UDP: 17, TCP: 6 } as const

/** REQUESTED-TRANSPORT: the protocol number (17 UDP, 6 TCP), then 3 RFFU bytes. RFC 8656 §18.7. */
export const RequestedTransport: AttributeCodec<number> = {
  type: AttrType.RequestedTransport,
  name: 'REQUESTED-TRANSPORT',
  encode (value) {
    const out = Buffer.alloc(4)
    out[0] = value
    return out
  },
  decode (value) {
    check(value.length === 4, 'REQUESTED-TRANSPORT', `${value.length} bytes, expected 4`)
    return value[0]
  }
}

/** Address families as TURN writes them (RFC 8656 §18.6): 0x01 IPv4, 0x02 IPv6; natkit's values are 4 and 6. */
function familyCodec (type: number, name: string): AttributeCodec<4 | 6> {
  return {
    type,
    name,
    encode (value) {
      if (value !== 4 && value !== 6) throw new InvalidArgumentError(`${name} must be 4 or 6`)
      const out = Buffer.alloc(4)
      out[0] = value === 4 ? 0x01 : 0x02
      return out
    },
    decode (value) {
      check(value.length === 4, name, `${value.length} bytes, expected 4`)
      check(value[0] === 0x01 || value[0] === 0x02, name, `unknown family 0x${value[0].toString(16)}`)
      return value[0] === 0x01 ? 4 : 6
    }
  }
}

/** REQUESTED-ADDRESS-FAMILY. RFC 8656 §18.6. */
export const RequestedAddressFamily = familyCodec(AttrType.RequestedAddressFamily, 'REQUESTED-ADDRESS-FAMILY')
/** ADDITIONAL-ADDRESS-FAMILY (IPv6 only). RFC 8656 §18.11. */
export const AdditionalAddressFamily = familyCodec(AttrType.AdditionalAddressFamily, 'ADDITIONAL-ADDRESS-FAMILY')

/** ADDRESS-ERROR-CODE value: which family failed, and why. */
export interface AddressErrorCodeValue extends ErrorCodeValue {
  readonly family: 4 | 6
}

/** ADDRESS-ERROR-CODE. RFC 8656 §18.12. */
export const AddressErrorCode: AttributeCodec<AddressErrorCodeValue> = {
  type: AttrType.AddressErrorCode,
  name: 'ADDRESS-ERROR-CODE',
  encode (value) {
    const out = Buffer.alloc(4 + Buffer.byteLength(value.reason))
    out[0] = value.family === 4 ? 0x01 : 0x02
    writeErrorTriple(out, value.code, value.reason, 'ADDRESS-ERROR-CODE')
    return out
  },
  decode (value) {
    const triple = readErrorTriple(value, 'ADDRESS-ERROR-CODE')
    check(value[0] === 0x01 || value[0] === 0x02, 'ADDRESS-ERROR-CODE', `unknown family 0x${value[0].toString(16)}`)
    return { ...triple, family: value[0] === 0x01 ? 4 : 6 }
  }
}

/** EVEN-PORT: ask for an even relay port, and optionally reserve the next one. RFC 8656 §18.10. */
export const EvenPort: AttributeCodec<{ reserve: boolean }> = {
  type: AttrType.EvenPort,
  name: 'EVEN-PORT',
  encode: (value) => Uint8Array.of(value.reserve ? 0x80 : 0),
  decode (value) {
    check(value.length === 1, 'EVEN-PORT', `${value.length} bytes, expected 1`)
    return { reserve: (value[0] & 0x80) !== 0 }
  }
}

/** ICMP: an ICMP error the relay received for the peer. RFC 8656 §18.13. */
export interface IcmpValue {
  readonly icmpType: number
  readonly icmpCode: number
  readonly errorData: number
}

/** ICMP. RFC 8656 §18.13. */
export const Icmp: AttributeCodec<IcmpValue> = {
  type: AttrType.Icmp,
  name: 'ICMP',
  encode (value) {
    const out = Buffer.alloc(8)
    out[2] = value.icmpType; out[3] = value.icmpCode
    out.writeUInt32BE(value.errorData >>> 0, 4)
    return out
  },
  decode (value) {
    check(value.length === 8, 'ICMP', `${value.length} bytes, expected 8`)
    return { icmpType: value[2], icmpCode: value[3], errorData: Buffer.from(value.buffer, value.byteOffset, 8).readUInt32BE(4) }
  }
}
