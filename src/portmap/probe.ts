/**
 * Ask the default gateway, in parallel and each bounded in time, whether it speaks PCP, NAT-PMP and UPnP IGD, what
 * external address each reports and, when asked, whether it grants a mapping; mappings granted here are removed
 * again before the probe returns (a probe leaves nothing behind).
 */
import type { Endpoint } from '../net/endpoint.js'
import { defaultGateway, localAddressTowards } from './gateway.js'
import { verifyMappingReachable } from './verify.js'
import { PORTMAP_PROTOCOLS, removeMapping, tryProtocol, type GatewayContext, type MapRequest, type PortMapProtocol, type ProtocolOutcome } from './client.js'

/** Options of {@link probePortMapping}. */
export interface PortMapProbeOptions {
  /** Gateway address (default: the IPv4 default gateway). */
  gateway?: string
  /** Per-protocol deadline, ms (default 2000). */
  timeoutMs?: number
  /**
   * Also ask each protocol for this mapping (then removed again). Protocol number i (in `protocols` order) maps
   * `internalPort + i` (and `externalPort + i`): a gateway keeps one table for all of them (miniupnpd does), so one
   * port mapped three times is one entry that the last protocol takes over, and the others can no longer remove it.
   */
  map?: MapRequest
  /** Protocols to try (default all). */
  protocols?: readonly PortMapProtocol[]
  /** PCP / NAT-PMP port (default 5351). */
  port?: number
  /**
   * Check each granted mapping from outside through this RFC 5780 STUN server before removing it. A promise lets the
   * probe run beside NAT discovery and wait for the server discovery finds (`undefined`: none, skip the check).
   */
  verifyVia?: Endpoint | Promise<Endpoint | undefined>
}

/** What the gateway said, per protocol. */
export interface PortMapReport {
  gateway: string | null
  localIp: string | null
  /** Per protocol; `reachable` is whether the STUN server's changed-address answer came in through the mapping
   * (null: no mapping, or no server to verify with); `removed` whether the mapping was removed again. */
  protocols: Array<ProtocolOutcome & { reachable: boolean | null, removed: boolean | null }>
  /** The protocols the gateway answered in. */
  speaks: PortMapProtocol[]
  /** The first external address any protocol reported. */
  externalIp: string | null
  ms: number
}

/** Probe the gateway. Never throws for network outcomes; bounded by about 2 × `timeoutMs` (probe, then removal). */
export async function probePortMapping (o: PortMapProbeOptions = {}): Promise<PortMapReport> {
  const t0 = performance.now()
  const gateway = o.gateway ?? await defaultGateway()
  const localIp = gateway === undefined ? undefined : await localAddressTowards(gateway)
  if (gateway === undefined || localIp === undefined) {
    return { gateway: gateway ?? null, localIp: null, protocols: [], speaks: [], externalIp: null, ms: Math.round(performance.now() - t0) }
  }
  const ctx: GatewayContext = { gateway, localIp, timeoutMs: o.timeoutMs ?? 2000, port: o.port }
  const map = o.map
  const outcomes = await Promise.all((o.protocols ?? PORTMAP_PROTOCOLS).map(async (p, i) => await tryProtocol(p, ctx, map === undefined
    ? undefined
    : { ...map, internalPort: map.internalPort + i, ...(map.externalPort === undefined ? {} : { externalPort: map.externalPort + i }) })))
  const reachable: Array<boolean | null> = []
  const via = outcomes.some((r) => r.mapping !== null) ? await o.verifyVia : undefined
  for (const r of outcomes) {
    reachable.push(r.mapping === null || via === undefined
      ? null
      : await verifyMappingReachable({ server: via, internalPort: r.mapping.internalPort, externalPort: r.mapping.externalPort, localAddress: localIp, timeoutMs: ctx.timeoutMs }))
  }
  const protocols = await Promise.all(outcomes.map(async (r, i) => ({ ...r, reachable: reachable[i] ?? null, removed: r.mapping === null ? null : await removeMapping(ctx, r.mapping) })))
  const speaks = protocols.filter((p) => p.speaks).map((p) => p.protocol)
  return { gateway, localIp, protocols, speaks, externalIp: protocols.find((p) => p.externalIp !== null)?.externalIp ?? null, ms: Math.round(performance.now() - t0) }
}
