/**
 * PCP (RFC 6887) codec for MAP (§11): request and response headers (§7.1, §7.2), the MAP opcode payload with its
 * 96-bit nonce, and the epoch check that tells a restarted server (§8.5). Pure functions; the socket is elsewhere.
 */
import { randomBytes } from 'node:crypto'
import { isIPv4 } from 'node:net'
import { InvalidArgumentError, PortMapDecodeError } from '../errors.js'

/** PCP version (RFC 6887 §7). */
export const PCP_VERSION = 2
/** Opcodes (§19.2). */
export const PCP_OPCODE = { announce: 0, map: 1, peer: 2 } as const
/** IANA protocol numbers used in MAP (§11.1). */
export const PCP_PROTOCOL = { udp: 17, tcp: 6 } as const

const RESULT_NAMES = ['SUCCESS', 'UNSUPP_VERSION', 'NOT_AUTHORIZED', 'MALFORMED_REQUEST', 'UNSUPP_OPCODE', 'UNSUPP_OPTION',
  'MALFORMED_OPTION', 'NETWORK_FAILURE', 'NO_RESOURCES', 'UNSUPP_PROTOCOL', 'USER_EX_QUOTA', 'CANNOT_PROVIDE_EXTERNAL',
  'ADDRESS_MISMATCH', 'EXCESSIVE_REMOTE_PEERS']

/** The RFC's name of a result code (§7.4). */
export function pcpResultName (code: number): string {
  return RESULT_NAMES[code] ?? `RESULT_${code}`
}

/** A 96-bit mapping nonce (§11.1): random, kept for the mapping's life so renewals and deletes match it. */
export function pcpNonce (): Uint8Array {
  return randomBytes(12)
}

/** IPv4 as an IPv4-mapped IPv6 address, 16 bytes (§5). */
function mapped (ip: string): Buffer {
  if (!isIPv4(ip)) throw new InvalidArgumentError(`PCP client addresses here are IPv4 dotted quads; got ${JSON.stringify(ip)}`)
  const b = Buffer.alloc(16)
  b[10] = 0xff; b[11] = 0xff
  ip.split('.').forEach((p, i) => { b[12 + i] = Number(p) })
  return b
}

function unmapped (b: Buffer): string {
  const isMapped = b.subarray(0, 10).every((x) => x === 0) && b[10] === 0xff && b[11] === 0xff
  if (isMapped) return `${b[12]}.${b[13]}.${b[14]}.${b[15]}`
  const groups: string[] = []
  for (let i = 0; i < 16; i += 2) groups.push(b.readUInt16BE(i).toString(16))
  return groups.join(':')
}

/** Options of {@link encodePcpMapRequest}. */
export interface PcpMapRequest {
  /** The client's own address as the server sees it on the LAN (§7.1 PCP Client's IP Address). */
  clientIp: string
  nonce: Uint8Array
  protocol: 'udp' | 'tcp'
  internalPort: number
  /** Suggested external port; 0 for any. */
  externalPort: number
  /** Suggested external address; default 0.0.0.0 (any IPv4, §11.1). */
  externalIp?: string
  /** Requested lifetime, s; 0 deletes (§15). */
  lifetimeS: number
}

/** §7.1 header + §11.1 MAP payload: 60 bytes. */
export function encodePcpMapRequest (r: PcpMapRequest): Uint8Array {
  if (r.nonce.length !== 12) throw new InvalidArgumentError('the PCP nonce is 12 bytes (96 bits)')
  const b = Buffer.alloc(60)
  b[0] = PCP_VERSION
  b[1] = PCP_OPCODE.map // R bit 0: request
  b.writeUInt32BE(r.lifetimeS, 4)
  mapped(r.clientIp).copy(b, 8)
  Buffer.from(r.nonce).copy(b, 24)
  b[36] = PCP_PROTOCOL[r.protocol]
  b.writeUInt16BE(r.internalPort, 40)
  b.writeUInt16BE(r.externalPort, 42)
  mapped(r.externalIp ?? '0.0.0.0').copy(b, 44)
  return b
}

/** A decoded PCP response (§7.2), with the MAP payload when present. */
export interface PcpResponse {
  /** Version of the response: 2, or 0/1 from a server that speaks only an older protocol (§9). */
  version: number
  opcode: number
  result: number
  lifetimeS: number
  /** Seconds since the server's state began (§8.5). */
  epoch: number
  map?: { nonce: Uint8Array, protocol: number, internalPort: number, externalPort: number, externalIp: string }
}

/**
 * Decode a PCP response. A NAT-PMP-only server answers a PCP request with a version-0 error (RFC 6887 §9); that is
 * returned with `version` 0 so the caller can fall back.
 * @throws PortMapDecodeError for anything malformed.
 */
export function decodePcpResponse (data: Uint8Array): PcpResponse {
  const b = Buffer.from(data.buffer, data.byteOffset, data.byteLength)
  if (b.length >= 4 && b[0] === 0 && (b[1] & 0x80) !== 0) {
    return { version: 0, opcode: b[1] & 0x7f, result: b.readUInt16BE(2), lifetimeS: 0, epoch: b.length >= 8 ? b.readUInt32BE(4) : 0 }
  }
  if (b.length < 24) throw new PortMapDecodeError('PCP response', `${b.length} bytes, at least 24 expected`)
  if (b.length % 4 !== 0 || b.length > 1100) throw new PortMapDecodeError('PCP response', `length ${b.length} is not a multiple of 4 up to 1100 (§7)`)
  if ((b[1] & 0x80) === 0) throw new PortMapDecodeError('PCP response', 'R bit clear: a request, not a response')
  const r: PcpResponse = { version: b[0], opcode: b[1] & 0x7f, result: b[3], lifetimeS: b.readUInt32BE(4), epoch: b.readUInt32BE(8) }
  if (r.version === PCP_VERSION && r.opcode === PCP_OPCODE.map && b.length >= 60) {
    r.map = { nonce: new Uint8Array(b.subarray(24, 36)), protocol: b[36], internalPort: b.readUInt16BE(40), externalPort: b.readUInt16BE(42), externalIp: unmapped(b.subarray(44, 60)) }
  }
  return r
}

/**
 * §8.5 epoch check: whether the server lost its state since the previous response. `prev` is the previous epoch and
 * the local time it arrived (seconds), `cur` the new one. The server's epoch must advance with the client's clock,
 * give or take 1/8 and 1 s either way; an epoch that went backwards or lagged means the server restarted and every
 * mapping must be re-created.
 */
export function pcpEpochValid (prev: { epoch: number, atS: number }, cur: { epoch: number, atS: number }): boolean {
  if (cur.epoch + 1 < prev.epoch) return false
  const clientDelta = cur.atS - prev.atS
  const serverDelta = cur.epoch - prev.epoch
  return !(clientDelta + 2 < serverDelta - serverDelta / 16 || serverDelta + 2 < clientDelta - clientDelta / 16)
}
