import { createLogger } from '../log.js'
import { formatEndpoint, ipFamily, type Endpoint } from '../net/endpoint.js'
import type { ResolvedServer } from '../net/resolve.js'
import { resolveServer } from '../net/resolve.js'
import { stunBinding } from '../stun/client.js'
import { withTimeout, type Resolved } from './discover-reach.js'
import type { DiscoveryRun } from './discover-run.js'
import { probeTcpPorts, probeUdpRefusal, TCP_REACH_PORTS, type TcpPortProbe } from './tcp-reach.js'

const log = createLogger('natcheck:discovery')

/** A STUN Binding request header (RFC 8489 §5) for the UDP refusal probe; its reply, if any, is not read. */
const STUN_PROBE = Uint8Array.of(0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12)

/** What phase 6 found. */
export interface TcpTlsReport {
  readonly tcp: boolean
  readonly tls: boolean
  /** Plain TCP connects to each server on 443 and 80. */
  readonly tcpPorts: TcpPortProbe[]
  /** UDP to a server came back as ICMP port unreachable (UDP gets there; no STUN server listens). */
  readonly udpRefused: boolean
}

/**
 * Phase 6: does STUN over TCP or TLS get out (to each server's port and 443; TLS to 5349 and 443)? Also plain TCP
 * connects on 443 and 80 (a server that answers, even with a refusal, proves the path open) and whether UDP to the
 * STUN port comes back as ICMP port unreachable.
 */
export async function testTcpTls (run: DiscoveryRun, resolved: readonly Resolved[]): Promise<TcpTlsReport> {
  run.progress('tcp-tls', 'testing STUN over TCP and TLS')
  const hosts = resolved.filter(r => r.targets !== undefined).map(r => r.targets?.[0] as ResolvedServer)
  const attempt = async (transport: 'tcp' | 'tls', port: number, h: ResolvedServer): Promise<boolean> => {
    try {
      await stunBinding(`${h.address.includes(':') ? `[${h.address}]` : h.address}:${port}`, {
        transport, timeoutMs: Math.min(run.timeoutMs, 3000), tls: { rejectUnauthorized: false, servername: ipFamily(h.host) === 0 ? h.host : undefined }
      })
      return true
    } catch (err) {
      log('STUN over %s to %s:%d failed: %s', transport, h.address, port, (err as Error).message)
      return false
    }
  }
  // Also the server's own port: a firewall that lets out only 80/443 is told from one that lets out any TCP (which TCP
  // simultaneous open needs), since the peer's punched port is neither.
  const ports = [...new Set([...TCP_REACH_PORTS, ...hosts.map(h => h.port)])]
  const portsProbe = probeTcpPorts(hosts.map(h => h.address), { ports, timeoutMs: Math.min(run.timeoutMs, 3000), localAddress: run.options.localAddress, signal: run.signal })
  const udpRefusal = Promise.all(hosts.map(async h => await probeUdpRefusal(h.address, h.port, STUN_PROBE, { timeoutMs: Math.min(run.timeoutMs, 1500), localAddress: run.options.localAddress })))
  const results = await Promise.all(hosts.flatMap(h => [
    attempt('tcp', h.port, h).then(ok => ({ kind: 'tcp', ok })),
    attempt('tcp', 443, h).then(ok => ({ kind: 'tcp', ok })),
    attempt('tls', 5349, h).then(ok => ({ kind: 'tls', ok })),
    attempt('tls', 443, h).then(ok => ({ kind: 'tls', ok }))
  ]))
  const tcp = results.some(r => r.kind === 'tcp' && r.ok)
  const tls = results.some(r => r.kind === 'tls' && r.ok)
  const tcpPorts = await portsProbe
  const udpRefused = (await udpRefusal).includes('refused')
  run.mark('tcpTls')
  run.progress('tcp-tls', `TCP ${tcp ? 'got out' : 'blocked'}, TLS ${tls ? 'got out' : 'blocked'}, TCP connects: ${tcpPorts.map(p => `${p.port} ${p.outcome}`).join(', ') || 'none'}`)
  return { tcp, tls, tcpPorts, udpRefused }
}

/** IPv6 as reported: whether the host has a global address, whether it was tested, the mapped address. */
export interface Ipv6Report { available: boolean, tested: boolean, mapped: Endpoint | null }

/** Phase 7: IPv6, when this host has a global address: the first server that answers over IPv6 gives the mapping. */
export async function testIpv6 (run: DiscoveryRun): Promise<Ipv6Report> {
  const ipv6: Ipv6Report = { available: run.options.ipv6 !== false && run.interfaces.hasGlobalIPv6(), tested: false, mapped: null }
  if (!ipv6.available) return ipv6
  run.progress('ipv6', 'testing IPv6')
  const errors: string[] = []
  for (const server of run.servers) {
    try {
      const [target] = await withTimeout(resolveServer(server, { family: 6, dns: run.options.dns }), run.timeoutMs, server)
      const r = await stunBinding(formatEndpoint(target), { family: 6, timeoutMs: Math.min(run.timeoutMs, 2000), signal: run.signal })
      ipv6.tested = true; ipv6.mapped = r.mapped
      break
    } catch (err) {
      ipv6.tested = true
      errors.push(`${server}: ${(err as Error).message}`)
      log('IPv6 to %s failed: %s', server, (err as Error).message)
    }
  }
  if (ipv6.mapped === null && errors.length > 0) run.progress('ipv6', `IPv6 got no answer (${errors.join('; ')})`)
  run.mark('ipv6')
  return ipv6
}
