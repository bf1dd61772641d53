import { randomBytes } from 'node:crypto'
import { StunDecodeError } from '../errors.js'
import { createLogger } from '../log.js'
import { endpointKey, ipFamily, type Endpoint } from '../net/endpoint.js'
import {
  AddressErrorCode, AdditionalAddressFamily, AlternateServer, DontFragment, ERROR_REASONS, EvenPort, Lifetime, MessageClass, Method,
  RequestedAddressFamily, RequestedTransport, ReservationToken, StunMessage, TransportProtocol, UnknownAttributes,
  XorMappedAddress, XorRelayedAddress, classifyPacket, type ChannelDataOptions
} from '../stun/index.js'
import { Allocation, TupleIndex, fiveTupleKey, type RelayAddress } from './allocation.js'
import { RequestAuthenticator, type AuthContext } from './auth.js'
import { resolveCoreOptions, type ResolvedCoreOptions, type TurnServerCoreOptions } from './core-options.js'
import { onChannelData, onPeerData, onSendIndication, type RelaySink, type TrafficCounters } from './data-path.js'
import { InMemoryRelayMetrics, type RelayMetrics } from './metrics.js'
import { onChannelBind, onCreatePermission, sweepChannels, sweepPermissions } from './permission-handlers.js'
import { PeerPolicy } from './peer-policy.js'
import { PortPool } from './port-pool.js'
import { checkReservationToken, reservationToken } from './reservation-token.js'
import { ResponseCache } from './response-cache.js'
import { errorResponse, successResponse, unknownAttributesResponse, type AddAttributes } from './responses.js'
import {
  dataConnectionClosed, dropTcp, expireTcp, onConnect, onConnectionBind, peerConnectResult, peerConnectionAccepted,
  type TcpConnection
} from './tcp-relay.js'
import type { ClientTransport, RelayIgnoreReason, RelayAction, RelayEvent, RelayOpenResult } from './types.js'

const log = createLogger('natcheck:relay:core')

/**
 * Bind attempts per relay address before giving up with 508. Ports the pool thinks free may be busy in the OS (other
 * programs, another relay on the host): with 10 000 of 16 384 ports taken elsewhere, 8 random tries still failed 2 %
 * of the time, 64 fail with odds below 1e-13.
 */
const MAX_BIND_ATTEMPTS = 64
/** RFC 8656 §7.2: a reserved port is held "for about 30 seconds". */
const RESERVATION_MS = 30_000

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
 * The method handlers live apart: permission-handlers.ts (CreatePermission, ChannelBind), data-path.ts (Send,
 * ChannelData, peer datagrams), tcp-relay.ts (RFC 6062). This file dispatches, and owns Allocate, Refresh and time.
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
  private pools = new Map<string, PortPool>()
  private readonly nonceSecret: Uint8Array
  private readonly allocations = new Map<number, Allocation>()
  /** @internal Allocations by 5-tuple. */
  readonly tuples = new TupleIndex()
  /** @internal Allocations by relay key. */
  readonly byRelay = new Map<string, Allocation>()
  private readonly perUser = new Map<string, number>()
  private readonly reservations = new Map<string, { family: 4 | 6, port: number, expiresAt: number }>()
  /** @internal RFC 6062 connections by CONNECTION-ID. */
  readonly tcp = new Map<number, TcpConnection>()
  /** @internal Answers to retransmitted requests. */
  cache: ResponseCache
  private readonly pending = new Map<Allocation, { req: StunMessage, from: Endpoint, transport: ClientTransport, ctx: AuthContext }>()
  private nextId = 1
  /** When true, new allocations are refused with 508 (graceful drain); existing ones continue. */
  draining = false
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

  constructor (options: TurnServerCoreOptions) {
    this.options = resolveCoreOptions(options)
    this.channelOptions = { legacyChannels: this.options.legacyChannels }
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
    if (old.portRange[0] !== resolved.portRange[0] || old.portRange[1] !== resolved.portRange[1]) {
      this.pools = new Map()
      for (const a of this.allocations.values()) for (const r of a.relays) this.pool(r.family, a.relayProtocol).claim(r.port)
    }
    this.cache = new ResponseCache(resolved.responseCacheTtl * 1000, resolved.maxCachedResponses)
  }

  /** The authenticator (tests use it to mint nonces). */
  get authenticator (): RequestAuthenticator { return this.auth }

  /** @internal */
  pool (family: 4 | 6, protocol: 'udp' | 'tcp'): PortPool {
    const k = `${family}/${protocol}`
    let p = this.pools.get(k)
    if (p === undefined) { p = new PortPool(this.options.portRange[0], this.options.portRange[1]); this.pools.set(k, p) }
    return p
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
        case Method.Allocate: return this.onAllocate(req, from, transport, ctx, now)
        case Method.Refresh: return this.onRefresh(req, from, transport, ctx, now)
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

  // ---------------------------------------------------------------- Allocate (RFC 8656 §7.2)

  private lifetimeOf (req: StunMessage, allowZero: boolean): number {
    const requested = req.get(Lifetime)
    if (requested === undefined) return this.options.defaultLifetime
    if (requested === 0 && allowZero) return 0
    // "If the request contains a LIFETIME attribute, then the server computes the minimum of the client's proposed
    //  lifetime and the server's maximum allowed lifetime. If this computed value is greater than the default
    //  lifetime, then the server uses the computed lifetime [...]. Otherwise, the server uses the default lifetime."
    const m = Math.min(requested, this.options.maxLifetime)
    return m > this.options.defaultLifetime ? m : this.options.defaultLifetime
  }

  private onAllocate (req: StunMessage, from: Endpoint, transport: ClientTransport, ctx: AuthContext, now: number): RelayAction[] {
    const o = this.options
    const err = (code: number, add?: AddAttributes): RelayAction[] => this.error(req, from, transport, code, now, ctx, add)
    // 1. "The server MUST require that the request be authenticated." (done by the caller)
    // 2. "The server checks if the 5-tuple is currently in use by an existing allocation. If yes, the server rejects
    //    the request with a 437 (Allocation Mismatch) error." (Retransmissions were answered from the cache.)
    if (this.tuples.has(from, transport)) return err(437)
    // 3. "The server checks if the request contains a REQUESTED-TRANSPORT attribute. If the REQUESTED-TRANSPORT
    //    attribute is not included or is malformed, the server rejects the request with a 400 (Bad Request) error.
    //    Otherwise, if the attribute indicates an unsupported transport protocol, the server rejects the request
    //    with a 442 (Unsupported Transport Protocol) error."
    const proto = req.get(RequestedTransport)
    if (proto === undefined) return err(400)
    if (proto !== TransportProtocol.UDP && proto !== TransportProtocol.TCP) return err(442)
    const relayProtocol = proto === TransportProtocol.TCP ? 'tcp' : 'udp'
    const dontFragment = req.has(DontFragment.type)
    const evenPort = req.get(EvenPort)
    const tokenBytes = req.get(ReservationToken)
    const requestedFamily = req.get(RequestedAddressFamily)
    const additionalFamily = req.get(AdditionalAddressFamily)
    // RFC 6062 §5.1: a TCP allocation must be requested over TCP or TLS, and "If the request contains the
    // DONT-FRAGMENT, EVEN-PORT, or RESERVATION-TOKEN attribute, the server MUST reject the request with 400".
    if (relayProtocol === 'tcp') {
      if (transport.protocol === 'udp') return err(400)
      if (dontFragment || evenPort !== undefined || tokenBytes !== undefined) return err(400)
    }
    // 4. DONT-FRAGMENT: handled with the unknown attributes (420) when unsupported.
    // 5. "The server checks if the request contains a RESERVATION-TOKEN attribute. If yes, and the request also
    //    contains an EVEN-PORT or REQUESTED-ADDRESS-FAMILY or ADDITIONAL-ADDRESS-FAMILY attribute, the server
    //    rejects the request with a 400 (Bad Request) error. Otherwise, it checks to see if the token is valid
    //    [...]. If the token is not valid for some reason, the server rejects the request with a 508."
    let reservedPort: { family: 4 | 6, port: number } | undefined
    if (tokenBytes !== undefined) {
      if (evenPort !== undefined || requestedFamily !== undefined || additionalFamily !== undefined) return err(400)
      const hex = Buffer.from(tokenBytes).toString('hex')
      const r = this.reservations.get(hex) ?? (this.sharedReservations ? checkReservationToken(this.nonceSecret, tokenBytes, now) : undefined)
      if (r === undefined || r.expiresAt <= now) return err(508)
      this.reservations.delete(hex)
      reservedPort = r
    }
    // 6. "The server checks if the request contains both REQUESTED-ADDRESS-FAMILY and ADDITIONAL-ADDRESS-FAMILY
    //    attributes. If yes, then the server rejects the request with a 400 (Bad Request) error." And
    //    ADDITIONAL-ADDRESS-FAMILY may only name IPv6 (§18.11), and may not come with EVEN-PORT R=1.
    if (requestedFamily !== undefined && additionalFamily !== undefined) return err(400)
    if (additionalFamily !== undefined && additionalFamily !== 6) return err(400)
    if (additionalFamily !== undefined && evenPort?.reserve === true) return err(400)
    // 7. "If the server does not support the address family requested by the client in REQUESTED-ADDRESS-FAMILY,
    //    or if the allocation of the requested address family is disabled by local policy, it MUST generate an
    //    Allocate error response, and it MUST include an ERROR-CODE attribute with the 440 (Address Family not
    //    Supported) response code."
    const primary: 4 | 6 = reservedPort?.family ?? requestedFamily ?? 4
    const families: Array<4 | 6> = additionalFamily !== undefined ? [4, 6] : [primary]
    const available = families.filter(f => this.bindAddressFor(f) !== undefined)
    if (available.length === 0) return err(440)
    // 8. EVEN-PORT is honoured when the relay ports are picked (below). 9. Quotas: "At any point, the server MAY
    //    choose to reject the request with a 486 (Allocation Quota Reached) error if it feels the client is trying
    //    to exceed some locally defined allocation quota." A draining server has no capacity: 508.
    const tryAlternate = (): RelayAction[] | undefined => {
      const alt = this.alternate?.()
      return alt === undefined ? undefined : err(300, (b) => b.add(AlternateServer, alt))
    }
    if (this.draining) return tryAlternate() ?? err(508)
    const elsewhere = this.quotaElsewhere
    const userCount = (this.perUser.get(ctx.username) ?? 0) + (elsewhere?.user(ctx.username) ?? 0)
    const quota = userCount >= o.userQuota ? 'user' : this.allocations.size + (elsewhere?.total() ?? 0) >= o.totalQuota ? 'total' : undefined
    if (quota === 'total') {
      const redirected = tryAlternate()
      if (redirected !== undefined) return redirected
    }
    if (quota !== undefined) {
      this.metrics.inc('natkit_relay_quota_refusals_total', quota)
      const limit = quota === 'user' ? o.userQuota : o.totalQuota
      return [{ type: 'event', event: { type: 'quota-refused', quota, limit, username: ctx.username, client: from, protocol: transport.protocol } }, ...err(486)]
    }

    // Pick the relay ports ("the server chooses a relayed transport address for the allocation").
    const id = this.nextId++
    const want: RelayAddress['want'] = evenPort === undefined ? 'any' : evenPort.reserve ? 'even-pair' : 'even'
    const relays: RelayAddress[] = []
    for (const family of families) {
      const bindAddress = this.bindAddressFor(family)
      const base = {
        key: `a${id}v${family}`, family, attempts: 0, reserved: reservedPort !== undefined,
        want: family === primary ? want : 'any' as RelayAddress['want']
      }
      if (bindAddress === undefined) {
        relays.push({ ...base, bindAddress: '', advertisedAddress: '', port: 0, state: 'failed', failure: 440 })
        continue
      }
      let port: number | undefined
      if (reservedPort !== undefined) { port = reservedPort.port } else port = this.pool(family, relayProtocol).take(now, base.want)
      const advertisedAddress = (family === 4 ? o.externalAddress : o.externalAddress6) ?? bindAddress
      if (port === undefined) relays.push({ ...base, bindAddress, advertisedAddress, port: 0, state: 'failed', failure: 508 })
      else relays.push({ ...base, bindAddress, advertisedAddress, port, state: 'opening' })
    }
    if (relays.every(r => r.state === 'failed')) {
      this.releasePorts(relays, relayProtocol)
      return err(relays.some(r => r.failure === 508) ? 508 : 440)
    }
    const lifetime = this.lifetimeOf(req, false)
    const alloc = new Allocation(id, fiveTupleKey(from, transport), from, transport, ctx.username, relayProtocol, relays,
      { lifetime, security: ctx.security }, dontFragment, now, o.bandwidth, o.bandwidthBurst)
    if (evenPort?.reserve === true) {
      const primaryRelay = relays[0]
      const token = (this.sharedReservations ? reservationToken(this.nonceSecret, primaryRelay.family, primaryRelay.port + 1, now) : randomBytes(8)).toString('hex')
      if (primaryRelay.state === 'opening') {
        this.reservations.set(token, { family: primaryRelay.family, port: primaryRelay.port + 1, expiresAt: now + RESERVATION_MS })
        alloc.reservationToken = token
      }
    }
    this.allocations.set(id, alloc)
    this.tuples.add(alloc)
    this.perUser.set(ctx.username, (this.perUser.get(ctx.username) ?? 0) + 1)
    for (const r of relays) this.byRelay.set(r.key, alloc)
    this.pending.set(alloc, { req, from, transport, ctx })
    this.cache.set(this.cacheKey(req, from, transport), 'pending', now)
    return relays.filter(r => r.state === 'opening').map(r => ({ type: 'open-relay', relay: r.key, protocol: relayProtocol, address: r.bindAddress, port: r.port }))
  }

  private bindAddressFor (family: 4 | 6): string | undefined {
    return family === 4 ? this.options.relayAddress : this.options.relayAddress6
  }

  private releasePorts (relays: RelayAddress[], protocol: 'udp' | 'tcp'): void {
    for (const r of relays) if (r.state !== 'failed' && r.port !== 0) this.pool(r.family, protocol).release(r.port)
  }

  /** The adapter's report on an `open-relay` action. Returns what to do next. Never throws. */
  relayOpened (relay: string, result: RelayOpenResult, now: number): RelayAction[] {
    const alloc = this.byRelay.get(relay)
    const r = alloc?.relays.find(x => x.key === relay)
    if (alloc === undefined || r === undefined || r.state !== 'opening') {
      return result.ok ? [{ type: 'close-relay', relay }] : []
    }
    const pool = this.pool(r.family, alloc.relayProtocol)
    if (result.ok) {
      r.state = 'open'
      r.port = result.bound.port
    } else {
      r.attempts++
      if (result.inUse) pool.markForeign(r.port, now); else pool.release(r.port)
      const next = result.inUse && !r.reserved && r.attempts < MAX_BIND_ATTEMPTS ? pool.take(now, r.want) : undefined
      if (next !== undefined) {
        r.port = next
        return [{ type: 'open-relay', relay: r.key, protocol: alloc.relayProtocol, address: r.bindAddress, port: next }]
      }
      r.state = 'failed'
      r.failure = 508
    }
    if (alloc.relays.some(x => x.state === 'opening')) return []
    return this.finishAllocate(alloc, now)
  }

  private finishAllocate (alloc: Allocation, now: number): RelayAction[] {
    const pending = this.pending.get(alloc)
    this.pending.delete(alloc)
    if (pending === undefined) return []
    const { req, from, transport, ctx } = pending
    this.cache.delete(this.cacheKey(req, from, transport))
    const open = alloc.relays.filter(r => r.state === 'open')
    if (open.length === 0) {
      const code = alloc.relays.find(r => r.failure !== undefined)?.failure ?? 508
      const actions = this.removeAllocation(alloc, now, undefined)
      return [...this.error(req, from, transport, code, now, ctx), ...actions]
    }
    alloc.state = 'active'
    const lifetime = alloc.pendingRequest.lifetime
    alloc.expiresAt = now + lifetime * 1000
    const relayed = open.map(r => ({ address: r.advertisedAddress, port: r.port }))
    const failed = alloc.relays.filter(r => r.state === 'failed')
    // "If all the checks pass, the server creates the allocation. [...] the server sends a success response" with
    // XOR-RELAYED-ADDRESS (one per family), LIFETIME, RESERVATION-TOKEN (EVEN-PORT R=1) and XOR-MAPPED-ADDRESS;
    // a failed second family is reported in ADDRESS-ERROR-CODE.
    const actions = this.success(req, from, transport, ctx, now, (b) => {
      for (const e of relayed) b.add(XorRelayedAddress, e)
      for (const f of failed) b.add(AddressErrorCode, { family: f.family, code: f.failure ?? 508, reason: ERROR_REASONS[f.failure ?? 508] })
      b.add(Lifetime, lifetime)
      if (alloc.reservationToken !== undefined) b.add(ReservationToken, Buffer.from(alloc.reservationToken, 'hex'))
      b.add(XorMappedAddress, from)
    })
    this.metrics.inc('natkit_relay_allocations_total', alloc.relayProtocol)
    this.updateGauges(now)
    const event: RelayEvent = {
      type: 'allocation', id: alloc.id, username: alloc.username, client: from, protocol: transport.protocol,
      relayed, transport: alloc.relayProtocol, lifetime
    }
    return [...actions, { type: 'event', event }]
  }

  /** Delete an allocation: release ports, close relays and TCP connections. */
  private removeAllocation (alloc: Allocation, now: number, reason: 'refresh' | 'expired' | 'transport-closed' | 'shutdown' | undefined): RelayAction[] {
    if (this.allocations.get(alloc.id) !== alloc) return []
    this.allocations.delete(alloc.id)
    this.tuples.delete(alloc)
    const n = (this.perUser.get(alloc.username) ?? 1) - 1
    if (n <= 0) this.perUser.delete(alloc.username); else this.perUser.set(alloc.username, n)
    this.pending.delete(alloc)
    const actions: RelayAction[] = []
    for (const r of alloc.relays) {
      this.byRelay.delete(r.key)
      if (r.state !== 'failed') {
        this.pool(r.family, alloc.relayProtocol).release(r.port)
        actions.push({ type: 'close-relay', relay: r.key })
      }
    }
    if (alloc.reservationToken !== undefined) {
      const res = this.reservations.get(alloc.reservationToken)
      if (res !== undefined) { this.reservations.delete(alloc.reservationToken); this.pool(res.family, alloc.relayProtocol).release(res.port) }
    }
    for (const id of alloc.tcpConnections) {
      this.tcp.delete(id)
      actions.push({ type: 'tcp-close', connectionId: id })
    }
    if (reason !== undefined) actions.push({ type: 'event', event: { type: 'deallocation', id: alloc.id, reason } })
    this.updateGauges(now)
    return actions
  }

  // ---------------------------------------------------------------- Refresh (RFC 8656 §8.2)

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

  private onRefresh (req: StunMessage, from: Endpoint, transport: ClientTransport, ctx: AuthContext, now: number): RelayAction[] {
    const alloc = this.ownAllocation(req, from, transport, ctx, now)
    if (Array.isArray(alloc)) return alloc
    // "If the server receives a Refresh Request with a REQUESTED-ADDRESS-FAMILY attribute and the attribute value
    //  does not match the address family of the allocation, the server MUST reply with a 443 (Peer Address Family
    //  Mismatch) Refresh error response."
    const family = req.get(RequestedAddressFamily)
    if (family !== undefined && alloc.relayFor(family) === undefined) return this.error(req, from, transport, 443, now, ctx)
    // "The server computes a value called the "desired lifetime" as follows: if the request contains a LIFETIME
    //  attribute and the attribute value is zero, then the "desired lifetime" is zero. Otherwise, [min/max as for
    //  Allocate]."
    const lifetime = this.lifetimeOf(req, true)
    const extra: RelayAction[] = []
    if (lifetime === 0) {
      // "If the "desired lifetime" is zero, then the request succeeds and the allocation is deleted." For a dual
      // allocation with REQUESTED-ADDRESS-FAMILY, only that family's relayed address goes.
      const open = alloc.relays.filter(r => r.state === 'open')
      if (family !== undefined && open.length > 1) {
        const r = alloc.relayFor(family) as RelayAddress
        r.state = 'failed'
        this.byRelay.delete(r.key)
        this.pool(r.family, alloc.relayProtocol).release(r.port)
        extra.push({ type: 'close-relay', relay: r.key })
      } else {
        extra.push(...this.removeAllocation(alloc, now, 'refresh'))
      }
    } else {
      // "If the "desired lifetime" is non-zero, then the request succeeds and the allocation's time-to-expiry is set
      //  to the "desired lifetime"."
      alloc.expiresAt = now + lifetime * 1000
      extra.push({ type: 'event', event: { type: 'refresh', id: alloc.id, lifetime } })
    }
    // "the server sends a success response with a LIFETIME attribute set to the desired lifetime".
    return [...this.success(req, from, transport, ctx, now, (b) => b.add(Lifetime, lifetime)), ...extra]
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
      for (const alloc of [...this.allocations.values()]) {
        if (alloc.state === 'active' && alloc.expiresAt <= now) {
          actions.push(...this.removeAllocation(alloc, now, 'expired'))
          continue
        }
        sweepPermissions(alloc, now)
        sweepChannels(this, alloc, now)
      }
      for (const [token, r] of this.reservations) {
        if (r.expiresAt <= now) {
          this.reservations.delete(token)
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
    for (const alloc of [...this.allocations.values()]) actions.push(...this.removeAllocation(alloc, now, 'shutdown'))
    return actions
  }

  /** The earliest time-to-expiry among active allocations (for drain), or undefined when none. */
  get allocationCount (): number { return this.allocations.size }

  /** @internal */
  updateGauges (now: number): void {
    let permissions = 0; let channels = 0
    for (const a of this.allocations.values()) {
      const c = a.counts(now)
      permissions += c.permissions; channels += c.channels
    }
    this.metrics.set('natkit_relay_allocations', this.allocations.size)
    this.metrics.set('natkit_relay_permissions', permissions)
    this.metrics.set('natkit_relay_channels', channels)
    this.metrics.set('natkit_relay_tcp_connections', this.tcp.size)
  }

  /** Sizes of the core's tables. */
  stats (now: number): CoreStats {
    let permissions = 0; let channels = 0
    for (const a of this.allocations.values()) {
      const c = a.counts(now)
      permissions += c.permissions; channels += c.channels
    }
    return {
      allocations: this.allocations.size, permissions, channels, tcpConnections: this.tcp.size,
      cachedResponses: this.cache.size, reservations: this.reservations.size, draining: this.draining
    }
  }
}

const KNOWN_REQUESTS = new Set<number>([Method.Allocate, Method.Refresh, Method.CreatePermission, Method.ChannelBind, Method.Connect, Method.ConnectionBind])

function methodName (method: number): string {
  for (const [name, value] of Object.entries(Method)) if (value === method) return name
  return 'unknown'
}
