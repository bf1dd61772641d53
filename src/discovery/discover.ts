import { classicType, verdictFor } from './classify.js'
import { measureBehaviour, unknownBehaviour } from './discover-behaviour.js'
import { reachServers, resolveServers } from './discover-reach.js'
import { DiscoveryRun, type DiscoverOptions } from './discover-run.js'
import { testIpv6, testTcpTls } from './discover-transports.js'
import { openTcpPorts, type TcpPortProbe } from './tcp-reach.js'
import type { NatReport } from './types.js'

export type { DiscoverOptions, DiscoveryProgress } from './discover-run.js'

/**
 * Public STUN servers natcheck asks by default: two large plain (RFC 5389) services and one RFC 5780-capable
 * server (Stuntman's), so mapping, filtering and everything else can be measured without configuration.
 */
export const DEFAULT_SERVERS = ['stun.stunprotocol.org:3478', 'stun.l.google.com:19302', 'stun.cloudflare.com:3478'] as const

/**
 * Find out what the NAT in front of this host does (RFC 5780 §4, RFC 4787): mapping and filtering behaviour,
 * hairpinning, ALG interference, port preservation and allocation pattern, mapping variation by destination, and
 * optionally the mapping lifetime; plus whether UDP, TCP, TLS and IPv6 get out. Probes run in parallel on separate
 * sockets with timeouts derived from the measured round trip. Never throws for network outcomes: what could not be
 * measured is `unknown`/null in the report. Rejects only with AbortError (and TransportError when no probe socket can
 * be bound).
 *
 * The phases: resolve and reach (discover-reach.ts), the RFC 5780 behaviour tests, port allocation and lifetime
 * (discover-behaviour.ts), TCP/TLS and IPv6 (discover-transports.ts).
 */
export async function discoverNat (options: DiscoverOptions = {}): Promise<NatReport> {
  const run = new DiscoveryRun(options, DEFAULT_SERVERS)
  try {
    const resolved = await resolveServers(run)
    const reach = await reachServers(run, resolved)
    const udp = reach.answers.length > 0
    const b = udp ? await measureBehaviour(run, reach) : unknownBehaviour()
    let tcp: boolean | null = null
    let tls: boolean | null = null
    let tcpPorts: TcpPortProbe[] | null = null
    let udpRefused: boolean | null = null
    if (options.tcpTls === 'always' || (options.tcpTls !== 'never' && !udp)) ({ tcp, tls, tcpPorts, udpRefused } = await testTcpTls(run, resolved))
    const ipv6 = await testIpv6(run)

    const tcpOpenPorts = tcpPorts === null ? null : openTcpPorts(tcpPorts)
    const type = classicType({ udp, udpRefused, tcp, tls, tcpOpenPorts, behindNat: b.behindNat, mapping: b.mapping, filtering: b.filtering, variesByDestIp: b.variesByDestIp })
    const totalMs = Math.round(performance.now() - run.started)
    run.progress('done', `${type} in ${totalMs} ms`)
    return {
      nat: {
        type, behindNat: b.behindNat, mapping: b.mapping, filtering: b.filtering, hairpinning: b.hairpinning, alg: b.alg,
        portPreservation: b.portPreservation, portAllocation: b.portAllocation, mappingVariesByDestIp: b.variesByDestIp,
        mappingLifetimeS: b.lifetimeS, mappingLifetimeIsLowerBound: b.lifetimeIsLowerBound
      },
      publicAddress: b.publicAddress,
      localAddress: b.localAddress,
      udp, udpRefused, tcp, tls, tcpPorts, ipv6,
      servers: reach.serverReports,
      verdict: verdictFor({ type, udp, udpRefused, hairpinning: b.hairpinning, portAllocation: b.portAllocation, tcp, tls, tcpOpenPorts, alg: b.alg, mappingLifetimeS: b.lifetimeS, lifetimeIsLowerBound: b.lifetimeIsLowerBound }),
      timings: { ...run.timings, totalMs }
    }
  } finally {
    await run.closeAll()
  }
}
