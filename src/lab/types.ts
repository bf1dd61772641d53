/**
 * Public types of the NAT lab: NAT behaviours, options and the description of a running lab.
 *
 * Behaviour names follow RFC 4787 §4.1 (mapping: EIM / ADM / APDM) and §5 (filtering: EIF / ADF /
 * APDF), with the classic RFC 3489 names used as labels.
 */

/** Every NAT behaviour a lab site can emulate, in a stable order. */
export const LAB_NAT_TYPES = [
  'none',
  'full-cone',
  'restricted-cone',
  'port-restricted-cone',
  'symmetric',
  'symmetric-sequential',
  'udp-blocked',
  'tcp-only'
] as const

/**
 * A site's NAT behaviour.
 * - `none`: the host has a public address; the site router only routes (no NAT, no filtering).
 * - `full-cone`: endpoint-independent mapping and filtering (EIM + EIF).
 * - `restricted-cone`: EIM + address-dependent filtering (ADF).
 * - `port-restricted-cone`: EIM + address-and-port-dependent filtering (APDF).
 * - `symmetric`: address-and-port-dependent mapping (APDM) with random external ports, APDF.
 * - `symmetric-sequential`: APDM with external ports allocated +1 per new mapping, APDF.
 * - `udp-blocked`: all UDP out is dropped; only TCP to ports 80 and 443 goes out (NATed).
 * - `tcp-only`: all UDP is dropped; outbound TCP to any port goes out (NATed, source port kept when free) and a
 *   stateful firewall lets in only packets of connections seen leaving (so TCP simultaneous open can work).
 */
export type LabNatType = typeof LAB_NAT_TYPES[number]

/** The mapping behaviour (RFC 4787 §4.1) each NAT type implements, `null` when there is no UDP NAT. */
export const LAB_NAT_MAPPING = {
  none: null,
  'full-cone': 'endpoint-independent',
  'restricted-cone': 'endpoint-independent',
  'port-restricted-cone': 'endpoint-independent',
  symmetric: 'address-and-port-dependent',
  'symmetric-sequential': 'address-and-port-dependent',
  'udp-blocked': null,
  'tcp-only': null
} as const satisfies Record<LabNatType, string | null>

/** The filtering behaviour (RFC 4787 §5) each NAT type implements, `null` when there is no UDP NAT. */
export const LAB_NAT_FILTERING = {
  none: null,
  'full-cone': 'endpoint-independent',
  'restricted-cone': 'address-dependent',
  'port-restricted-cone': 'address-and-port-dependent',
  symmetric: 'address-and-port-dependent',
  'symmetric-sequential': 'address-and-port-dependent',
  'udp-blocked': null,
  'tcp-only': null
} as const satisfies Record<LabNatType, string | null>

/** The lab's nodes, each one network namespace. `a` and `b` are the hosts behind the site routers. */
export const LAB_NODES = ['inet', 'server', 'router-a', 'a', 'router-b', 'b'] as const

/** A lab node name: `inet` (the internet router), `server`, `router-a`, `a`, `router-b`, `b`. */
export type LabNode = typeof LAB_NODES[number]

/** A site of the lab. */
export type LabSite = 'a' | 'b'

/** Options of {@link Lab.up}. */
export interface LabOptions {
  /** NAT behaviour of site A. */
  natA: LabNatType
  /** NAT behaviour of site B. */
  natB: LabNatType
  /**
   * Whether the site routers hairpin (RFC 4787 §6): a packet from the LAN to the router's own public
   * address and a mapped port is sent back to the internal endpoint of that mapping. Default `false`.
   */
  hairpin?: boolean
  /**
   * UDP mapping lifetime in seconds (the conntrack UDP timeouts of the site routers and the timeout of
   * the lab's mapping tables). Refreshed by outbound traffic. Default 120 (RFC 4787 REQ-5 minimum).
   */
  udpTimeoutS?: number
  /**
   * Prefix of every namespace name, e.g. `nk-1f2e-`. Letters, digits, `-`, `_`, `.`; at most 20
   * characters. Default `nk-` plus 4 random hex digits and `-`.
   */
  prefix?: string
  /**
   * Start natkit's servers in the server namespace: an RFC 5780 STUN server on both public addresses, a TURN
   * relay and the rendezvous (see `services.ts` for the ports). They are recorded in the lab's state and stopped
   * by {@link Lab.down} / `labDown`. Default `false` (tests start their own); the CLI's `lab up` turns it on.
   */
  servers?: boolean
  /**
   * Sites whose router runs a real miniupnpd (UPnP IGD v2, NAT-PMP, PCP on the LAN side), e.g. `['a']`. NAT sites
   * only. Default none. See miniupnpd.ts for what it can and cannot grant in the lab.
   */
  upnp?: LabSite[]
}

/** One site as built: its NAT behaviour, namespaces and addresses. */
export interface LabSiteInfo {
  readonly site: LabSite
  readonly nat: LabNatType
  readonly hairpin: boolean
  /** Whether the site router runs miniupnpd. */
  readonly upnp: boolean
  /** Namespace of the site router. */
  readonly routerNs: string
  /** Namespace of the host behind it. */
  readonly hostNs: string
  /** The router's public (WAN) address. */
  readonly wanIp: string
  /** The host's own address: private behind a NAT, public for `none`. */
  readonly hostIp: string
  /** The host's LAN in CIDR notation. */
  readonly lanCidr: string
  /** The router's address on the LAN (the host's default gateway). */
  readonly lanGateway: string
  /** The address the internet sees for this host: `wanIp` behind a NAT, `hostIp` for `none`. */
  readonly publicIp: string
}

/** Description of a lab: enough to drive it from another process. */
export interface LabInfo {
  readonly prefix: string
  readonly udpTimeoutS: number
  /** Namespace name of every node. */
  readonly namespaces: Readonly<Record<LabNode, string>>
  /** The server host: two public addresses, as RFC 5780 CHANGE-REQUEST needs. */
  readonly server: { readonly ns: string; readonly primaryIp: string; readonly secondaryIp: string }
  readonly a: LabSiteInfo
  readonly b: LabSiteInfo
}
