import type { DatagramSocket } from '../net/udp.js'
import type { Candidate } from './candidate.js'
import type { CandidatePair } from './ice-core/check-list.js'
import type { IceCoreOptions } from './ice-core/types.js'
import type { PortMappingOptions, TurnServerConfig } from './gather.js'
import type { MdnsResolver } from './mdns.js'
import type { MdnsPublisher } from './mdns-responder.js'
import type { PortPredictionOptions } from './port-prediction.js'
import type { BirthdaySprayOptions } from './spray-plan.js'

/** The path data currently takes. */
export interface PathInfo {
  readonly type: 'direct' | 'relay'
  readonly local: Candidate
  readonly remote: Candidate
  readonly rttMs: number | null
  /** The component this path carries (1 unless the agent runs RTP and RTCP apart). */
  readonly component: number
}

/**
 * Options for Agent.create. The role, check pacing, check retransmission, keepalive and consent freshness fields are
 * the ICE core's own (IceCoreOptions), passed through as they are.
 */
export interface AgentOptions extends Pick<IceCoreOptions, 'role' | 'checkIntervalMs' | 'initialBurst' | 'checkRetransmit' | 'keepaliveMs' | 'consentIntervalMs' | 'consentTimeoutMs'> {
  /** Use this socket for host candidates (the agent does not close it). Default: a new one on `bindAddress`. */
  readonly socket?: DatagramSocket
  readonly bindAddress?: string
  /** Also offer loopback addresses as host candidates (tests on one machine). */
  readonly includeLoopback?: boolean
  readonly stunServers?: readonly string[]
  readonly turnServers?: readonly TurnServerConfig[]
  /** 'relay' offers only relayed candidates (like WebRTC's iceTransportPolicy: 'relay'). */
  readonly policy?: 'all' | 'relay'
  /** Gathering waits at most this long for STUN/TURN answers (default 1500 ms); later relayed candidates trickle. */
  readonly gatherTimeoutMs?: number
  /** TCP/TLS TURN attempts start this long after the UDP ones unless UDP allocated first (default 250 ms, RFC 8305's connection attempt delay). */
  readonly happyEyeballsDelayMs?: number
  /**
   * Be an ICE-lite agent (RFC 8445 §2.5, §6.1.1; for a server with a public address): host candidates only, no checks
   * of its own, always controlled; a pair is used once the full peer nominates it (USE-CANDIDATE on a check).
   */
  readonly lite?: boolean
  /**
   * Ask the gateway to forward a public port to this agent's UDP socket (PCP, NAT-PMP or UPnP IGD; src/portmap) and
   * offer it as a server-reflexive candidate (RFC 8445 §5.1.1.2 lets an agent learn one by any means) with local
   * preference 65535, so it ranks above the STUN-learned ones. Off by default: it sends to the default gateway.
   * Bounded by the gathering budget; it never holds back the host candidates (it trickles), but checks wait for it up
   * to `checksWaitMs` (see {@link PortMappingOptions}). The lease is renewed while the agent lives and removed on close.
   */
  readonly portMapping?: boolean | PortMappingOptions
  /**
   * Port prediction for a NAT that gives each new destination the next port in a fixed step (opt-in): the agent
   * measures its socket's mappings towards the STUN/TURN servers (all four addresses of an RFC 5780 server), and when
   * the steps agree it offers the next ports as server-reflexive candidates (local preference below the STUN-learned
   * ones), so a peer behind a port-restricted cone opens its filter for the port the flow towards it will get. The
   * peer pays one paced check per port (see {@link PortPredictionOptions}). The outcome is a `prediction` gathering
   * attempt with a reason code.
   */
  readonly portPrediction?: boolean | PortPredictionOptions
  /**
   * Birthday spray for a symmetric NAT with random ports × an endpoint-independent mapping behind a port-restricted
   * filter (opt-in, at both ends; see birthday-spray.ts): each side measures its mapping like port prediction does and
   * announces it (`natkit/spray` through the session's signalling); the symmetric side then opens N sockets towards
   * the cone's public endpoint and the cone side probes M random ports of the symmetric side's address, paced and
   * capped (see {@link BirthdaySprayOptions}); the first socket reached becomes an ordinary checked pair. The outcome,
   * with the success probability computed beforehand, is a `spray` gathering attempt with a reason code.
   */
  readonly birthdaySpray?: boolean | BirthdaySprayOptions
  /**
   * Resolves remote host candidates given as mDNS `.local` names (what browsers send). Default: multicast DNS
   * (`resolveMdns`, RFC 6762). A seam for tests and for apps that resolve names their own way.
   */
  readonly mdnsResolver?: MdnsResolver
  /** How long an mDNS name may take to resolve before its candidate is dropped (default 1000 ms). */
  readonly mdnsTimeoutMs?: number
  /**
   * Signal host candidates as random `<uuid>.local` names and answer multicast DNS queries for them, as browsers do
   * (draft-ietf-mmusic-mdns-ice-candidates §3.1): peers off the local link never learn the host addresses (they reach
   * this agent through server-reflexive, relayed or peer-reflexive candidates). What gather() returns and `candidate`
   * events carry are the named candidates (signal those); `local` keeps the real addresses. The related address of
   * server-reflexive and relayed candidates is signalled as 0.0.0.0:0. Off by default: it sends multicast.
   */
  readonly mdnsHostCandidates?: boolean
  /** Publishes the names (default: multicast DNS, `publishMdns`). A seam for tests and apps with a responder of their own. */
  readonly mdnsPublisher?: MdnsPublisher
  /**
   * Components (RFC 8445 §4): 1 (default: one flow, or RTP and RTCP multiplexed per RFC 5761), or 2 for RTP and RTCP on
   * separate sockets, each with its own candidates, checks and selected pair. With `rtcpMux: true` it is one.
   */
  readonly components?: 1 | 2
  /** RTP and RTCP share component 1 (RFC 5761, `a=rtcp-mux` on both sides): `components: 2` then runs as one. */
  readonly rtcpMux?: boolean
  /** Sockets for components 2 and up, in order (the agent does not close them). Default: new ones on `bindAddress`. */
  readonly componentSockets?: readonly DatagramSocket[]
  readonly signal?: AbortSignal
}

/** What became of a remote candidate given as an mDNS name. */
export interface MdnsResolution {
  readonly name: string
  readonly port: number
  /** The address it resolved to, or null when it did not resolve in time (the pair is then learnt as prflx). */
  readonly address: string | null
  readonly ms: number
}

/** Events of Agent. */
export interface AgentEvents {
  /** A local candidate gathered after gather() returned (trickle it to the peer). */
  candidate: [candidate: Candidate]
  /** A local candidate stopped working (its relay moved elsewhere): tell the peer to drop it. */
  'candidate-removed': [candidate: Candidate]
  /** Every gathering attempt has finished (signal end-of-candidates to the peer). */
  'gathering-complete': []
  /** The data path of a component changed (first path, relay → direct upgrade, direct → relay fallback). */
  path: [path: PathInfo, previous: PathInfo | undefined]
  /** An application datagram from the peer, with its component (1 unless RTP and RTCP run apart). */
  message: [data: Buffer, component: number]
  /** A check-list pair finished (for progress output). */
  pair: [pair: CandidatePair]
  closed: []
}
