import { isIP } from 'node:net'
import { InvalidArgumentError } from '../errors.js'

/**
 * IP literal <-> bytes conversions used by the STUN address attributes. Hand-written because they sit on the
 * codec's hot path (a Binding response per datagram); `node:net` offers validation but no conversion.
 */

/** Write an IPv4 dotted-quad into `out` at `offset`. Returns false when `address` is not IPv4. */
export function writeIPv4 (address: string, out: Uint8Array, offset: number): boolean {
  let part = 0; let digits = 0; let index = 0
  for (let i = 0; i < address.length; i++) {
    const c = address.charCodeAt(i)
    if (c === 46) { // '.'
      if (digits === 0 || index >= 3) return false
      out[offset + index++] = part; part = 0; digits = 0
    } else if (c >= 48 && c <= 57) {
      part = part * 10 + (c - 48); digits++
      if (part > 255 || digits > 3) return false
    } else return false
  }
  if (digits === 0 || index !== 3) return false
  out[offset + 3] = part
  return true
}

/** Parse an IP literal into 4 or 16 bytes. Throws InvalidArgumentError for anything else. */
export function ipToBytes (address: string): Buffer {
  const v4 = Buffer.allocUnsafe(4)
  if (writeIPv4(address, v4, 0)) return v4
  if (isIP(address) !== 6) throw new InvalidArgumentError(`${JSON.stringify(address)} is not an IP address`)
  return ipv6ToBytes(address)
}

function ipv6ToBytes (address: string): Buffer {
  const out = Buffer.alloc(16)
  let text = address
  const zone = text.indexOf('%')
  if (zone >= 0) text = text.slice(0, zone)
  // An embedded IPv4 tail (::ffff:1.2.3.4) becomes two groups.
  const lastColon = text.lastIndexOf(':')
  const tail = text.slice(lastColon + 1)
  if (tail.includes('.')) {
    const b = Buffer.allocUnsafe(4)
    if (!writeIPv4(tail, b, 0)) throw new InvalidArgumentError(`bad IPv4 tail in ${address}`)
    text = `${text.slice(0, lastColon + 1)}${b.readUInt16BE(0).toString(16)}:${b.readUInt16BE(2).toString(16)}`
  }
  const halves = text.split('::')
  const head = halves[0] === '' ? [] : halves[0].split(':')
  const rest = halves.length > 1 ? (halves[1] === '' ? [] : halves[1].split(':')) : []
  for (let i = 0; i < head.length; i++) out.writeUInt16BE(parseInt(head[i], 16), i * 2)
  for (let i = 0; i < rest.length; i++) out.writeUInt16BE(parseInt(rest[i], 16), 16 - (rest.length - i) * 2)
  return out
}

/** Format 4 bytes as dotted-quad or 16 bytes as RFC 5952 canonical IPv6 text. */
export function bytesToIp (bytes: Uint8Array): string {
  if (bytes.length === 4) return `${bytes[0]}.${bytes[1]}.${bytes[2]}.${bytes[3]}`
  if (bytes.length !== 16) throw new InvalidArgumentError(`an IP address has 4 or 16 bytes, not ${bytes.length}`)
  const groups: number[] = []
  for (let i = 0; i < 16; i += 2) groups.push((bytes[i] << 8) | bytes[i + 1])
  // IPv4-mapped addresses print with a dotted tail, as Node does.
  if (groups[0] === 0 && groups[1] === 0 && groups[2] === 0 && groups[3] === 0 && groups[4] === 0 && groups[5] === 0xffff) {
    return `::ffff:${bytes[12]}.${bytes[13]}.${bytes[14]}.${bytes[15]}`
  }
  // RFC 5952 §4.2: compress the longest run (leftmost on ties) of two or more zero groups.
  let bestStart = -1; let bestLen = 1
  for (let i = 0; i < 8;) {
    if (groups[i] !== 0) { i++; continue }
    let j = i
    while (j < 8 && groups[j] === 0) j++
    if (j - i > bestLen) { bestStart = i; bestLen = j - i }
    i = j
  }
  const hex = groups.map(g => g.toString(16))
  if (bestStart < 0) return hex.join(':')
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLen).join(':')}`
}
