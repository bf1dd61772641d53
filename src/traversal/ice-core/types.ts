import type { Endpoint } from '../../net/endpoint.js'
import type { RetransmitOptions } from '../../stun/index.js'
import type { Candidate } from '../candidate.js'
import type { CandidatePair, CheckList } from './check-list.js'
import type { IceRole } from './check-messages.js'
import type { CheckTransactions } from './transactions.js'

/** One generation of local ICE credentials (RFC 8445 §5.3) with the short-term key derived from the password. */
export interface IceCredentials {
  readonly ufrag: string
  readonly pwd: string
  readonly key: Buffer
}

/** The agent's overall state (RFC 8445 §6.1.3's check-list states, seen across components). */
export type IceCoreState = 'new' | 'checking' | 'connected' | 'completed' | 'failed'

/**
 * What the sans-IO core asks its adapter to do. `base` names the local base a datagram leaves from (the
 * candidateKey of a host or relayed candidate); the adapter owns the socket or TURN allocation behind it.
 */
export type IceAction =
  | { readonly type: 'send', readonly base: string, readonly to: Endpoint, readonly data: Buffer }
  /** An application datagram (not STUN, RFC 7983) from a checked pair, as received. */
  | { readonly type: 'data', readonly component: number, readonly from: Endpoint, readonly data: Buffer }
  /** The selected pair of a component changed (first path, upgrade, fallback after consent loss). */
  | { readonly type: 'path', readonly component: number, readonly pair: CandidatePair, readonly previous: CandidatePair | undefined }
  /** A pair's check finished (succeeded or failed), for progress output. */
  | { readonly type: 'pair', readonly pair: CandidatePair }
  | { readonly type: 'state', readonly state: IceCoreState }

/**
 * Options of the sans-IO core; every time is in ms on the clock the adapter passes as `now`. The public AgentOptions
 * picks the role, pacing, retransmission, keepalive and consent fields from here, doc comments included.
 */
export interface IceCoreOptions {
  /** The clock reading when the agent was made: pair timestamps (firstCheckAt, endedAt) are relative to it. */
  readonly now: number
  /**
   * The role to start in (default controlling; an ICE-lite agent is always controlled). A role conflict with the peer
   * may switch it (RFC 8445 §7.3.1.1).
   */
  readonly role?: IceRole
  readonly lite?: boolean
  /** Components (RFC 8445 §4): 1 (default; RTP and RTCP multiplexed, RFC 5761) or 2 (RTP and RTCP apart). */
  readonly components?: number
  /** ICE-CONTROLLING/-CONTROLLED tie-breaker (default random 64 bits). */
  readonly tiebreaker?: bigint
  /** Local credentials (default fresh random ones). */
  readonly credentials?: IceCredentials
  /** Ta: time between new checks (default 10 ms; RFC 8445 §14.2 uses 50 ms for the Internet at large). */
  readonly checkIntervalMs?: number
  /**
   * Checks sent at once when checking starts, before pacing (default 8). Both peers start together, so every pair's
   * first packets cross in the first round trip and the NAT holes open at once; a handful of small datagrams is no
   * congestion risk. 1 gives plain RFC pacing.
   */
  readonly initialBurst?: number
  /**
   * Check retransmissions (default RTO 50 ms, 8 sends, Rm 4, giving up after ~6.5 s): a punched hole is often open on
   * the first retransmission.
   */
  readonly checkRetransmit?: RetransmitOptions
  /** Keepalive (Binding indication) interval on the selected path (default 15 s, below every common NAT binding lifetime). */
  readonly keepaliveMs?: number
  /** Consent freshness (RFC 7675): Tc, a check every interval (default 5 s, each interval randomized 0.8-1.2 × Tc). */
  readonly consentIntervalMs?: number
  /** Consent freshness (RFC 7675): consent is lost after this long without a response (default 30 s). */
  readonly consentTimeoutMs?: number
  /** Random numbers in [0, 1) for consent intervals (default Math.random): a seam for deterministic tests. */
  readonly random?: () => number
}

/** The core's state, shared by the concern modules (checks, nomination, consent, app data). */
export interface IceState {
  readonly o: Required<Omit<IceCoreOptions, 'credentials' | 'tiebreaker' | 'role' | 'checkRetransmit'>> & { readonly checkRetransmit: RetransmitOptions }
  readonly epoch: number
  credentials: IceCredentials
  /** The credentials before an ICE restart, still accepted until a pair checked with the new ones succeeds. */
  previousCredentials: IceCredentials | undefined
  remoteUfrag: string | undefined
  remoteKey: Buffer | undefined
  /** After restart(), checks wait for the peer's new credentials. */
  awaitingRemoteCredentials: boolean
  remoteLite: boolean
  remoteGatheringComplete: boolean
  localGatheringComplete: boolean
  role: IceRole
  readonly tiebreaker: bigint
  checks: CheckList
  readonly local: Candidate[]
  readonly remote: Candidate[]
  /** Local bases by candidateKey: host sockets and relayed allocations. */
  readonly bases: Map<string, Candidate>
  /** The selected pair of each component. */
  readonly selected: Map<number, CandidatePair>
  /** `base|address|port` of every pair an authenticated check proved, in either direction (kept across restarts). */
  readonly proven: Set<string>
  readonly tx: CheckTransactions
  /** Per-check retransmission tuned to a measured RTT (tuneToRtt), over the defaults. */
  checkTiming: RetransmitOptions
  state: IceCoreState
  /** When the next paced check may go (undefined: checks have not started). */
  nextCheckAt: number | undefined
  nextConsentAt: number | undefined
  nextKeepaliveAt: number | undefined
}

/** The key of a (base, remote address) route, as in IceState.proven. */
export function routeKey (base: string, from: Endpoint): string {
  return `${base}|${from.address}|${from.port}`
}
