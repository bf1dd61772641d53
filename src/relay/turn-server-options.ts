import { networkInterfaces } from 'node:os'
import { ipFamily, type Endpoint } from '../net/endpoint.js'
import type { ListenOptions } from './client-listeners.js'
import type { TurnServerCoreOptions } from './core-options.js'
import type { RelayMetrics, RelayMetricsSnapshot } from './metrics.js'
import type { CoreStats } from './server-core.js'
import type { RelayEvent } from './types.js'

/** Where a TurnServer listens when `listen` is not given. */
export const DEFAULT_LISTEN: readonly Endpoint[] = [{ address: '127.0.0.1', port: 3478 }]

/** TLS listener settings: where, and the PEM certificate and key files (re-read on reload). */
export interface TurnTlsOptions {
  readonly listen: readonly Endpoint[]
  readonly certFile: string
  readonly keyFile: string
}

/**
 * Options for TurnServer.start. Everything of TurnServerCoreOptions (realm, users, authSecret, limits, policy…)
 * plus the sockets. The relay addresses are given as `relayIp`/`externalIp` (coturn's --relay-ip and -X).
 */
export interface TurnServerOptions extends Omit<TurnServerCoreOptions, 'relayAddress' | 'relayAddress6' | 'externalAddress' | 'externalAddress6' | 'ownEndpoints' | 'localAddresses'> {
  /**
   * Other endpoints of this host the relay must never reach as a peer, whatever `allowPeer` says: the admin and
   * rendezvous ports (its own listeners are added by the server itself). A wildcard address means every local one.
   */
  readonly protectedEndpoints?: readonly Endpoint[]
  /** Client-facing UDP and TCP listeners (default [{ address: '127.0.0.1', port: 3478 }]). Port 0 picks one. */
  readonly listen?: readonly Endpoint[]
  /** Listen on UDP (default true). */
  readonly udp?: boolean
  /** Listen on TCP (default true). */
  readonly tcp?: boolean
  /** TLS listeners (default none). */
  readonly tls?: TurnTlsOptions
  /** IPv4 address relay sockets bind to (default: the first IPv4 listen address, unless it is 0.0.0.0). */
  readonly relayIp?: string
  /** IPv6 address relay sockets bind to (default: the first IPv6 listen address, unless it is ::). */
  readonly relayIp6?: string
  /** Public IPv4 advertised in XOR-RELAYED-ADDRESS (default: relayIp). */
  readonly externalIp?: string
  /** Public IPv6 advertised in XOR-RELAYED-ADDRESS (default: relayIp6). */
  readonly externalIp6?: string
  /** Most simultaneous client TCP/TLS connections (default 10000). */
  readonly maxConnections?: number
  /**
   * A TCP/TLS client connection (TLS handshake included) must send its first complete STUN message or ChannelData
   * frame within this many ms, or it is closed (default 5000).
   */
  readonly firstMessageTimeoutMs?: number
  /**
   * A TCP/TLS client connection that has not authenticated — no successful Allocate on it, nor an RFC 6062
   * ConnectionBind — within this many ms of being accepted is closed (default 30 000; coturn also closes sessions
   * that never allocate). Binding requests need no authentication and work until then.
   */
  readonly authTimeoutMs?: number
  /**
   * Concurrent unauthenticated TCP/TLS connections per source (IPv4 address or IPv6 /64); the newest beyond it is
   * refused (default 32).
   */
  readonly maxUnauthenticatedPerIp?: number
  /**
   * A TCP/TLS client connection whose queued outgoing bytes pass this is closed (default 256 KiB; see
   * ConnectionGuardOptions.maxQueuedBytes for why).
   */
  readonly maxQueuedBytes?: number
  /**
   * Batched datagram I/O (recvmmsg/sendmmsg, src/net/native.ts) for the client-facing UDP listeners and the UDP relay
   * sockets, when the native addon is built (default true; `NATKIT_NATIVE=0` in the environment also turns it off).
   * Falls back to node:dgram otherwise.
   */
  readonly nativeIo?: boolean
  /**
   * Batched I/O for the UDP relay sockets (default: nativeIo). Native sockets share one receive/send arena per
   * process, so they cost about what node:dgram ones do to open and hold; turning this off keeps batching on the
   * listeners only.
   */
  readonly nativeRelayIo?: boolean
  /**
   * Share the client-facing listeners with other relay processes (default false): UDP listeners bound with
   * SO_REUSEPORT, each client's 5-tuple hashed to one process (needs native I/O), and TCP/TLS listeners not
   * `exclusive`, so that node:cluster's primary shares them among its workers (see src/cli/relay-workers.ts).
   */
  readonly reusePort?: boolean
  /**
   * Another process listens on TCP and TLS and hands the connections over to `serveConnection` (default false): the
   * server opens no TCP or TLS listener and lists the configured addresses as its own (the relay's workers, whose
   * primary routes each connection to one of them; see src/cli/relay-workers.ts).
   */
  readonly streamHandoff?: boolean
  /** SO_RCVBUF/SO_SNDBUF of the client-facing UDP listeners in bytes (default: the OS default). */
  readonly udpBufferSize?: number
  /**
   * The native fast path for established channels (default true): once the server has relayed a packet of a channel
   * binding and checked that it would relay all of them, the native addon relays that channel's ChannelData and the
   * peer's datagrams itself, both ways, until the nearest channel, permission or allocation expiry (then the server
   * checks again), without calling into JS (native/udp_fast.c, src/relay/fast-path.ts). Needs native I/O on both the
   * listener and the relay sockets; off when the addon is unavailable, and when `now` is given (the addon keeps time
   * with the monotonic clock). See TurnServer.fastPath for whether it runs.
   */
  readonly fastPath?: boolean
  /** Interval of the expiry timer in ms (default 1000). */
  readonly tickInterval?: number
  /** Clock (ms), for tests. */
  readonly now?: () => number
}

/** Events a TurnServer emits. */
export interface TurnServerEvents {
  allocation: [event: Extract<RelayEvent, { type: 'allocation' }>]
  refresh: [event: Extract<RelayEvent, { type: 'refresh' }>]
  deallocation: [event: Extract<RelayEvent, { type: 'deallocation' }>]
  'auth-failure': [event: Extract<RelayEvent, { type: 'auth-failure' }>]
  'quota-refused': [event: Extract<RelayEvent, { type: 'quota-refused' }>]
  error: [error: Error]
}

/** What stats() returns. */
export interface TurnServerStats extends CoreStats {
  readonly clientConnections: number
  readonly relaySockets: number
  readonly metrics: RelayMetricsSnapshot | undefined
}

/** How to open each `listen` address's listeners. */
export function listenOptions (o: TurnServerOptions): ListenOptions {
  return { udp: o.udp !== false, tcp: o.tcp !== false, nativeIo: o.nativeIo ?? true, udpBufferSize: o.udpBufferSize, reusePort: o.reusePort === true, handoff: o.streamHandoff === true }
}

/** The core's options for a server's options: relay addresses from relayIp/externalIp, its own addresses and endpoints denied as peers. */
export function coreOptions (o: TurnServerOptions, ownEndpoints: Endpoint[], metrics: RelayMetrics): TurnServerCoreOptions {
  const listen = o.listen ?? DEFAULT_LISTEN
  const v4 = listen.find(e => ipFamily(e.address) === 4 && e.address !== '0.0.0.0')?.address
  const v6 = listen.find(e => ipFamily(e.address) === 6 && e.address !== '::')?.address
  const relayAddress = o.relayIp ?? v4
  const relayAddress6 = o.relayIp6 ?? v6
  const own = new Set<string>([...listen.map(e => e.address), ...(o.tls?.listen ?? []).map(e => e.address)])
  for (const a of [relayAddress, relayAddress6, o.externalIp, o.externalIp6]) if (a !== undefined) own.add(a)
  return {
    ...o,
    relayAddress,
    relayAddress6,
    externalAddress: o.externalIp,
    externalAddress6: o.externalIp6,
    ownAddresses: [...own, ...(o.ownAddresses ?? [])],
    ownEndpoints: [...ownEndpoints, ...(o.protectedEndpoints ?? [])],
    localAddresses: localInterfaceAddresses(),
    metrics
  }
}

/** Every address of this host's interfaces (a wildcard listener is reachable at each). */
function localInterfaceAddresses (): string[] {
  return Object.values(networkInterfaces()).flatMap(list => (list ?? []).map(i => i.address))
}
