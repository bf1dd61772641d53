import { InvalidArgumentError } from '../errors.js'
import type { Transport } from '../net/resolve.js'

/** A TURN server address with its transport (RFC 7065). */
export interface TurnUri {
  readonly server: string
  readonly transport: Transport
}

/**
 * Parse a TURN server as given on a command line: an RFC 7065 URI (`turn:HOST[:PORT][?transport=udp|tcp]`,
 * `turns:HOST[:PORT]` for TLS) or a plain `HOST[:PORT]` (UDP, or `defaultTransport`).
 */
export function parseTurnUri (text: string, defaultTransport: Transport = 'udp'): TurnUri {
  const m = /^(turns?):([^?]+)(?:\?transport=(udp|tcp))?$/i.exec(text.trim())
  if (m === null) {
    if (/^[a-z]+:\/\//i.test(text) || text.includes('?')) throw new InvalidArgumentError(`${JSON.stringify(text)} is not a TURN server: write HOST[:PORT], turn:HOST[:PORT]?transport=tcp or turns:HOST[:PORT]`)
    return { server: text.trim(), transport: defaultTransport }
  }
  const secure = m[1].toLowerCase() === 'turns'
  const transport = (m[3]?.toLowerCase() ?? 'udp') as 'udp' | 'tcp'
  if (secure && transport === 'udp' && m[3] !== undefined) throw new InvalidArgumentError('turns: (TLS) cannot use transport=udp (DTLS is not supported)')
  return { server: m[2], transport: secure ? 'tls' : transport }
}
