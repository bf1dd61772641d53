import { InvalidArgumentError } from '../errors.js'
import type { Endpoint } from '../net/endpoint.js'
import { candidateFromSdp, candidateToSdp, type Candidate } from './candidate.js'

/** The ICE part of one SDP media section (RFC 8839 §5), for an app that writes and reads its own SDP (SIP, WebRTC). */
export interface IceSdpSection {
  /** `a=ice-ufrag` (RFC 8839 §5.4: 4-256 ice-chars). */
  readonly ufrag: string
  /** `a=ice-pwd` (22-256 ice-chars). */
  readonly pwd: string
  /** `a=ice-options` tokens, e.g. `trickle` (RFC 8840 §4.1.1). */
  readonly options?: readonly string[]
  /** `a=ice-lite` (RFC 8839 §5.3; a session-level attribute in SDP). */
  readonly lite?: boolean
  readonly candidates: readonly Candidate[]
  /** `a=end-of-candidates` (RFC 8840 §8.2): no more candidates will be trickled. */
  readonly endOfCandidates?: boolean
  /** `a=remote-candidates` (RFC 8839 §5.2): the controlling agent's chosen remote candidate per component. */
  readonly remoteCandidates?: ReadonlyArray<Endpoint & { readonly component: number }>
  /**
   * `a=rtcp-mux` (RFC 5761 §5.1.3): RTP and RTCP share component 1. Without it a media section has two components,
   * and its candidates carry component ids 1 (RTP) and 2 (RTCP).
   */
  readonly rtcpMux?: boolean
}

/** What parseIceSdp found: the section's ICE attributes, and every candidate line it could not use, with why. */
export interface ParsedIceSdp {
  readonly ufrag?: string
  readonly pwd?: string
  readonly options: string[]
  readonly lite: boolean
  readonly candidates: Candidate[]
  readonly endOfCandidates: boolean
  readonly remoteCandidates: Array<Endpoint & { component: number }>
  /** `a=rtcp-mux` was present: one component (RFC 5761). */
  readonly rtcpMux: boolean
  /** The highest component id among the candidates (1 when none): 2 means RTP and RTCP apart. */
  readonly components: number
  /**
   * Candidate lines not used (`invalid`: malformed), with why. Host candidates named by an mDNS `.local` name (what
   * browsers send, draft-ietf-mmusic-mdns-ice-candidates) are not skipped: they are in `candidates` with the name as
   * their address, and the Agent resolves them (or learns the pair as peer-reflexive when they do not resolve).
   */
  readonly skipped: Array<{ line: string, reason: 'invalid', detail: string }>
}

const ICE_CHARS = /^[A-Za-z0-9+/]+$/

/**
 * Build the ICE lines of a media section (RFC 8839 §5, RFC 8840 §4.1.1), `a=`-prefixed, without line ends, in the
 * order an offer usually carries them. Validates ufrag and pwd lengths and characters (§5.4).
 */
export function buildIceSdp (s: IceSdpSection): string[] {
  if (s.ufrag.length < 4 || s.ufrag.length > 256 || !ICE_CHARS.test(s.ufrag)) throw new InvalidArgumentError(`ice-ufrag must be 4-256 characters of A-Z a-z 0-9 + /, got ${JSON.stringify(s.ufrag)}`)
  if (s.pwd.length < 22 || s.pwd.length > 256 || !ICE_CHARS.test(s.pwd)) throw new InvalidArgumentError('ice-pwd must be 22-256 characters of A-Z a-z 0-9 + /')
  const out: string[] = []
  if (s.lite === true) out.push('a=ice-lite')
  out.push(`a=ice-ufrag:${s.ufrag}`, `a=ice-pwd:${s.pwd}`)
  if (s.options !== undefined && s.options.length > 0) out.push(`a=ice-options:${s.options.join(' ')}`)
  if (s.rtcpMux === true) out.push('a=rtcp-mux')
  for (const c of s.candidates) out.push(`a=${candidateToSdp(c)}`)
  if (s.remoteCandidates !== undefined && s.remoteCandidates.length > 0) {
    out.push(`a=remote-candidates:${s.remoteCandidates.map(r => `${r.component} ${r.address} ${r.port}`).join(' ')}`)
  }
  if (s.endOfCandidates === true) out.push('a=end-of-candidates')
  return out
}

/**
 * Parse the ICE attributes of one media section. `sdp` may be a whole session description (session-level
 * `ice-ufrag`/`ice-pwd`/`ice-options`/`ice-lite` apply unless the section overrides them, RFC 8839 §5.4), a media
 * section, or just attribute lines (an RFC 8840 sdpfrag); `section` picks the m= section (default the first). Lines
 * end in CRLF or LF; unknown attributes are ignored. Throws InvalidArgumentError only for a malformed
 * `a=remote-candidates` or a section index that does not exist; bad candidate lines go to `skipped`.
 */
export function parseIceSdp (sdp: string, options: { section?: number } = {}): ParsedIceSdp {
  const lines = sdp.split(/\r?\n/).map(l => l.trim()).filter(l => l !== '')
  const want = options.section ?? 0
  const hasMedia = lines.some(l => l.startsWith('m='))
  let section = -1
  let found = !hasMedia
  const session = new Map<string, string>()
  const media = new Map<string, string>()
  let lite = false
  let endOfCandidates = false
  let rtcpMux = false
  const candidates: Candidate[] = []
  const remoteCandidates: Array<Endpoint & { component: number }> = []
  const skipped: ParsedIceSdp['skipped'] = []
  for (const line of lines) {
    if (line.startsWith('m=')) { section++; if (section === want) found = true; continue }
    if (!line.startsWith('a=')) continue
    const inSession = hasMedia && section < 0
    if (!inSession && hasMedia && section !== want) continue
    const colon = line.indexOf(':')
    const name = colon < 0 ? line.slice(2) : line.slice(2, colon)
    const value = colon < 0 ? '' : line.slice(colon + 1).trim()
    const attrs = inSession ? session : media
    switch (name) {
      case 'ice-ufrag': case 'ice-pwd': case 'ice-options': attrs.set(name, value); break
      case 'ice-lite': lite = true; break
      case 'end-of-candidates': if (!inSession) endOfCandidates = true; break
      case 'rtcp-mux': if (!inSession) rtcpMux = true; break
      case 'candidate': {
        if (inSession) break
        try { candidates.push(candidateFromSdp(line)) } catch (err) { skipped.push({ line, reason: 'invalid', detail: (err as Error).message }) }
        break
      }
      case 'remote-candidates': {
        if (inSession) break
        const f = value.split(/\s+/)
        if (f.length % 3 !== 0) throw new InvalidArgumentError(`a=remote-candidates needs "component address port" triples: ${JSON.stringify(line)}`)
        for (let i = 0; i < f.length; i += 3) {
          const component = Number(f[i]); const port = Number(f[i + 2])
          if (!Number.isInteger(component) || component < 1 || component > 256 || !Number.isInteger(port) || port < 0 || port > 65535) throw new InvalidArgumentError(`bad triple in a=remote-candidates: ${JSON.stringify(line)}`)
          remoteCandidates.push({ component, address: f[i + 1], port })
        }
        break
      }
    }
  }
  if (!found) throw new InvalidArgumentError(`the SDP has no media section ${want}`)
  const pick = (name: string): string | undefined => media.get(name) ?? session.get(name)
  const opts = pick('ice-options')
  const components = candidates.reduce((max, c) => Math.max(max, c.component), 1)
  return { lite, endOfCandidates, rtcpMux, components, candidates, remoteCandidates, skipped, ufrag: pick('ice-ufrag'), pwd: pick('ice-pwd'), options: opts === undefined || opts === '' ? [] : opts.split(/\s+/) }
}

/** Join SDP lines with CRLF (RFC 8866 §5), ending with one. */
export function formatSdpLines (lines: readonly string[]): string {
  return lines.map(l => `${l}\r\n`).join('')
}
