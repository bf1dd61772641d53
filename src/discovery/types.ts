import type { Endpoint } from '../net/endpoint.js'
import type { TcpPortProbe } from './tcp-reach.js'

/** NAT mapping behaviour (RFC 4787 §4.1, measured as in RFC 5780 §4.3). */
export type MappingBehaviour = 'endpoint-independent' | 'address-dependent' | 'address-and-port-dependent' | 'unknown'

/** NAT filtering behaviour (RFC 4787 §5, measured as in RFC 5780 §4.4). */
export type FilteringBehaviour = 'endpoint-independent' | 'address-dependent' | 'address-and-port-dependent' | 'unknown'

/** The classic RFC 3489 label, derived from the measured behaviours (never measured directly). */
export type NatType =
  | 'open' | 'full-cone' | 'restricted-cone' | 'port-restricted-cone' | 'symmetric' | 'symmetric-firewall'
  | 'udp-blocked' | 'unknown'

/** How the NAT picks external ports for new mappings. */
export interface PortAllocation {
  /** `preserving`: external port = local port; `sequential`: a constant step (`delta`); `random`; `unknown`. */
  readonly pattern: 'preserving' | 'sequential' | 'random' | 'unknown'
  /** The step between consecutive new mappings, for `sequential`. */
  readonly delta: number | null
  /** The external ports observed, in order (for the record). */
  readonly samples: number[]
}

/** What one server answered during discovery. */
export interface ServerReport {
  /** As given (`HOST[:PORT]`). */
  readonly server: string
  readonly address: string | null
  readonly port: number | null
  readonly answered: boolean
  /** Whether it gave OTHER-ADDRESS (or CHANGED-ADDRESS) and so can run the RFC 5780 tests. */
  readonly rfc5780: boolean
  readonly rttMs: number | null
  readonly mapped: Endpoint | null
  readonly otherAddress: Endpoint | null
  readonly software: string | null
  /** Why it did not answer, when it did not. */
  readonly error: string | null
}

/** The full discovery report: the `natcheck --json` document, without `schemaVersion`. */
export interface NatReport {
  readonly nat: {
    readonly type: NatType
    /** Whether the mapped address differs from the local one (a NAT is in the path). Null when unknown. */
    readonly behindNat: boolean | null
    readonly mapping: MappingBehaviour
    readonly filtering: FilteringBehaviour
    readonly hairpinning: boolean | null
    /** An application-level gateway rewrote MAPPED-ADDRESS (it differs from XOR-MAPPED-ADDRESS). Null when untested. */
    readonly alg: boolean | null
    readonly portPreservation: boolean | null
    readonly portAllocation: PortAllocation
    /** The mapping changed when only the destination IP changed (from any servers, 5780-capable or not). */
    readonly mappingVariesByDestIp: boolean | null
    /** Measured with --lifetime: seconds a quiet mapping survived (a lower bound); otherwise a quick lower bound. */
    readonly mappingLifetimeS: number | null
    /** True when mappingLifetimeS is only the lower bound observed during the quick run. */
    readonly mappingLifetimeIsLowerBound: boolean
  }
  readonly publicAddress: Endpoint | null
  readonly localAddress: Endpoint | null
  /** UDP reached at least one server. */
  readonly udp: boolean
  /** STUN over TCP got out (null: not tested, because UDP worked). */
  readonly tcp: boolean | null
  readonly tls: boolean | null
  /** UDP to a server came back as ICMP port unreachable: UDP gets there, but no STUN server listens (null: not tested). */
  readonly udpRefused: boolean | null
  /** Plain TCP connects to each server on 443 and 80, made when UDP got no answer (null: not made). */
  readonly tcpPorts: TcpPortProbe[] | null
  readonly ipv6: { readonly available: boolean, readonly tested: boolean, readonly mapped: Endpoint | null }
  readonly servers: ServerReport[]
  readonly verdict: Verdict
  readonly timings: { readonly totalMs: number, readonly [phase: string]: number }
}

/** The plain-language conclusion. */
export interface Verdict {
  readonly summary: string
  /** Which kinds of peers can reach this host directly, by their NAT type. */
  readonly reachableFrom: NatType[]
  readonly advice: string[]
}
