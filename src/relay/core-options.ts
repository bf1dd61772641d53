import { isIP } from 'node:net'
import { InvalidArgumentError } from '../errors.js'
import type { Endpoint } from '../net/endpoint.js'
import type { PasswordAlgorithmName } from '../stun/index.js'
import type { CredentialStoreOptions } from './credentials.js'
import type { RelayMetrics } from './metrics.js'

/** Options for TurnServerCore (the sans-IO TURN server). Times in seconds unless named `…Ms`. */
export interface TurnServerCoreOptions {
  /** REALM (RFC 8489 §14.9). Required. */
  readonly realm: string
  /** Static long-term users, name → password. */
  readonly users?: Readonly<Record<string, string>> | ReadonlyMap<string, string>
  /** TURN REST API shared secret(s) (coturn `--use-auth-secret --static-auth-secret`). */
  readonly authSecret?: string | readonly string[]
  /** More users as long-term keys, looked up by name (CredentialStoreOptions.keySource; e.g. coturn's Redis user db). */
  readonly keySource?: CredentialStoreOptions['keySource']
  /** Separator in REST usernames (default ':'). */
  readonly restSeparator?: string
  /** REST usernames whose expiry is further ahead than this many seconds are refused (default 86,400). */
  readonly restMaxTtlS?: number
  /** Password algorithms offered in PASSWORD-ALGORITHMS, in preference order (default ['md5', 'sha256']). RFC 8489 §14.11. */
  readonly passwordAlgorithms?: readonly PasswordAlgorithmName[]
  /** Secret for the stateless nonces (default random). */
  readonly nonceSecret?: Uint8Array
  /** Nonce validity (default 600 s); after it, 438 Stale Nonce. */
  readonly nonceLifetime?: number
  /** IPv4 address relay sockets bind to (default: none, so IPv4 allocations get 440). */
  readonly relayAddress?: string
  /** IPv6 address relay sockets bind to (default: none). */
  readonly relayAddress6?: string
  /** Public IPv4 advertised in XOR-RELAYED-ADDRESS instead of relayAddress (coturn -X). */
  readonly externalAddress?: string
  /** Public IPv6 advertised instead of relayAddress6. */
  readonly externalAddress6?: string
  /** Relay port range, inclusive (default [49152, 65535], as coturn). */
  readonly portRange?: readonly [number, number]
  /** Default allocation lifetime (RFC 8656 §3.2: 600 s). */
  readonly defaultLifetime?: number
  /** Maximum allocation lifetime (RFC 8656 §7.2 recommends 3600 s). */
  readonly maxLifetime?: number
  /** Permission lifetime (RFC 8656 §9: 300 s, not configurable there; here for tests). */
  readonly permissionLifetime?: number
  /** Channel binding lifetime (RFC 8656 §12: 600 s). */
  readonly channelLifetime?: number
  /** Time after a channel expires during which its number and peer may not be rebound differently (RFC 8656 §12: 300 s). */
  readonly channelRebindGuard?: number
  /**
   * Allocations per username (default: no per-user limit, as coturn without `user-quota`); over it, 486. A shared
   * static credential (one web app's users all on one TURN user) is the common WebRTC set-up, so the default
   * protection is the total quota and the per-IP rates, not a per-user cap.
   */
  readonly userQuota?: number
  /** Allocations in total (default 10000); over it, 486. */
  readonly totalQuota?: number
  /** Permissions per allocation (default 256); over it, 508. */
  readonly maxPermissions?: number
  /** Channels per allocation (default 4096, the whole range); over it, 508. */
  readonly maxChannels?: number
  /** RFC 6062 peer TCP connections per allocation (default 64); over it, 508 / refused. */
  readonly maxTcpConnections?: number
  /** RFC 6062 §5.2/§5.3: how long a peer connection waits for ConnectionBind (30 s). */
  readonly connectionBindTimeout?: number
  /**
   * The RFC 6062 CONNECTION-IDs this server issues are ≡ `index` (mod `of`) (default { index: 0, of: 1 }: any). Relay
   * worker processes get disjoint classes, so whoever accepts a client data connection can tell from the
   * ConnectionBind's CONNECTION-ID which worker holds the peer connection (connectionIdOwner).
   */
  readonly connectionIds?: { readonly index: number, readonly of: number }
  /** Per-allocation relay bandwidth cap in bytes per second, both directions together (default 0: unlimited). */
  readonly bandwidth?: number
  /** Burst for the bandwidth cap in bytes (default: one second's worth, at least 64 KiB). */
  readonly bandwidthBurst?: number
  /** Failed authentications allowed per source IP per second (default 1), with this burst (default 20). */
  readonly authFailureRate?: number
  readonly authFailureBurst?: number
  /** How long answers are cached for retransmitted requests (default 40 s ≈ Ti, RFC 8489 §6.2.1). */
  readonly responseCacheTtl?: number
  /** Cached responses at most (default 10000). */
  readonly maxCachedResponses?: number
  /** Peer policy: CIDRs to allow despite the deny list. */
  readonly allowPeer?: readonly string[]
  /** Peer policy: extra CIDRs to deny. */
  readonly denyPeer?: readonly string[]
  /** The server's own addresses (denied as peers unless allowed). The adapter fills this in. */
  readonly ownAddresses?: readonly string[]
  /** The server's listener, admin and rendezvous endpoints (always denied as peers). The adapter fills this in. */
  readonly ownEndpoints?: readonly Endpoint[]
  /** Every local interface address, standing in for a wildcard listener (PeerPolicy). The adapter fills this in. */
  readonly localAddresses?: readonly string[]
  /** Honour DONT-FRAGMENT (default true: Linux sets DF on UDP by default with PMTU discovery). If false, 420. */
  readonly dontFragment?: boolean
  /** SOFTWARE attribute on responses (default none). */
  readonly software?: string
  /** Accept RFC 5766 channel numbers 0x4000-0x7FFF (default true, as coturn); false: RFC 8656's 0x4000-0x4FFF. */
  readonly legacyChannels?: boolean
  /** Metrics sink (default: an InMemoryRelayMetrics the core creates). */
  readonly metrics?: RelayMetrics
}

/** TurnServerCoreOptions with every default filled in. */
export interface ResolvedCoreOptions {
  readonly realm: string
  readonly passwordAlgorithms: readonly PasswordAlgorithmName[]
  readonly nonceLifetime: number
  readonly relayAddress: string | undefined
  readonly relayAddress6: string | undefined
  readonly externalAddress: string | undefined
  readonly externalAddress6: string | undefined
  readonly portRange: readonly [number, number]
  readonly defaultLifetime: number
  readonly maxLifetime: number
  readonly permissionLifetime: number
  readonly channelLifetime: number
  readonly channelRebindGuard: number
  readonly userQuota: number
  readonly totalQuota: number
  readonly maxPermissions: number
  readonly maxChannels: number
  readonly maxTcpConnections: number
  readonly connectionBindTimeout: number
  readonly connectionIds: { readonly index: number, readonly of: number }
  readonly bandwidth: number
  readonly bandwidthBurst: number
  readonly authFailureRate: number
  readonly authFailureBurst: number
  readonly responseCacheTtl: number
  readonly maxCachedResponses: number
  readonly dontFragment: boolean
  readonly software: string | undefined
  readonly legacyChannels: boolean
}

function positive (name: string, value: number | undefined, fallback: number, allowZero = false): number {
  if (value === undefined) return fallback
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0 || (!allowZero && value === 0)) {
    throw new InvalidArgumentError(`${name} must be a ${allowZero ? 'non-negative' : 'positive'} number, got ${String(value)}`)
  }
  return value
}

function ipOf (name: string, value: string | undefined, family: 4 | 6): string | undefined {
  if (value === undefined) return undefined
  if (isIP(value) !== family) throw new InvalidArgumentError(`${name} must be an IPv${family} literal, got ${JSON.stringify(value)}`)
  return value
}

/** Validate and fill defaults. Throws InvalidArgumentError saying what to fix. */
export function resolveCoreOptions (o: TurnServerCoreOptions): ResolvedCoreOptions {
  if (typeof o.realm !== 'string' || o.realm === '') throw new InvalidArgumentError('realm is required: pass e.g. { realm: "example.org" }')
  const range = o.portRange ?? [49152, 65535]
  if (!Number.isInteger(range[0]) || !Number.isInteger(range[1]) || range[0] < 1 || range[1] > 65535 || range[0] > range[1]) {
    throw new InvalidArgumentError(`portRange must be [low, high] within 1-65535 with low <= high, got ${JSON.stringify(range)}`)
  }
  const algorithms = o.passwordAlgorithms ?? ['md5', 'sha256']
  if (algorithms.length === 0 || algorithms.some(a => a !== 'md5' && a !== 'sha256')) {
    throw new InvalidArgumentError('passwordAlgorithms must list "md5" and/or "sha256"')
  }
  const defaultLifetime = positive('defaultLifetime', o.defaultLifetime, 600)
  const maxLifetime = positive('maxLifetime', o.maxLifetime, 3600)
  if (maxLifetime < defaultLifetime) throw new InvalidArgumentError(`maxLifetime (${maxLifetime}) must be at least defaultLifetime (${defaultLifetime})`)
  const bandwidth = positive('bandwidth', o.bandwidth, 0, true)
  const ids = o.connectionIds ?? { index: 0, of: 1 }
  if (!Number.isInteger(ids.of) || ids.of < 1 || ids.of > 1024 || !Number.isInteger(ids.index) || ids.index < 0 || ids.index >= ids.of) {
    throw new InvalidArgumentError(`connectionIds must be { index, of } with 1 <= of <= 1024 and 0 <= index < of, got ${JSON.stringify(ids)}`)
  }
  return {
    realm: o.realm,
    passwordAlgorithms: algorithms,
    nonceLifetime: positive('nonceLifetime', o.nonceLifetime, 600),
    relayAddress: ipOf('relayAddress', o.relayAddress, 4),
    relayAddress6: ipOf('relayAddress6', o.relayAddress6, 6),
    externalAddress: ipOf('externalAddress', o.externalAddress, 4),
    externalAddress6: ipOf('externalAddress6', o.externalAddress6, 6),
    portRange: [range[0], range[1]],
    defaultLifetime,
    maxLifetime,
    permissionLifetime: positive('permissionLifetime', o.permissionLifetime, 300),
    channelLifetime: positive('channelLifetime', o.channelLifetime, 600),
    channelRebindGuard: positive('channelRebindGuard', o.channelRebindGuard, 300, true),
    userQuota: positive('userQuota', o.userQuota, Number.POSITIVE_INFINITY),
    totalQuota: positive('totalQuota', o.totalQuota, 10_000),
    maxPermissions: positive('maxPermissions', o.maxPermissions, 256),
    maxChannels: positive('maxChannels', o.maxChannels, 4096),
    maxTcpConnections: positive('maxTcpConnections', o.maxTcpConnections, 64),
    connectionBindTimeout: positive('connectionBindTimeout', o.connectionBindTimeout, 30),
    connectionIds: { index: ids.index, of: ids.of },
    bandwidth,
    bandwidthBurst: positive('bandwidthBurst', o.bandwidthBurst, Math.max(bandwidth, 65536)),
    authFailureRate: positive('authFailureRate', o.authFailureRate, 1),
    authFailureBurst: positive('authFailureBurst', o.authFailureBurst, 20),
    responseCacheTtl: positive('responseCacheTtl', o.responseCacheTtl, 40),
    maxCachedResponses: positive('maxCachedResponses', o.maxCachedResponses, 10_000),
    dontFragment: o.dontFragment ?? true,
    software: o.software,
    legacyChannels: o.legacyChannels ?? true
  }
}
