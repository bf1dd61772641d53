import type { Endpoint } from '../net/endpoint.js'

/** A NAT's mapping behaviour (RFC 4787 §4.1) or filtering behaviour (RFC 4787 §5). */
export type SimBehaviour = 'endpoint-independent' | 'address-dependent' | 'address-and-port-dependent'

/** How a NAT picks the external port of a new mapping (RFC 4787 §4.2.1, §4.2.2). */
export type SimPortAllocation = 'preserving' | 'sequential' | 'random'

/** Options of one simulated NAT (see SimNetwork.addNat). Times in ms. */
export interface SimNatOptions {
  /** Mapping behaviour, RFC 4787 §4.1: which outbound flows share one external port. */
  readonly mapping: SimBehaviour
  /** Filtering behaviour, RFC 4787 §5: which inbound packets to an external port get in. */
  readonly filtering: SimBehaviour
  /**
   * Hairpinning, RFC 4787 §6 (default false): a LAN packet to the NAT's own public ip:port is translated (its source
   * becomes the sender's external mapping) and delivered back into the LAN; without it such packets are dropped.
   */
  readonly hairpin?: boolean
  /**
   * Whether hairpinned packets pass the inbound filter like packets from outside (default false: they do not, as in
   * the lab's nftables rules, where hairpinned packets are DNATed whatever the filtering behaviour).
   */
  readonly hairpinFiltering?: boolean
  /**
   * External port of a new mapping (default 'preserving'). `preserving`: the internal port when it is free, else the
   * next free one above it; `sequential`: the previous sequential port plus `sequentialStep`, starting at
   * `sequentialBase`; `random`: uniform over `portRange` from the network's seeded PRNG.
   */
  readonly portAllocation?: SimPortAllocation
  /** Distance between consecutive sequential allocations (default 1; a non-zero integer). */
  readonly sequentialStep?: number
  /** First port of sequential allocation (default 50000 as the lab's symmetric-sequential, or portRange's low end if 50000 is outside it). */
  readonly sequentialBase?: number
  /** External ports the NAT allocates from, inclusive (default [1024, 65535]); preserved ports may lie outside. */
  readonly portRange?: readonly [number, number]
  /**
   * A mapping (and each remote it sent to, for filtering) idle this long is gone (default 120 000 ms, the RFC 4787
   * REQ-5 minimum). Outbound packets refresh it (REQ-6).
   */
  readonly mappingTimeoutMs?: number
  /** Whether admitted inbound packets refresh the mapping too (default true, as Linux conntrack). RFC 4787 REQ-6. */
  readonly inboundRefresh?: boolean
  /** Drop every outbound UDP packet (a firewall that lets no UDP out). Default false. */
  readonly udpBlocked?: boolean
}

/** Why the simulator dropped a packet. */
export const SIM_DROP_REASONS = [
  'loss', 'filtered', 'no-route', 'no-listener', 'udp-blocked', 'mapping-expired', 'hairpin-disabled'
] as const

/**
 * Why the simulator dropped a packet.
 * - `loss`: the random loss of SimNetworkOptions.loss.
 * - `filtered`: a NAT's inbound filter refused it (no mapping on that port, or the sender is not a permitted remote).
 * - `no-route`: nothing has the destination address where the packet is (a private address seen from outside, an
 *   unknown IP, a malformed endpoint).
 * - `no-listener`: the destination host has no socket on that port (a real host would answer ICMP port unreachable).
 * - `udp-blocked`: the sender's NAT blocks outbound UDP.
 * - `mapping-expired`: it reached an external port whose mapping timed out.
 * - `hairpin-disabled`: a LAN host sent to its own NAT's public address and the NAT does not hairpin.
 */
export type SimDropReason = typeof SIM_DROP_REASONS[number]

/** Counters of a SimNetwork (they only grow). */
export interface SimStats {
  /** Datagrams handed to SimSocket.send on an open network. */
  readonly sent: number
  /** Datagrams handed to a socket's handler. */
  readonly delivered: number
  /** Datagrams dropped, by reason. */
  readonly dropped: Readonly<Record<SimDropReason, number>>
  /** Datagrams scheduled and not yet arrived. */
  readonly inFlight: number
}

/** One trace event, for debugging tests (SimNetworkOptions.onPacket). `at` is the network clock. */
export type SimPacketEvent =
  /** A socket sent a datagram (before any NAT). */
  | { readonly type: 'send', readonly at: number, readonly from: Endpoint, readonly to: Endpoint, readonly bytes: number }
  /** A datagram reached a socket; `from` is the source as the receiver sees it. */
  | { readonly type: 'deliver', readonly at: number, readonly from: Endpoint, readonly to: Endpoint, readonly bytes: number }
  /** A datagram was dropped; `from`/`to` as they were where it was dropped (after any translation). */
  | {
    readonly type: 'drop', readonly at: number, readonly reason: SimDropReason, readonly from: Endpoint, readonly to: Endpoint,
    readonly bytes: number, readonly nat?: string, readonly detail?: string
  }
  /** A NAT created a mapping; `remote` is the destination that created it. */
  | { readonly type: 'mapping', readonly at: number, readonly nat: string, readonly internal: Endpoint, readonly external: Endpoint, readonly remote: Endpoint }

/** Options of SimNetwork. Times in ms. */
export interface SimNetworkOptions {
  /** One-way delay of every datagram, sender to destination socket (default 1). */
  readonly latencyMs?: number
  /** Extra delay drawn uniformly from [0, jitterMs) per datagram (default 0); jitter can reorder datagrams. */
  readonly jitterMs?: number
  /** Probability (0-1) that a datagram is lost (default 0). */
  readonly loss?: number
  /** Seed of the PRNG behind loss, jitter and random port allocation (default 1): same seed, same run. */
  readonly seed?: number
  /** Clock for mapping lifetimes (default Date.now). Deliveries themselves use real timers. */
  readonly now?: () => number
  /** Trace hook: called for every send, delivery, drop and new mapping. Must not throw. */
  readonly onPacket?: (event: SimPacketEvent) => void
}
