import { lookup, resolveSrv } from 'node:dns/promises'
import { ResolveError } from '../errors.js'
import { createLogger } from '../log.js'
import { ipFamily, parseHostPort, type Endpoint } from './endpoint.js'

/** Transports a STUN/TURN server may be reached over. */
export type Transport = 'udp' | 'tcp' | 'tls'

/** Default ports: 3478 for STUN/TURN over UDP and TCP, 5349 over TLS (RFC 8489 §18.6). */
export function defaultPort (transport: Transport): number {
  return transport === 'tls' ? 5349 : 3478
}

/** Options for resolveServer. */
export interface ResolveOptions {
  readonly transport?: Transport
  /** Only this address family. */
  readonly family?: 4 | 6
  /** Service name for SRV (default 'stun'; TURN uses 'turn'). */
  readonly service?: 'stun' | 'turn'
  readonly signal?: AbortSignal
  /** DNS seam (default node:dns): tests and apps with their own resolver substitute it. */
  readonly dns?: {
    resolveSrv: (name: string) => Promise<Array<{ name: string, port: number, priority: number, weight: number }>>
    lookup: (host: string, family: 0 | 4 | 6) => Promise<Array<{ address: string }>>
  }
}

const log = createLogger('natcheck:net:resolve')

/** SRV lookup errors that mean "no such records", the normal case for a host without SRV. */
const NO_RECORDS = new Set(['ENOTFOUND', 'ENODATA', 'NXDOMAIN'])

const systemDns = {
  resolveSrv,
  lookup: async (host: string, family: 0 | 4 | 6) => await lookup(host, { all: true, family, verbatim: true })
}

/** A resolved server: where to send, and the name it came from (for TLS SNI and messages). */
export interface ResolvedServer extends Endpoint {
  readonly host: string
}

/**
 * Resolve `HOST[:PORT]` to addresses (RFC 8489 §8). With an IP literal, that address. With a name and a port, its
 * A/AAAA records. With a name and no port, the SRV records `_stun._udp`, `_stun._tcp` or `_stuns._tcp` first (in
 * priority order), falling back to A/AAAA on the default port.
 */
export async function resolveServer (text: string, options: ResolveOptions = {}): Promise<ResolvedServer[]> {
  const transport = options.transport ?? 'udp'
  const { host, port } = parseHostPort(text)
  if (ipFamily(host) !== 0) return [{ host, address: host, port: port ?? defaultPort(transport) }]
  const dns = options.dns ?? systemDns
  const targets: Array<{ name: string, port: number }> = []
  if (port === undefined) {
    const service = options.service ?? 'stun'
    const srvName = transport === 'tls' ? `_${service}s._tcp.${host}` : `_${service}._${transport}.${host}`
    try {
      const records = await dns.resolveSrv(srvName)
      records.sort((a, b) => a.priority - b.priority || b.weight - a.weight)
      for (const r of records) targets.push({ name: r.name, port: r.port })
    } catch (err) {
      // No SRV records: use the host itself on the default port. Anything else (a timeout, a refused query) is logged,
      // so a broken resolver does not read as "no SRV records".
      const code = (err as { code?: string }).code
      if (code !== undefined && NO_RECORDS.has(code)) log('no SRV records for %s', srvName)
      else log.error('SRV lookup of %s failed (%s): %s; falling back to A/AAAA', srvName, code ?? 'no code', (err as Error).message)
    }
  }
  if (targets.length === 0) targets.push({ name: host, port: port ?? defaultPort(transport) })
  const out: ResolvedServer[] = []
  let lastError: unknown
  for (const t of targets) {
    if (options.signal?.aborted === true) break
    try {
      const addrs = await dns.lookup(t.name, options.family ?? 0)
      for (const a of addrs) out.push({ host, address: a.address, port: t.port })
    } catch (err) {
      lastError = err
    }
  }
  if (out.length === 0) throw new ResolveError(host, lastError instanceof Error ? lastError.message : 'no addresses', { cause: lastError })
  return out
}
