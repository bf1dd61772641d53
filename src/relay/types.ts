import type { Endpoint } from '../net/endpoint.js'

/** How a client reached the server: the transport of the 5-tuple (RFC 8656 §2, "5-tuple"). */
export type ClientProtocol = 'udp' | 'tcp' | 'tls'

/**
 * The server side of a client's 5-tuple: the protocol and the server's listening endpoint, plus, for TCP/TLS, the
 * adapter's id of the connection (one connection is one 5-tuple).
 */
export interface ClientTransport {
  readonly protocol: ClientProtocol
  /** The server's local endpoint the client talks to. */
  readonly local: Endpoint
  /** For TCP/TLS: the adapter's id for this connection. */
  readonly connection?: string
}

/** Why a packet produced no answer. Counted by reason in the metrics. */
export type RelayIgnoreReason =
  | 'malformed' | 'unknown-kind' | 'response-class' | 'no-allocation' | 'no-permission' | 'no-channel'
  | 'bad-indication' | 'denied-peer' | 'auth-rate-limited' | 'bandwidth' | 'pending' | 'unknown-relay'
  | 'unknown-attribute' | 'family-mismatch' | 'too-big' | 'no-connection'

/** Allocation lifecycle events, for logs and the adapter's EventEmitter. */
export type RelayEvent =
  | { type: 'allocation'; id: number; username: string; client: Endpoint; protocol: ClientProtocol; relayed: Endpoint[]; transport: 'udp' | 'tcp'; lifetime: number }
  | { type: 'refresh'; id: number; lifetime: number }
  | { type: 'deallocation'; id: number; reason: 'refresh' | 'expired' | 'transport-closed' | 'shutdown' }
  | { type: 'auth-failure'; client: Endpoint; reason: string }
  /** An Allocate refused with 486: which quota (`user`: allocations per username, `total`: in all), its limit, and whom. */
  | { type: 'quota-refused'; quota: 'user' | 'total'; limit: number; username: string; client: Endpoint; protocol: ClientProtocol }

/**
 * What the sans-IO core asks its adapter to do. The adapter carries out actions in order.
 */
export type RelayAction =
  /** Send bytes to a client over its transport (UDP datagram, or a write on the TCP/TLS connection). */
  | { type: 'send'; transport: ClientTransport; to: Endpoint; data: Uint8Array }
  /** Send a datagram from a UDP relay socket to a peer. */
  | { type: 'relay'; relay: string; to: Endpoint; data: Uint8Array }
  /**
   * Open a relay socket (UDP) or listener (TCP, RFC 6062) bound to exactly address:port, then call
   * `core.relayOpened(relay, result, now)`.
   */
  | { type: 'open-relay'; relay: string; protocol: 'udp' | 'tcp'; address: string; port: number }
  /** Close a relay socket or listener. */
  | { type: 'close-relay'; relay: string }
  /** RFC 6062 §5.2: open a TCP connection from the relay to the peer, then call `core.peerConnectResult()`. */
  | { type: 'tcp-connect'; connectionId: number; relay: string; peer: Endpoint }
  /** RFC 6062 §5.4: join a client data connection (the ConnectionBind's) with the peer connection. */
  | { type: 'tcp-bind'; connectionId: number; transport: ClientTransport }
  /** Close a peer TCP connection (and its data connection, if bound). */
  | { type: 'tcp-close'; connectionId: number }
  /** Close a client TCP/TLS connection. */
  | { type: 'close-transport'; transport: ClientTransport }
  /** Something happened worth logging or emitting. */
  | { type: 'event'; event: RelayEvent }
  /** Nothing to do; why. */
  | { type: 'ignore'; reason: RelayIgnoreReason }

/** What the adapter reports after an `open-relay` action. */
export type RelayOpenResult =
  | { ok: true; bound: Endpoint }
  /** `inUse`: the OS says someone else holds the port (the core tries another). */
  | { ok: false; inUse: boolean }
