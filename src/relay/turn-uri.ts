import { InvalidArgumentError } from '../errors.js'
import type { Transport } from '../net/resolve.js'

/** A TURN server address with its transport (RFC 7065). */
export interface TurnUri {
  readonly server: string
  readonly transport: Transport
  /**
   * Set when no transport was given and UDP was assumed: the server may also be tried over TCP on the same host and
   * port when UDP is silent (RFC 7065 §3: without `transport` the client picks; coturn and natkit listen on both).
   */
  readonly tcpFallback?: true
}

/**
 * Parse a TURN server as given on a command line: an RFC 7065 URI (`turn:HOST[:PORT][?transport=udp|tcp]`,
 * `turns:HOST[:PORT]` for TLS) or a plain `HOST[:PORT]` (UDP, or `defaultTransport`). UDP chosen by default, not by
 * `?transport=udp`, comes with `tcpFallback`.
 */
export function parseTurnUri (text: string, defaultTransport: Transport = 'udp'): TurnUri {
  const m = /^(turns?):([^?]+)(?:\?transport=(udp|tcp))?$/i.exec(text.trim())
  if (m === null) {
    if (/^[a-z]+:\/\//i.test(text) || text.includes('?')) throw new InvalidArgumentError(`${JSON.stringify(text)} is not a TURN server: write HOST[:PORT], turn:HOST[:PORT]?transport=tcp or turns:HOST[:PORT]`)
    return defaultTransport === 'udp' ? { server: text.trim(), transport: 'udp', tcpFallback: true } : { server: text.trim(), transport: defaultTransport }
  }
  const secure = m[1].toLowerCase() === 'turns'
  const transport = (m[3]?.toLowerCase() ?? 'udp') as 'udp' | 'tcp'
  if (secure && transport === 'udp' && m[3] !== undefined) throw new InvalidArgumentError('turns: (TLS) cannot use transport=udp (DTLS is not supported)')
  if (!secure && m[3] === undefined) return { server: m[2], transport: 'udp', tcpFallback: true }
  return { server: m[2], transport: secure ? 'tls' : transport }
}
