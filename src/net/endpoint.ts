import { isIP } from 'node:net'
import { InvalidArgumentError } from '../errors.js'

/** A transport address: an IP literal (IPv4 dotted or IPv6, no brackets, no zone) and a port. */
export interface Endpoint {
  readonly address: string
  readonly port: number
}

/** Address family of an IP literal: 4 or 6 (0 when it is not an IP literal). */
export function ipFamily (address: string): 0 | 4 | 6 {
  return isIP(address) as 0 | 4 | 6
}

/** `1.2.3.4:5` or `[::1]:5`: the usual printed form of an endpoint. */
export function formatEndpoint (e: Endpoint): string {
  return e.address.includes(':') ? `[${e.address}]:${e.port}` : `${e.address}:${e.port}`
}

/** A key that identifies an endpoint in a Map. */
export function endpointKey (e: Endpoint): string {
  return `${e.address}|${e.port}`
}

/**
 * The IPv4 form of an IPv4-mapped IPv6 address as sockets report it (`::ffff:1.2.3.4` → `1.2.3.4`, e.g. an IPv4
 * peer seen on a dual-stack socket); any other address unchanged.
 */
export function ipv4Address (address: string): string {
  return address.length > 7 && address.slice(0, 7).toLowerCase() === '::ffff:' && isIP(address.slice(7)) === 4 ? address.slice(7) : address
}

/** Whether two endpoints are the same transport address, treating `::ffff:a.b.c.d` as `a.b.c.d`. */
export function sameTransportAddress (a: Endpoint, b: Endpoint): boolean {
  return a.port === b.port && (a.address === b.address || ipv4Address(a.address) === ipv4Address(b.address))
}

/** Whether two endpoints are the same address and port. */
export function sameEndpoint (a: Endpoint, b: Endpoint): boolean {
  return a.port === b.port && a.address === b.address
}

/**
 * Parse `HOST`, `HOST:PORT`, `[V6]`, `[V6]:PORT` (HOST may be a name or an IP literal).
 * Returns the port as undefined when none is given.
 */
export function parseHostPort (text: string): { host: string, port: number | undefined } {
  const s = text.trim()
  if (s === '') throw new InvalidArgumentError('empty address: give HOST[:PORT], e.g. stun.example.org:3478')
  let host: string
  let portText: string | undefined
  if (s.startsWith('[')) {
    const close = s.indexOf(']')
    if (close < 0) throw new InvalidArgumentError(`unbalanced '[' in ${JSON.stringify(text)}: write [IPV6]:PORT`)
    host = s.slice(1, close)
    const rest = s.slice(close + 1)
    if (rest !== '') {
      if (!rest.startsWith(':')) throw new InvalidArgumentError(`unexpected ${JSON.stringify(rest)} after ] in ${JSON.stringify(text)}`)
      portText = rest.slice(1)
    }
  } else if (isIP(s) === 6) {
    host = s
  } else {
    const colon = s.lastIndexOf(':')
    if (colon >= 0) { host = s.slice(0, colon); portText = s.slice(colon + 1) } else host = s
  }
  if (host === '') throw new InvalidArgumentError(`no host in ${JSON.stringify(text)}`)
  let port: number | undefined
  if (portText !== undefined) {
    if (!/^\d{1,5}$/.test(portText) || Number(portText) > 65535) {
      throw new InvalidArgumentError(`bad port ${JSON.stringify(portText)} in ${JSON.stringify(text)}: use 0-65535`)
    }
    port = Number(portText)
  }
  return { host, port }
}

/** Parse `IP[:PORT]` into an endpoint, with a default port; the host must be an IP literal. */
export function parseEndpoint (text: string, defaultPort: number): Endpoint {
  const { host, port } = parseHostPort(text)
  if (isIP(host) === 0) throw new InvalidArgumentError(`${JSON.stringify(host)} is not an IP address: give an IPv4 or IPv6 literal`)
  return { address: host, port: port ?? defaultPort }
}
