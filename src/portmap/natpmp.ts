/**
 * NAT-PMP (RFC 6886) codec: the external-address request (§3.2) and UDP/TCP mapping requests (§3.3), and their
 * responses. Pure functions over bytes; the client in probe.ts owns the socket (UDP port 5351 of the gateway).
 */
import { PortMapDecodeError } from '../errors.js'

/** NAT-PMP server port (RFC 6886 §3.1). */
export const NATPMP_PORT = 5351
/** Version 0 (RFC 6886 §3.2); a PCP server answers it with a version-0 UNSUPP_VERSION. */
export const NATPMP_VERSION = 0

/** Result codes (RFC 6886 §3.5). */
export const NATPMP_RESULT = {
  success: 0,
  unsupportedVersion: 1,
  notAuthorized: 2,
  networkFailure: 3,
  outOfResources: 4,
  unsupportedOpcode: 5
} as const

const RESULT_NAMES = ['SUCCESS', 'UNSUPPORTED_VERSION', 'NOT_AUTHORIZED', 'NETWORK_FAILURE', 'OUT_OF_RESOURCES', 'UNSUPPORTED_OPCODE']

/** The RFC's name of a result code. */
export function natPmpResultName (code: number): string {
  return RESULT_NAMES[code] ?? `RESULT_${code}`
}

/** §3.2: the 2-byte external address request. */
export function encodeNatPmpExternalRequest (): Uint8Array {
  return Uint8Array.of(NATPMP_VERSION, 0)
}

/** §3.3: a mapping request. `lifetimeS` 0 with external port 0 deletes the mapping (§3.4). */
export function encodeNatPmpMapRequest (o: { protocol: 'udp' | 'tcp', internalPort: number, externalPort: number, lifetimeS: number }): Uint8Array {
  const b = Buffer.alloc(12)
  b[0] = NATPMP_VERSION
  b[1] = o.protocol === 'udp' ? 1 : 2
  b.writeUInt16BE(o.internalPort, 4)
  b.writeUInt16BE(o.externalPort, 6)
  b.writeUInt32BE(o.lifetimeS, 8)
  return b
}

/** A decoded NAT-PMP response. */
export type NatPmpResponse =
  | { kind: 'external', result: number, epoch: number, externalIp: string }
  | { kind: 'map', protocol: 'udp' | 'tcp', result: number, epoch: number, internalPort: number, externalPort: number, lifetimeS: number }

/**
 * Decode a response (§3.2, §3.3). Errors carry only the 8-byte header (§3.5), so a short error is accepted.
 * @throws PortMapDecodeError for anything else.
 */
export function decodeNatPmpResponse (data: Uint8Array): NatPmpResponse {
  if (data.length < 8) throw new PortMapDecodeError('NAT-PMP response', `${data.length} bytes, at least 8 expected`)
  const b = Buffer.from(data.buffer, data.byteOffset, data.byteLength)
  if (b[0] !== NATPMP_VERSION) throw new PortMapDecodeError('NAT-PMP response', `version ${b[0]}`)
  const op = b[1]
  if (op < 128 || op > 130) throw new PortMapDecodeError('NAT-PMP response', `opcode ${op}`)
  const result = b.readUInt16BE(2)
  const epoch = b.readUInt32BE(4)
  if (op === 128) {
    const externalIp = b.length >= 12 ? `${b[8]}.${b[9]}.${b[10]}.${b[11]}` : '0.0.0.0'
    if (result === 0 && b.length < 12) throw new PortMapDecodeError('NAT-PMP response', 'external address response shorter than 12 bytes')
    return { kind: 'external', result, epoch, externalIp }
  }
  if (result === 0 && b.length < 16) throw new PortMapDecodeError('NAT-PMP response', 'mapping response shorter than 16 bytes')
  return {
    kind: 'map',
    protocol: op === 129 ? 'udp' : 'tcp',
    result,
    epoch,
    internalPort: b.length >= 16 ? b.readUInt16BE(8) : 0,
    externalPort: b.length >= 16 ? b.readUInt16BE(10) : 0,
    lifetimeS: b.length >= 16 ? b.readUInt32BE(12) : 0
  }
}
