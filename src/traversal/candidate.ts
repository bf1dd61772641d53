import { createHash } from 'node:crypto'
import { InvalidArgumentError } from '../errors.js'
import { ipFamily, type Endpoint } from '../net/endpoint.js'

/** An mDNS host name (draft-ietf-mmusic-mdns-ice-candidates §3.1.1): one label under `.local`. Same rule as mdns.ts. */
const MDNS_NAME = /^[A-Za-z0-9-]{1,63}\.local\.?$/i

/** Candidate types (RFC 8445 §5.1.1). */
export type CandidateType = 'host' | 'srflx' | 'prflx' | 'relay'

/**
 * The transport a candidate uses. natkit's own candidates and checks are UDP (a relayed candidate may reach its TURN
 * server over TCP/TLS); TCP candidates (RFC 6544) from other agents parse and print, and are never paired.
 */
export type CandidateTransport = 'udp' | 'tcp'

/** RFC 6544 §4.5: the role of a TCP candidate. */
export type TcpType = 'active' | 'passive' | 'so'

/** A transport address a peer may be reachable at (RFC 8445 §5.1). */
export interface Candidate {
  readonly type: CandidateType
  readonly address: string
  readonly port: number
  readonly transport: CandidateTransport
  readonly priority: number
  readonly foundation: string
  /** Component id (RFC 8445 §4): 1 (RTP, or everything with rtcp-mux), 2 for RTCP without rtcp-mux. */
  readonly component: number
  /** The base's address for srflx/prflx, the mapped address for relay (RFC 8839 raddr/rport). */
  readonly related?: Endpoint
  /** TCP candidates only (RFC 6544 §4.5). */
  readonly tcpType?: TcpType
}

/** Type preferences of RFC 8445 §5.1.2.2: host 126, peer-reflexive 110, server-reflexive 100, relayed 0. */
export const TYPE_PREFERENCE: Readonly<Record<CandidateType, number>> = { host: 126, prflx: 110, srflx: 100, relay: 0 }

/**
 * Candidate priority (RFC 8445 §5.1.2.1): 2^24·type preference + 2^8·local preference + (256 − component).
 * `localPreference` (0-65535) orders candidates of one type, e.g. IPv6 above IPv4 (§5.1.2.2).
 */
export function candidatePriority (type: CandidateType, localPreference = 65535, component = 1): number {
  if (!Number.isInteger(localPreference) || localPreference < 0 || localPreference > 65535) {
    throw new InvalidArgumentError(`local preference must be 0-65535, got ${localPreference}`)
  }
  return TYPE_PREFERENCE[type] * 2 ** 24 + localPreference * 2 ** 8 + (256 - component)
}

/**
 * Foundation (RFC 8445 §5.1.1.3): equal for candidates of the same type, base IP, STUN/TURN server and transport,
 * so frozen-check unfreezing can group them. A short hash keeps it within the 32-character ice-char limit.
 */
export function candidateFoundation (type: CandidateType, baseAddress: string, server = '', transport: CandidateTransport = 'udp'): string {
  return createHash('sha256').update(`${type}|${baseAddress}|${server}|${transport}`).digest('hex').slice(0, 8)
}

/** Make a candidate with its priority and foundation computed. */
export function makeCandidate (o: { type: CandidateType, address: string, port: number, base?: string, server?: string, related?: Endpoint, localPreference?: number, component?: number }): Candidate {
  const localPreference = o.localPreference ?? (ipFamily(o.address) === 6 ? 65535 : 65534)
  return {
    type: o.type,
    address: o.address,
    port: o.port,
    transport: 'udp',
    priority: candidatePriority(o.type, localPreference, o.component ?? 1),
    foundation: candidateFoundation(o.type, o.base ?? o.address, o.server),
    component: o.component ?? 1,
    related: o.related
  }
}

/**
 * Candidate-pair priority (RFC 8445 §6.1.2.3): 2^32·MIN(G,D) + 2·MAX(G,D) + (G>D?1:0), G the controlling agent's
 * candidate priority, D the controlled one's. Returned as a bigint (it needs 64 bits).
 */
export function pairPriority (controlling: number, controlled: number): bigint {
  const g = BigInt(controlling); const d = BigInt(controlled)
  const min = g < d ? g : d; const max = g < d ? d : g
  return (1n << 32n) * min + 2n * max + (g > d ? 1n : 0n)
}

/** Serialise a candidate as an SDP `candidate:` attribute value (RFC 8839 §5.1), without the `a=` prefix. */
export function candidateToSdp (c: Candidate): string {
  let line = `candidate:${c.foundation} ${c.component} ${c.transport.toUpperCase()} ${c.priority} ${c.address} ${c.port} typ ${c.type}`
  if (c.related !== undefined) line += ` raddr ${c.related.address} rport ${c.related.port}`
  if (c.transport === 'tcp' && c.tcpType !== undefined) line += ` tcptype ${c.tcpType}`
  return line
}

/**
 * Parse an SDP candidate line (`a=candidate:…` or `candidate:…`), as trickled one at a time (RFC 8840). Throws
 * InvalidArgumentError saying what is wrong. Unknown extension attributes are ignored, as RFC 8839 requires.
 */
export function candidateFromSdp (line: string): Candidate {
  const text = line.trim().replace(/^a=/, '')
  if (!text.startsWith('candidate:')) throw new InvalidArgumentError(`not a candidate line: ${JSON.stringify(line)}`)
  const f = text.slice('candidate:'.length).split(/\s+/)
  if (f.length < 8 || f[6] !== 'typ') throw new InvalidArgumentError(`candidate line needs "foundation component transport priority address port typ type": ${JSON.stringify(line)}`)
  const [foundation, component, transport, priority, address, port, , type] = f
  const proto = transport.toLowerCase()
  if (proto !== 'udp' && proto !== 'tcp') throw new InvalidArgumentError(`candidate transport must be UDP or TCP, not ${transport}`)
  if (!['host', 'srflx', 'prflx', 'relay'].includes(type)) throw new InvalidArgumentError(`unknown candidate type ${JSON.stringify(type)}`)
  // draft-ietf-mmusic-mdns-ice-candidates §3.1: a host candidate may be named by an mDNS `.local` name (the Agent
  // resolves it); every other address must be an IP literal (RFC 8839 §5.1: no FQDNs).
  if (ipFamily(address) === 0 && !(type === 'host' && MDNS_NAME.test(address))) throw new InvalidArgumentError(`candidate address ${JSON.stringify(address)} is neither an IP literal nor (for a host candidate) an mDNS .local name`)
  const num = (s: string, what: string, max: number): number => {
    if (!/^\d+$/.test(s) || Number(s) > max) throw new InvalidArgumentError(`bad ${what} ${JSON.stringify(s)} in candidate line`)
    return Number(s)
  }
  let related: Endpoint | undefined
  let tcpType: TcpType | undefined
  for (let i = 8; i + 1 < f.length; i += 2) {
    if (f[i] === 'raddr') related = { address: f[i + 1], port: related?.port ?? 0 }
    if (f[i] === 'rport') related = { address: related?.address ?? '', port: num(f[i + 1], 'rport', 65535) }
    if (f[i] === 'tcptype') {
      if (!['active', 'passive', 'so'].includes(f[i + 1])) throw new InvalidArgumentError(`tcptype must be active, passive or so, not ${JSON.stringify(f[i + 1])}`)
      tcpType = f[i + 1] as TcpType
    }
  }
  if (proto === 'tcp' && tcpType === undefined) throw new InvalidArgumentError(`a TCP candidate needs a tcptype (RFC 6544 §4.5): ${JSON.stringify(line)}`)
  return {
    foundation,
    component: num(component, 'component', 256),
    transport: proto,
    priority: num(priority, 'priority', 0xffffffff),
    address,
    port: num(port, 'port', 65535),
    type: type as CandidateType,
    related: related !== undefined && related.address !== '' ? related : undefined,
    ...(tcpType !== undefined ? { tcpType } : {})
  }
}
