import { randomBytes } from 'node:crypto'
import { StunDecodeError } from '../errors.js'
import { createLogger } from '../log.js'
import { endpointKey, ipFamily, type Endpoint } from '../net/endpoint.js'
import {
  DontFragment, ERROR_REASONS, MessageClass, Method, StunMessage, UnknownAttributes, XorMappedAddress, classifyPacket,
  type ChannelDataOptions
} from '../stun/index.js'
import { onAllocate, relayOpened } from './allocate.js'
import { fiveTupleKey, type Allocation, type TupleIndex } from './allocation.js'
import { AllocationTable } from './allocation-table.js'
import { RequestAuthenticator, type AuthContext } from './auth.js'
import { resolveCoreOptions, type ResolvedCoreOptions, type TurnServerCoreOptions } from './core-options.js'
import { onChannelData, onPeerData, onSendIndication, type FastPathHook, type RelaySink, type TrafficCounters } from './data-path.js'
import { InMemoryRelayMetrics, type RelayMetrics } from './metrics.js'
import { onChannelBind, onCreatePermission, sweepChannels, sweepPermissions } from './permission-handlers.js'
import { PeerPolicy } from './peer-policy.js'
import type { PortPool } from './port-pool.js'
import { onRefresh } from './refresh.js'
import { ResponseCache } from './response-cache.js'
import { errorResponse, successResponse, unknownAttributesResponse, type AddAttributes } from './responses.js'
import {
  dataConnectionClosed, dropTcp, expireTcp, onConnect, onConnectionBind, peerConnectResult, peerConnectionAccepted,
  type TcpConnection
} from './tcp-relay.js'
import type { ClientTransport, RelayIgnoreReason, RelayAction, RelayOpenResult } from './types.js'

const log = createLogger('natcheck:relay:core')

/** @internal A client-facing listener that takes no new allocations: its protocol and local address (a wildcard matches any). */
export interface ClosedListener {
  readonly protocol: ClientTransport['protocol']
  readonly local: Endpoint
}

/** @internal Whether a client transport came in through `listener`. */
export function throughListener (transport: ClientTransport, listener: ClosedListener): boolean {
  if (transport.protocol !== listener.protocol || transport.local.port !== listener.local.port) return false
  const a = listener.local.address
  return a === transport.local.address || a === '0.0.0.0' || a === '::'
}

/** A snapshot of the core's state sizes. */
export interface CoreStats {
  readonly allocations: number
  readonly permissions: number
  readonly channels: number
  readonly tcpConnections: number
  readonly cachedResponses: number
  readonly reservations: number
  readonly draining: boolean
}

/**
 * The sans-IO TURN server: RFC 8656 (TURN), RFC 6156 (IPv6, dual allocations, folded into RFC 8656) and RFC 6062
 * (TCP allocations). Inputs are packets, peer data and time; outputs are RelayActions for an adapter to carry out
 * (see TurnServer). It never throws from its entry points: malformed input is ignored or answered.
 *
 * The method handlers live apart: allocate.ts (Allocate), refresh.ts (Refresh), permission-handlers.ts
 * (CreatePermission, ChannelBind), data-path.ts (Send, ChannelData, peer datagrams), tcp-relay.ts (RFC 6062); the
 * tables are allocation-table.ts. This file authenticates and dispatches, and owns deletion and time.
 */
export class TurnServerCore {
  /** @internal Resolved options (the handler modules read them). */
  options: ResolvedCoreOptions
  private auth: RequestAuthenticator
  /** @internal The peer policy; replaced on reconfigure, which bumps policyGeneration. */
  policy: PeerPolicy
  /** @internal Bumped whenever the policy changes, so verdicts cached on channel bindings are recomputed. */
  policyGeneration = 0
  /** @internal How the codec reads channel numbers (RFC 5766's range when legacyChannels). */
  channelOptions: ChannelDataOptions
  /** @internal The secret of nonces and shared RESERVATION-TOKENs. */
  readonly nonceSecret: Uint8Array
  /** @internal Allocations by id, 5-tuple and relay key; quotas' counts; reservations; port pools. */
  readonly table: AllocationTable
  /** @internal Allocations by 5-tuple (the table's). */
  readonly tuples: TupleIndex
  /** @internal Allocations by relay key (the table's). */
  readonly byRelay: Map<string, Allocation>
  /** @internal RFC 6062 connections by CONNECTION-ID. */
  readonly tcp = new Map<number, TcpConnection>()
  /** @internal Answers to retransmitted requests. */
  cache: ResponseCache
  /** @internal Allocate requests waiting for their relay sockets. */
  readonly pending = new Map<Allocation, { req: StunMessage, from: Endpoint, transport: ClientTransport, ctx: AuthContext }>()
  private nextId = 1
  /** When true, new allocations are refused with 508 (graceful drain); existing ones continue. */
  draining = false
  /**
   * @internal Client-facing listeners a reload removed (set by the adapter): Allocate requests that arrive through them are
   * refused with 508, while the allocations made through them before live on (see TurnServer.reload).
   */
  readonly closedListeners: ClosedListener[] = []
  /**
   * Allocations held elsewhere (the relay's other worker processes), added to this core's own counts when the
   * per-user and total quotas are checked. Set by the adapter; undefined: this core is the whole relay.
   */
  quotaElsewhere: { user: (username: string) => number, total: () => number } | undefined
  /**
   * Issue stateless RESERVATION-TOKENs that any core sharing the nonce secret accepts (reservation-token.ts), for
   * worker processes that share the listeners. Default false: random tokens, good once, in this core only.
   */
  sharedReservations = false
  /**
   * Another relay node to send new clients to (RFC 8489 §10 ALTERNATE-SERVER with 300 Try Alternate) when this one
   * is draining or at its total quota, e.g. the least-loaded healthy node of a Redis node registry. Set by the
   * adapter; undefined, or a call returning undefined: 508 / 486 as usual.
   */
  alternate: (() => Endpoint | undefined) | undefined
  readonly metrics: RelayMetrics
  /** Relayed packets and bytes by direction, flushed into `metrics` when they are read (see flushTraffic). */
  readonly traffic: TrafficCounters = { clientToPeerPackets: 0, clientToPeerBytes: 0, peerToClientPackets: 0, peerToClientBytes: 0 }
  /**
   * The adapter's fast path for relayed data (RelaySink). When set, ChannelData, Send indications and peer
   * datagrams that are relayed go to the sink synchronously and `handle`/`handlePeer` return an empty array;
   * when unset they come back as `relay`/`send` actions.
   */
  sink: RelaySink | undefined
  /**
   * The adapter's native fast path for established channels (FastPathHook, see offerFastPath): offered each channel
   * binding the data path relays, cleared on reconfigure, its counters folded into `traffic` by flushTraffic.
   * @internal
   */
  fastPath: FastPathHook | undefined

  constructor (options: TurnServerCoreOptions) {
    this.options = resolveCoreOptions(options)
    this.channelOptions = { legacyChannels: this.options.legacyChannels }
    this.table = new AllocationTable(this.options.portRange)
    this.tuples = this.table.tuples
    this.byRelay = this.table.byRelay
    this.nonceSecret = options.nonceSecret ?? randomBytes(32)
    this.metrics = options.metrics ?? new InMemoryRelayMetrics()
    this.metrics.onCollect?.(() => { this.flushTraffic() })
    this.auth = this.makeAuth(options)
    this.policy = this.makePolicy(options)
    this.cache = new ResponseCache(this.options.responseCacheTtl * 1000, this.options.maxCachedResponses)
  }


  private makeAuth (o: TurnServerCoreOptions): RequestAuthenticator {
    const r = this.options
    return new RequestAuthenticator({
      realm: r.realm,
      users: o.users,
      authSecret: o.authSecret,
      keySource: o.keySource,
      restSeparator: o.restSeparator,
      restMaxTtlS: o.restMaxTtlS,
      passwordAlgorithms: r.passwordAlgorithms,
      nonceSecret: this.nonceSecret,
      nonceLifetime: r.nonceLifetime,
      failureRate: r.authFailureRate,
      failureBurst: r.authFailureBurst,
      software: r.software
    }, this.auth?.failures)
  }

  private makePolicy (o: TurnServerCoreOptions): PeerPolicy {
    return new PeerPolicy({ allowPeer: o.allowPeer, denyPeer: o.denyPeer, ownAddresses: o.ownAddresses, ownEndpoints: o.ownEndpoints, localAddresses: o.localAddresses })
  }

  /**
   * Apply new options (credentials, realm, policy, limits, port range) without touching existing allocations.
   * Throws InvalidArgumentError (and changes nothing) when the options are invalid.
   */
  reconfigure (options: TurnServerCoreOptions): void {
    const resolved = resolveCoreOptions(options)
    const policy = this.makePolicy(options)
    const old = this.options
    this.options = resolved
    try {
      this.auth = this.makeAuth(options)
    } catch (err) {
      this.options = old
      throw err
    }
    this.policy = policy
    this.policyGeneration++
    this.channelOptions = { legacyChannels: resolved.legacyChannels }
    this.table.setPortRange(resolved.portRange)
    this.cache = new ResponseCache(resolved.responseCacheTtl * 1000, resolved.maxCachedResponses)
    // Fast path entries were installed under the old policy and options: the next packets go through the checks again.
    this.fastPath?.clear()
  }

  /** The authenticator (tests use it to mint nonces). */
  get authenticator (): RequestAuthenticator { return this.auth }

  /** @internal */
  pool (family: 4 | 6, protocol: 'udp' | 'tcp'): PortPool {
    return this.table.pool(family, protocol)
  }

  // ---------------------------------------------------------------- client packets

  /**
   * A packet from a client on a client-facing transport: a STUN message or a ChannelData message (for TCP/TLS,
   * one frame as cut by readStreamFrame). Never throws. The core keeps no reference to `packet` after it returns
   * (what it stores is copied); `relay` actions and the sink get views of it, to be used before the next packet.
   */
  handle (packet: Uint8Array, from: Endpoint, transport: ClientTransport, now: number): RelayAction[] {
    try {
      const kind = classifyPacket(packet, this.channelOptions)
      if (kind === 'channel-data') return onChannelData(this, packet, from, transport, now)
      if (kind !== 'stun') return this.ignore('unknown-kind', 'not-stun')
      let msg: StunMessage
      try {
        msg = StunMessage.decode(packet)
      } catch (err) {
        if (err instanceof StunDecodeError) return this.ignore('malformed', 'stun-decode')
        throw err
      }
      if (msg.classic) return this.ignore('malformed', 'no-magic-cookie')
      if (msg.cls === MessageClass.Indication) {
        return msg.method === Method.Send ? onSendIndication(this, msg, from, transport, now) : this.ignore('bad-indication')
      }
      if (msg.cls !== MessageClass.Request) return this.ignore('response-class', 'response')
      return this.onRequest(msg, from, transport, now)
    } catch (err) {
      log.error('handler failed on a packet from %s: %O', endpointKey(from), err)
      return this.ignore('malformed', 'internal-error')
    }
  }

  /** @internal */
  ignore (reason: RelayIgnoreReason, metric?: string): RelayAction[] {
    if (reason === 'malformed') this.metrics.inc('natkit_relay_malformed_total', metric ?? reason)
    else this.metrics.inc('natkit_relay_dropped_total', reason)
    return [{ type: 'ignore', reason }]
  }

  /** @internal */
  send (transport: ClientTransport, to: Endpoint, data: Uint8Array): RelayAction {
    return { type: 'send', transport, to, data }
  }

  private reply (req: StunMessage, from: Endpoint, transport: ClientTransport, data: Buffer, now: number): RelayAction[] {
    this.cache.set(this.cacheKey(req, from, transport), data, now)
    return [this.send(transport, from, data)]
  }

  /** @internal */
  error (req: StunMessage, from: Endpoint, transport: ClientTransport, code: number, now: number, ctx?: AuthContext, add?: AddAttributes): RelayAction[] {
    this.metrics.inc('natkit_relay_error_responses_total', String(code))
    if (req.method === Method.Allocate) this.metrics.inc('natkit_relay_allocation_failures_total', String(code))
    log('%s from %s: %d %s', req.describe(), endpointKey(from), code, ERROR_REASONS[code] ?? '')
    return this.reply(req, from, transport, errorResponse(req, code, add, ctx?.security, this.options.software), now)
  }

  /** @internal */
  success (req: StunMessage, from: Endpoint, transport: ClientTransport, ctx: AuthContext | undefined, now: number, add?: AddAttributes): RelayAction[] {
    return this.reply(req, from, transport, successResponse(req, add, ctx?.security, this.options.software), now)
  }

  /** @internal */
  cacheKey (req: StunMessage, from: Endpoint, transport: ClientTransport): string {
    return `${fiveTupleKey(from, transport)}|${req.transactionId.toString('hex')}`
  }

  private onRequest (req: StunMessage, from: Endpoint, transport: ClientTransport, now: number): RelayAction[] {
    this.metrics.inc('natkit_relay_requests_total', methodName(req.method))
    // A retransmission gets the answer the original got (RFC 8489 §6.3.1).
    const cached = this.cache.get(this.cacheKey(req, from, transport), now)
    if (cached === 'pending') return this.ignore('pending')
    if (cached !== undefined) return [this.send(transport, from, cached)]

    // Binding requests are answered on the same ports without authentication, as coturn does (RFC 8489 §6.3).
    if (req.method === Method.Binding) {
      const unknown = req.unknownComprehensionRequired()
      if (unknown.length > 0) return [this.send(transport, from, unknownAttributesResponse(req, unknown, this.options.software))]
      return [this.send(transport, from, successResponse(req, (b) => b.add(XorMappedAddress, from), undefined, this.options.software))]
    }
    if (!KNOWN_REQUESTS.has(req.method)) return this.error(req, from, transport, 400, now)

    // RFC 8656 §5: "the server MUST demand that all requests from the client be authenticated using this
    // mechanism" (the long-term credential mechanism of RFC 8489 §9.2).
    const outcome = this.auth.authenticate(req, from, now)
    if (!outcome.ok) {
      if (outcome.failure !== undefined) {
        this.metrics.inc('natkit_relay_auth_failures_total', outcome.failure)
        if (outcome.response === undefined) return [...this.ignore('auth-rate-limited'), this.authEvent(from, outcome.failure)]
        return [this.send(transport, from, outcome.response), this.authEvent(from, outcome.failure)]
      }
      return [this.send(transport, from, outcome.response)]
    }
    const ctx = outcome.context

    // RFC 8489 §6.3.1: unknown comprehension-required attributes earn a 420. DONT-FRAGMENT counts as unknown when
    // the server cannot honour it (RFC 8656 §7.2 step 4).
    const unknown = req.unknownComprehensionRequired()
    if (!this.options.dontFragment && req.has(DontFragment.type) && req.method === Method.Allocate) unknown.push(DontFragment.type)
    if (unknown.length > 0) {
      return this.reply(req, from, transport, errorResponse(req, 420, (b) => b.add(UnknownAttributes, unknown), ctx.security, this.options.software), now)
    }

    try {
      switch (req.method) {
        case Method.Allocate: return onAllocate(this, req, from, transport, ctx, now)
        case Method.Refresh: return onRefresh(this, req, from, transport, ctx, now)
        case Method.CreatePermission: return onCreatePermission(this, req, from, transport, ctx, now)
        case Method.ChannelBind: return onChannelBind(this, req, from, transport, ctx, now)
        case Method.Connect: return onConnect(this, req, from, transport, ctx, now)
        case Method.ConnectionBind: return onConnectionBind(this, req, from, transport, ctx, now)
        default: return this.error(req, from, transport, 400, now, ctx)
      }
    } catch (err) {
      // A malformed attribute inside an authenticated request: 400 (RFC 8489 §6.3.1 "Bad Request").
      if (err instanceof StunDecodeError) {
        this.metrics.inc('natkit_relay_malformed_total', 'attribute')
        return this.error(req, from, transport, 400, now, ctx)
      }
      throw err
    }
  }

  private authEvent (client: Endpoint, reason: string): RelayAction {
    return { type: 'event', event: { type: 'auth-failure', client, reason } }
  }

  // ---------------------------------------------------------------- Allocate (RFC 8656 §7.2, see allocate.ts)

  /** The adapter's report on an `open-relay` action. Returns what to do next. Never throws. */
  relayOpened (relay: string, result: RelayOpenResult, now: number): RelayAction[] {
    return relayOpened(this, relay, result, now)
  }

  /** @internal A new allocation id. */
  newAllocationId (): number { return this.nextId++ }

  /** @internal Delete an allocation: release ports, close relays and TCP connections. */
  removeAllocation (alloc: Allocation, now: number, reason: 'refresh' | 'expired' | 'transport-closed' | 'shutdown' | undefined): RelayAction[] {
    if (!this.table.delete(alloc)) return []
    this.pending.delete(alloc)
    const actions: RelayAction[] = []
    for (const r of alloc.relays) {
      if (r.state !== 'failed') {
        this.pool(r.family, alloc.relayProtocol).release(r.port)
        actions.push({ type: 'close-relay', relay: r.key })
      }
    }
    // A RESERVATION-TOKEN's port stays reserved when the allocation that asked for it ends: RFC 8656 §7.2 holds it
    // "for about 30 seconds" for a subsequent Allocate, not for as long as the first allocation lives (coturn keeps
    // it too, and with --workers another worker honours the stateless token anyway). The sweep releases it unclaimed.
    for (const id of alloc.tcpConnections) {
      this.tcp.delete(id)
      actions.push({ type: 'tcp-close', connectionId: id })
    }
    if (reason !== undefined) actions.push({ type: 'event', event: { type: 'deallocation', id: alloc.id, reason } })
    this.updateGauges(now)
    return actions
  }

  // ---------------------------------------------------------------- Refresh (RFC 8656 §8.2, see refresh.ts)

  /** @internal */
  ownAllocation (req: StunMessage, from: Endpoint, transport: ClientTransport, ctx: AuthContext, now: number): Allocation | RelayAction[] {
    const alloc = this.tuples.get(from, transport)
    // "If the 5-tuple does not have an allocation: 437 (Allocation Mismatch)."
    if (alloc === undefined || alloc.state !== 'active') return this.error(req, from, transport, 437, now, ctx)
    // RFC 8656 §5: "the server MUST check that the username [...] matches the one used to create the allocation",
    // else 441 (Wrong Credentials).
    if (alloc.username !== ctx.username) return this.error(req, from, transport, 441, now, ctx)
    return alloc
  }

  // ---------------------------------------------------------------- peers

  /** Common peer checks: family match (443) and policy (403). Returns an error code or undefined. */
  /** @internal */
  peerError (alloc: Allocation, peer: Endpoint): number | undefined {
    const family = ipFamily(peer.address)
    if (family === 0 || alloc.relayFor(family) === undefined) return 443
    if (this.policy.checkAddress(peer.address) !== 'allowed') return 403
    return undefined
  }
  // ---------------------------------------------------------------- peer → client (RFC 8656 §11.3, §12.7)

  /** A datagram from a peer on a UDP relay socket (`data` may be a view: see handle). Never throws. */
  handlePeer (relayKey: string, data: Uint8Array, peer: Endpoint, now: number): RelayAction[] {
    try {
      return onPeerData(this, relayKey, data, peer, now)
    } catch (err) {
      log.error('peer handler failed: %O', err)
      return this.ignore('malformed', 'internal-error')
    }
  }

  /** Add the hot-path traffic counters to the metrics (the metrics call this before they are read). */
  flushTraffic (): void {
    const t = this.traffic
    this.fastPath?.collect(t)
    if (t.clientToPeerPackets > 0) {
      this.metrics.inc('natkit_relay_packets_total', 'client-to-peer', t.clientToPeerPackets)
      this.metrics.inc('natkit_relay_bytes_total', 'client-to-peer', t.clientToPeerBytes)
      t.clientToPeerPackets = 0; t.clientToPeerBytes = 0
    }
    if (t.peerToClientPackets > 0) {
      this.metrics.inc('natkit_relay_packets_total', 'peer-to-client', t.peerToClientPackets)
      this.metrics.inc('natkit_relay_bytes_total', 'peer-to-client', t.peerToClientBytes)
      t.peerToClientPackets = 0; t.peerToClientBytes = 0
    }
  }

  // ---------------------------------------------------------------- RFC 6062 (see tcp-relay.ts)

  /** The adapter's report on a `tcp-connect` action (RFC 6062 §5.2). Never throws. */
  peerConnectResult (connectionId: number, ok: boolean, now: number): RelayAction[] {
    return peerConnectResult(this, connectionId, ok, now)
  }

  /**
   * An inbound TCP connection from a peer on a TCP allocation's relayed address (RFC 6062 §5.3). Returns the new
   * connection id (undefined: the adapter must close the connection) and the actions (the ConnectionAttempt).
   */
  peerConnectionAccepted (relayKey: string, peer: Endpoint, now: number): { connectionId: number | undefined, actions: RelayAction[] } {
    return peerConnectionAccepted(this, relayKey, peer, now)
  }

  /** The adapter saw a peer (or client data) TCP connection close. */
  tcpConnectionClosed (connectionId: number, now: number): RelayAction[] {
    const c = this.tcp.get(connectionId)
    if (c === undefined) return []
    dropTcp(this, c)
    this.updateGauges(now)
    return []
  }

  // ---------------------------------------------------------------- transport close, time, drain

  /**
   * A client TCP/TLS connection closed. RFC 8656 §3.1 / RFC 6062 §5: the allocation on that 5-tuple ends (and with
   * it its peer data connections); a client data connection takes its peer connection with it.
   */
  transportClosed (from: Endpoint, transport: ClientTransport, now: number): RelayAction[] {
    const alloc = this.tuples.get(from, transport)
    if (alloc !== undefined) return this.removeAllocation(alloc, now, 'transport-closed')
    return dataConnectionClosed(this, fiveTupleKey(from, transport))
  }

  /**
   * Advance time: expire allocations (RFC 8656 §6 time-to-expiry), permissions (§9), channels (§12, after the
   * 5-minute guard), reservations, unbound RFC 6062 connections, cached responses and idle rate-limit buckets.
   */
  tick (now: number): RelayAction[] {
    const actions: RelayAction[] = []
    try {
      for (const alloc of [...this.table.byId.values()]) {
        if (alloc.state === 'active' && alloc.expiresAt <= now) {
          actions.push(...this.removeAllocation(alloc, now, 'expired'))
          continue
        }
        sweepPermissions(alloc, now)
        sweepChannels(this, alloc, now)
      }
      for (const [token, r] of this.table.reservations) {
        if (r.expiresAt <= now) {
          this.table.reservations.delete(token)
          this.pool(r.family, 'udp').release(r.port)
        }
      }
      actions.push(...expireTcp(this, now))
      this.cache.sweep(now)
      this.auth.failures.sweep(now)
      this.updateGauges(now)
      this.flushTraffic()
    } catch (err) {
      log.error('tick failed: %O', err)
    }
    return actions
  }

  /** Delete every allocation (server shutdown). */
  shutdown (now: number): RelayAction[] {
    const actions: RelayAction[] = []
    for (const alloc of [...this.table.byId.values()]) actions.push(...this.removeAllocation(alloc, now, 'shutdown'))
    return actions
  }

  /** Allocations held (for drain). */
  get allocationCount (): number { return this.table.size }

  /** @internal Allocations made through a client-facing listener (the adapter closes a removed listener when none is left). */
  allocationsThrough (listener: ClosedListener): number {
    let n = 0
    for (const a of this.table.byId.values()) if (throughListener(a.transport, listener)) n++
    return n
  }

  /** @internal Whether Allocate requests through this transport are refused (its listener was removed). */
  listenerClosed (transport: ClientTransport): boolean {
    for (const l of this.closedListeners) if (throughListener(transport, l)) return true
    return false
  }

  /** @internal */
  updateGauges (now: number): void {
    let permissions = 0; let channels = 0
    for (const a of this.table.byId.values()) {
      const c = a.counts(now)
      permissions += c.permissions; channels += c.channels
    }
    this.metrics.set('natkit_relay_allocations', this.table.size)
    this.metrics.set('natkit_relay_permissions', permissions)
    this.metrics.set('natkit_relay_channels', channels)
    this.metrics.set('natkit_relay_tcp_connections', this.tcp.size)
  }

  /** Sizes of the core's tables. */
  stats (now: number): CoreStats {
    let permissions = 0; let channels = 0
    for (const a of this.table.byId.values()) {
      const c = a.counts(now)
      permissions += c.permissions; channels += c.channels
    }
    return {
      allocations: this.table.size, permissions, channels, tcpConnections: this.tcp.size,
      cachedResponses: this.cache.size, reservations: this.table.reservations.size, draining: this.draining
    }
  }
}

const KNOWN_REQUESTS = new Set<number>([Method.Allocate, Method.Refresh, Method.CreatePermission, Method.ChannelBind, Method.Connect, Method.ConnectionBind])

function methodName (method: number): string {
  for (const [name, value] of Object.entries(Method)) if (value === method) return name
  return 'unknown'
}
