import { isIP } from 'node:net'
import type { IncomingMessage } from 'node:http'
import { ipv4Address } from '../net/endpoint.js'
import { ipToBytes } from '../net/ip.js'
import type { ObservedAddress } from './protocol.js'

/**
 * Parse one X-Forwarded-For element: `IP`, `IPv4:PORT`, `[IPv6]` or `[IPv6]:PORT` (the forms proxies write).
 * Returns undefined when it is not an IP literal (`unknown`, obfuscated names…). Port 0 means not given.
 */
export function parseForwardedElement (text: string): ObservedAddress | undefined {
  const s = text.trim().replace(/^"|"$/g, '')
  let address = s
  let port = 0
  const v6 = /^\[([^\]]+)\](?::(\d{1,5}))?$/.exec(s)
  const v4 = /^(\d{1,3}(?:\.\d{1,3}){3}):(\d{1,5})$/.exec(s)
  if (v6 !== null) { address = v6[1]; port = v6[2] === undefined ? 0 : Number(v6[2]) } else if (v4 !== null) { address = v4[1]; port = Number(v4[2]) }
  if (isIP(address) === 0 || port > 65535) return undefined
  return { address: ipv4Address(address), port }
}

/**
 * The address a WebSocket client connects from: the TCP source of the request, or, when `trustProxy` is set, the
 * last (rightmost) X-Forwarded-For element, which is the one the trusted proxy appended. Without a port in that
 * header the port is 0 (unknown): only the TCP source port is a real NAT mapping.
 */
export function observedAddress (req: IncomingMessage, trustProxy: boolean): ObservedAddress {
  if (trustProxy) {
    const header = req.headers['x-forwarded-for']
    const value = Array.isArray(header) ? header[header.length - 1] : header
    if (value !== undefined && value.length <= 4096) {
      const parts = value.split(',')
      const last = parseForwardedElement(parts[parts.length - 1])
      if (last !== undefined) return last
    }
  }
  return { address: ipv4Address(req.socket.remoteAddress ?? ''), port: req.socket.remotePort ?? 0 }
}

/**
 * The key connections from one source are counted under for per-source limits: the IPv4 address, or the /64 prefix
 * of an IPv6 address (one subscriber usually holds a whole /64, so counting single IPv6 addresses would limit
 * nothing). IPv4-mapped IPv6 counts as IPv4. Anything unparsable is its own key.
 */
export function sourceKey (address: string): string {
  const a = ipv4Address(address)
  const family = isIP(a)
  if (family === 4) return a
  if (family !== 6) return a
  try {
    const b = ipToBytes(a)
    return `${[0, 2, 4, 6].map(i => b.readUInt16BE(i).toString(16)).join(':')}::/64`
  } catch {
    return a
  }
}
