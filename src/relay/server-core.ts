import { randomBytes } from 'node:crypto'
import { StunDecodeError } from '../errors.js'
import { createLogger } from '../log.js'
import { endpointKey, ipFamily, sameEndpoint, type Endpoint } from '../net/endpoint.js'
import {
  AddressErrorCode, AdditionalAddressFamily, ChannelNumber, ConnectionId, Data, DontFragment, ERROR_REASONS, EvenPort,
  Lifetime, MessageBuilder, MessageClass, Method, RequestedAddressFamily, RequestedTransport, ReservationToken,
  StunMessage, TransportProtocol, UnknownAttributes, XorMappedAddress, XorPeerAddress, XorRelayedAddress, classifyPacket, decodeChannelData
} from '../stun/index.js'
import { encodeRelayChannelData, isBindableChannel, looksLikeChannelData } from './channel-numbers.js'
import { Allocation, fiveTupleKey, type RelayAddress } from './allocation.js'
import { RequestAuthenticator, type AuthContext } from './auth.js'
import { resolveCoreOptions, type ResolvedCoreOptions, type TurnServerCoreOptions } from './core-options.js'
import { InMemoryRelayMetrics, type RelayMetrics } from './metrics.js'
import { PeerPolicy } from './peer-policy.js'
import { PortPool } from './port-pool.js'
import { ResponseCache } from './response-cache.js'
import { errorResponse, successResponse, unknownAttributesResponse, type AddAttributes } from './responses.js'
import type { ClientTransport, RelayIgnoreReason, RelayAction, RelayEvent, RelayOpenResult } from './types.js'

const log = createLogger('natcheck:relay:core')

/** Bind attempts per relay address before giving up with 508 (ports busy in the OS). */
const MAX_BIND_ATTEMPTS = 8
/** RFC 8656 §7.2: a reserved port is held "for about 30 seconds". */
const RESERVATION_MS = 30_000

/** One RFC 6062 peer data connection. */
interface TcpConnection {
  readonly id: number
  readonly allocation: Allocation
  readonly peer: Endpoint
  state: 'connecting' | 'waiting-bind' | 'bound'
  deadline: number
  /** The Connect request waiting for the outcome of the TCP connect. */
  connect?: { req: StunMessage, from: Endpoint, transport: ClientTransport, context: AuthContext }
  /** The client data connection once bound. */
  dataTuple?: string
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
 */
export class TurnServerCore {
  private options: ResolvedCoreOptions
  private auth: RequestAuthenticator
  private policy: PeerPolicy
  private pools = new Map<string, PortPool>()
  private readonly nonceSecret: Uint8Array
  private readonly allocations = new Map<number, Allocation>()
  private readonly byTuple = new Map<string, Allocation>()
  private readonly byRelay = new Map<string, Allocation>()
  private readonly perUser = new Map<string, number>()
  private readonly reservations = new Map<string, { family: 4 | 6, port: number, expiresAt: number }>()
  private readonly tcp = new Map<number, TcpConnection>()
  private cache: ResponseCache
  private readonly pending = new Map<Allocation, { req: StunMessage, from: Endpoint, transport: ClientTransport, ctx: AuthContext }>()
  private nextId = 1
  /** When true, new allocations are refused with 508 (graceful drain); existing ones continue. */
  draining = false
  readonly metrics: RelayMetrics

  constructor (options: TurnServerCoreOptions) {
    this.options = resolveCoreOptions(options)
    this.nonceSecret = options.nonceSecret ?? randomBytes(32)
    this.metrics = options.metrics ?? new InMemoryRelayMetrics()
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
      restSeparator: o.restSeparator,
      passwordAlgorithms: r.passwordAlgorithms,
      nonceSecret: this.nonceSecret,
      nonceLifetime: r.nonceLifetime,
      failureRate: r.authFailureRate,
      failureBurst: r.authFailureBurst,
      software: r.software
    }, this.auth?.failures)
  }

  private makePolicy (o: TurnServerCoreOptions): PeerPolicy {
    return new PeerPolicy({ allowPeer: o.allowPeer, denyPeer: o.denyPeer, ownAddresses: o.ownAddresses, ownEndpoints: o.ownEndpoints })
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
    if (old.portRange[0] !== resolved.portRange[0] || old.portRange[1] !== resolved.portRange[1]) {
      this.pools = new Map()
      for (const a of this.allocations.values()) for (const r of a.relays) this.pool(r.family, a.relayProtocol).claim(r.port)
    }
    this.cache = new ResponseCache(resolved.responseCacheTtl * 1000, resolved.maxCachedResponses)
  }

  /** The authenticator (tests use it to mint nonces). */
  get authenticator (): RequestAuthenticator { return this.auth }

  private pool (family: 4 | 6, protocol: 'udp' | 'tcp'): PortPool {
    const k = `${family}/${protocol}`
    let p = this.pools.get(k)
    if (p === undefined) { p = new PortPool(this.options.portRange[0], this.options.portRange[1]); this.pools.set(k, p) }
    return p
  }

  // ---------------------------------------------------------------- client packets

  /**
   * A packet from a client on a client-facing transport: a STUN message or a ChannelData message (for TCP/TLS,
   * one frame as cut by readStreamFrame). Never throws.
   */
  handle (packet: Uint8Array, from: Endpoint, transport: ClientTransport, now: number): RelayAction[] {
    try {
      if (looksLikeChannelData(packet)) return this.onChannelData(packet, from, transport, now)
      if (classifyPacket(packet) !== 'stun') return this.ignore('unknown-kind', 'not-stun')
      let msg: StunMessage
      try {
        msg = StunMessage.decode(packet)
      } catch (err) {
        if (err instanceof StunDecodeError) return this.ignore('malformed', 'stun-decode')
        throw err
      }
      if (msg.classic) return this.ignore('malformed', 'no-magic-cookie')
      if (msg.cls === MessageClass.Indication) return this.onIndication(msg, from, transport, now)
      if (msg.cls !== MessageClass.Request) return this.ignore('response-class', 'response')
      return this.onRequest(msg, from, transport, now)
    } catch (err) {
      log.error('handler failed on a packet from %s: %O', endpointKey(from), err)
      return this.ignore('malformed', 'internal-error')
    }
  }

  private ignore (reason: RelayIgnoreReason, metric?: string): RelayAction[] {
    if (reason === 'malformed') this.metrics.inc('natkit_relay_malformed_total', metric ?? reason)
    else this.metrics.inc('natkit_relay_dropped_total', reason)
    return [{ type: 'ignore', reason }]
  }

  private send (transport: ClientTransport, to: Endpoint, data: Uint8Array): RelayAction {
    return { type: 'send', transport, to, data }
  }

  private reply (req: StunMessage, from: Endpoint, transport: ClientTransport, data: Buffer, now: number): RelayAction[] {
    this.cache.set(this.cacheKey(req, from, transport), data, now)
    return [this.send(transport, from, data)]
  }

  private error (req: StunMessage, from: Endpoint, transport: ClientTransport, code: number, now: number, ctx?: AuthContext, add?: AddAttributes): RelayAction[] {
    this.metrics.inc('natkit_relay_error_responses_total', String(code))
    if (req.method === Method.Allocate) this.metrics.inc('natkit_relay_allocation_failures_total', String(code))
    log('%s from %s: %d %s', req.describe(), endpointKey(from), code, ERROR_REASONS[code] ?? '')
    return this.reply(req, from, transport, errorResponse(req, code, add, ctx?.security, this.options.software), now)
  }

  private success (req: StunMessage, from: Endpoint, transport: ClientTransport, ctx: AuthContext | undefined, now: number, add?: AddAttributes): RelayAction[] {
    return this.reply(req, from, transport, successResponse(req, add, ctx?.security, this.options.software), now)
  }

  private cacheKey (req: StunMessage, from: Endpoint, transport: ClientTransport): string {
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
        case Method.CreatePermission: return this.onCreatePermission(req, from, transport, ctx, now)
        case Method.ChannelBind: return this.onChannelBind(req, from, transport, ctx, now)
        case Method.Connect: return this.onConnect(req, from, transport, ctx, now)
        case Method.ConnectionBind: return this.onConnectionBind(req, from, transport, ctx, now)
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
    const tuple = fiveTupleKey(from, transport)
    if (this.byTuple.has(tuple)) return err(437)
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
      const r = this.reservations.get(hex)
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
    if (this.draining) return err(508)
    if ((this.perUser.get(ctx.username) ?? 0) >= o.userQuota || this.allocations.size >= o.totalQuota) return err(486)

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
    const alloc = new Allocation(id, tuple, from, transport, ctx.username, relayProtocol, relays,
      { lifetime, security: ctx.security }, dontFragment, now, o.bandwidth, o.bandwidthBurst)
    if (evenPort?.reserve === true) {
      const token = randomBytes(8).toString('hex')
      const primaryRelay = relays[0]
      if (primaryRelay.state === 'opening') {
        this.reservations.set(token, { family: primaryRelay.family, port: primaryRelay.port + 1, expiresAt: now + RESERVATION_MS })
        alloc.reservationToken = token
      }
    }
    this.allocations.set(id, alloc)
    this.byTuple.set(tuple, alloc)
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
    if (this.byTuple.get(alloc.tupleKey) === alloc) this.byTuple.delete(alloc.tupleKey)
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

  private ownAllocation (req: StunMessage, from: Endpoint, transport: ClientTransport, ctx: AuthContext, now: number): Allocation | RelayAction[] {
    const alloc = this.byTuple.get(fiveTupleKey(from, transport))
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

  // ---------------------------------------------------------------- CreatePermission (RFC 8656 §10.2)

  /** Common peer checks: family match (443) and policy (403). Returns an error code or undefined. */
  private peerError (alloc: Allocation, peer: Endpoint): number | undefined {
    const family = ipFamily(peer.address)
    if (family === 0 || alloc.relayFor(family) === undefined) return 443
    if (this.policy.checkAddress(peer.address) !== 'allowed') return 403
    return undefined
  }

  private onCreatePermission (req: StunMessage, from: Endpoint, transport: ClientTransport, ctx: AuthContext, now: number): RelayAction[] {
    const alloc = this.ownAllocation(req, from, transport, ctx, now)
    if (Array.isArray(alloc)) return alloc
    // "When the server receives the CreatePermission request, it processes as per Section 5 plus the specific rules
    //  mentioned here. The message is checked for validity. The CreatePermission request MUST contain at least one
    //  XOR-PEER-ADDRESS attribute and MAY contain multiple such attributes. If no such attribute exists, or if any of
    //  these attributes are invalid, then a 400 (Bad Request) error is returned. If the request is valid, but the
    //  server is unable to satisfy the request due to some capacity limit or similar, then a 508 (Insufficient
    //  Capacity) error is returned."
    const peers = req.getAll(XorPeerAddress)
    if (peers.length === 0) return this.error(req, from, transport, 400, now, ctx)
    // "If an XOR-PEER-ADDRESS attribute contains an address of an address family that is not the same as that of a
    //  relayed transport address for the allocation, the server MUST generate an error response with the 443."
    // and "[the server] MAY impose restrictions on the IP address allowed in the XOR-PEER-ADDRESS attribute; if a
    //  value is not allowed, the server rejects the request with a 403 (Forbidden) error."
    for (const p of peers) {
      const code = this.peerError(alloc, p)
      if (code !== undefined) return this.error(req, from, transport, code, now, ctx)
    }
    const fresh = new Set(peers.map(p => p.address).filter(a => !alloc.permissions.has(a)))
    if (alloc.permissions.size + fresh.size > this.options.maxPermissions) {
      this.sweepPermissions(alloc, now)
      if (alloc.permissions.size + fresh.size > this.options.maxPermissions) return this.error(req, from, transport, 508, now, ctx)
    }
    // "If the message is valid and the server is capable of carrying out the request, then the server installs or
    //  refreshes a permission for the IP address contained in each XOR-PEER-ADDRESS attribute [...]. The port
    //  portion of each attribute is ignored."
    for (const p of peers) alloc.permissions.set(p.address, now + this.options.permissionLifetime * 1000)
    this.updateGauges(now)
    return this.success(req, from, transport, ctx, now)
  }

  private sweepPermissions (alloc: Allocation, now: number): void {
    for (const [ip, t] of alloc.permissions) if (t <= now) alloc.permissions.delete(ip)
  }

  // ---------------------------------------------------------------- ChannelBind (RFC 8656 §11.2)

  private onChannelBind (req: StunMessage, from: Endpoint, transport: ClientTransport, ctx: AuthContext, now: number): RelayAction[] {
    const alloc = this.ownAllocation(req, from, transport, ctx, now)
    if (Array.isArray(alloc)) return alloc
    const err = (code: number): RelayAction[] => this.error(req, from, transport, code, now, ctx)
    // "The server checks the following: The request contains both a CHANNEL-NUMBER and an XOR-PEER-ADDRESS
    //  attribute; The channel number is in the range 0x4000 through 0x4FFF (inclusive); The channel number is not
    //  currently bound to a different transport address (same transport address is OK); The transport address is not
    //  currently bound to a different channel number. If any of these tests fail, the server replies with a 400."
    const number = req.get(ChannelNumber)
    const peer = req.get(XorPeerAddress)
    if (number === undefined || peer === undefined || !isBindableChannel(number, this.options.legacyChannels)) return err(400)
    const guard = this.options.channelRebindGuard * 1000
    const byNumber = alloc.channels.get(number)
    if (byNumber !== undefined && byNumber.expiresAt + guard <= now) this.unbind(alloc, byNumber)
    const byPeer = alloc.channelByPeer.get(endpointKey(peer))
    if (byPeer !== undefined && byPeer.expiresAt + guard <= now) this.unbind(alloc, byPeer)
    // (Within 5 minutes of expiry a binding still blocks rebinding to something else, RFC 8656 §12.)
    const current = alloc.channels.get(number)
    if (current !== undefined && !sameEndpoint(current.peer, peer)) return err(400)
    const peerCurrent = alloc.channelByPeer.get(endpointKey(peer))
    if (peerCurrent !== undefined && peerCurrent.number !== number) return err(400)
    // "If the XOR-PEER-ADDRESS attribute contains an address of an address family that is not the same as that of
    //  a relayed transport address for the allocation, the server MUST generate an error response with the 443".
    // "The server MAY impose restrictions on the IP address and port values allowed in the XOR-PEER-ADDRESS
    //  attribute; if a value is not allowed, the server rejects the request with a 403 (Forbidden) error."
    const code = this.peerError(alloc, peer) ?? (this.policy.check(peer) === 'allowed' ? undefined : 403)
    if (code !== undefined) return err(code)
    // "If the request is valid, but the server is unable to fulfill the request due to some capacity limit or
    //  similar, the server replies with a 508 (Insufficient Capacity) error."
    if (current === undefined && alloc.channels.size >= this.options.maxChannels) return err(508)
    if (!alloc.permissions.has(peer.address) && alloc.permissions.size >= this.options.maxPermissions) {
      this.sweepPermissions(alloc, now)
      if (alloc.permissions.size >= this.options.maxPermissions) return err(508)
    }
    // "Otherwise, the server replies with a ChannelBind success response. [...] If a value in the XOR-PEER-ADDRESS
    //  attribute is not allowed, [...]. Upon receiving a ChannelBind request, the server binds the channel number to
    //  the transport address for 10 minutes (or refreshes it), and installs or refreshes a permission for the IP
    //  address of the transport address for 5 minutes."
    const expiresAt = now + this.options.channelLifetime * 1000
    if (current !== undefined) current.expiresAt = expiresAt
    else {
      const binding = { number, peer: { address: peer.address, port: peer.port }, expiresAt }
      alloc.channels.set(number, binding)
      alloc.channelByPeer.set(endpointKey(peer), binding)
    }
    alloc.permissions.set(peer.address, now + this.options.permissionLifetime * 1000)
    this.updateGauges(now)
    return this.success(req, from, transport, ctx, now)
  }

  private unbind (alloc: Allocation, binding: { number: number, peer: Endpoint }): void {
    alloc.channels.delete(binding.number)
    alloc.channelByPeer.delete(endpointKey(binding.peer))
  }

  // ---------------------------------------------------------------- Send indication (RFC 8656 §11.2) and ChannelData (§12.6)

  private onIndication (msg: StunMessage, from: Endpoint, transport: ClientTransport, now: number): RelayAction[] {
    if (msg.method !== Method.Send) return this.ignore('bad-indication')
    const alloc = this.byTuple.get(fiveTupleKey(from, transport))
    if (alloc === undefined || alloc.state !== 'active' || alloc.relayProtocol !== 'udp') return this.ignore('no-allocation')
    // "When the server receives a Send indication, it processes as per Section 5 plus the specific rules mentioned
    //  here. The message is first checked for validity. The Send indication MUST contain both an XOR-PEER-ADDRESS
    //  attribute and a DATA attribute. If one of these attributes is missing or invalid, then the message is
    //  discarded. Note that the DATA attribute is allowed to contain zero bytes of data."
    let peer: Endpoint | undefined
    let data: Uint8Array | undefined
    try {
      peer = msg.get(XorPeerAddress)
      data = msg.get(Data)
    } catch {
      return this.ignore('malformed', 'attribute')
    }
    if (peer === undefined || data === undefined) return this.ignore('bad-indication')
    if (msg.unknownComprehensionRequired().length > 0) return this.ignore('unknown-attribute')
    // "The Send indication may also contain the DONT-FRAGMENT attribute. If the server is unable to set the DF bit
    //  on outgoing UDP datagrams when this attribute is present, then the server acts as if the DONT-FRAGMENT
    //  attribute is an unknown comprehension-required attribute (and thus the Send indication is discarded)."
    if (!this.options.dontFragment && msg.has(DontFragment.type)) return this.ignore('unknown-attribute')
    // "If the XOR-PEER-ADDRESS attribute contains an address of an address family that is not the same as that of
    //  a relayed transport address for the allocation, the indication is discarded."
    return this.relayOut(alloc, peer, data, now)
  }

  private onChannelData (packet: Uint8Array, from: Endpoint, transport: ClientTransport, now: number): RelayAction[] {
    let cd
    try {
      cd = decodeChannelData(packet)
    } catch {
      return this.ignore('malformed', 'channel-data')
    }
    const alloc = this.byTuple.get(fiveTupleKey(from, transport))
    if (alloc === undefined || alloc.state !== 'active' || alloc.relayProtocol !== 'udp') return this.ignore('no-allocation')
    // "If the ChannelData message is received on a channel that is not bound to any peer, then the message is
    //  silently discarded."
    const binding = alloc.activeChannel(cd.channel, now)
    if (binding === undefined) return this.ignore('no-channel')
    // "the server [...] relays it to the peer [...] (subject to the permission rules)".
    return this.relayOut(alloc, binding.peer, cd.data, now)
  }

  /** Client → peer through the relay, after the family, policy, permission and bandwidth checks. */
  private relayOut (alloc: Allocation, peer: Endpoint, data: Uint8Array, now: number): RelayAction[] {
    const family = ipFamily(peer.address)
    const relay = family === 0 ? undefined : alloc.relayFor(family)
    if (relay === undefined) return this.ignore('family-mismatch')
    if (this.policy.check(peer) !== 'allowed') return this.ignore('denied-peer')
    // "the server MUST first check if there is a permission for the IP address in XOR-PEER-ADDRESS; if not, the
    //  indication is silently discarded" (RFC 8656 §9: permissions are checked for both directions).
    if (!alloc.hasPermission(peer.address, now)) return this.ignore('no-permission')
    if (alloc.bucket !== undefined && !alloc.bucket.take(data.length, now)) return this.ignore('bandwidth')
    this.metrics.inc('natkit_relay_packets_total', 'client-to-peer')
    this.metrics.inc('natkit_relay_bytes_total', 'client-to-peer', data.length)
    return [{ type: 'relay', relay: relay.key, to: peer, data }]
  }

  // ---------------------------------------------------------------- peer → client (RFC 8656 §11.3, §12.6)

  /** A datagram from a peer on a UDP relay socket. Never throws. */
  handlePeer (relayKey: string, data: Uint8Array, peer: Endpoint, now: number): RelayAction[] {
    try {
      const alloc = this.byRelay.get(relayKey)
      if (alloc === undefined || alloc.state !== 'active') return this.ignore('unknown-relay')
      // "When the server receives a UDP datagram at a currently allocated relayed transport address, the server
      //  looks up the allocation associated with the relayed transport address. The server then checks to see
      //  whether the set of permissions for the allocation allow the relaying of the UDP datagram".
      if (!alloc.hasPermission(peer.address, now)) return this.ignore('no-permission')
      if (alloc.bucket !== undefined && !alloc.bucket.take(data.length, now)) return this.ignore('bandwidth')
      // "If relaying is permitted, then the server checks if there is a channel bound to the peer that sent the UDP
      //  datagram. If a channel is bound, then the server uses a ChannelData message to send the data to the
      //  client. If a channel is not bound, then the server uses a Data indication" with XOR-PEER-ADDRESS and DATA.
      const binding = alloc.activeChannelForPeer(peer, now)
      let out: Buffer
      if (binding !== undefined) {
        out = encodeRelayChannelData(binding.number, data, alloc.transport.protocol !== 'udp')
      } else {
        out = new MessageBuilder(Method.Data, MessageClass.Indication).add(XorPeerAddress, peer).add(Data, data).build()
      }
      this.metrics.inc('natkit_relay_packets_total', 'peer-to-client')
      this.metrics.inc('natkit_relay_bytes_total', 'peer-to-client', data.length)
      return [this.send(alloc.transport, alloc.client, out)]
    } catch (err) {
      log.error('peer handler failed: %O', err)
      return this.ignore('malformed', 'internal-error')
    }
  }

  // ---------------------------------------------------------------- RFC 6062: Connect, ConnectionBind, ConnectionAttempt

  private newConnectionId (): number {
    for (;;) {
      const id = randomBytes(4).readUInt32BE(0)
      if (id !== 0 && !this.tcp.has(id)) return id
    }
  }

  private onConnect (req: StunMessage, from: Endpoint, transport: ClientTransport, ctx: AuthContext, now: number): RelayAction[] {
    const alloc = this.ownAllocation(req, from, transport, ctx, now)
    if (Array.isArray(alloc)) return alloc
    const err = (code: number): RelayAction[] => this.error(req, from, transport, code, now, ctx)
    // RFC 6062 §5.2: "If the request is received on a connection that is not a control connection of a TCP
    // allocation [...] 400"; "The XOR-PEER-ADDRESS attribute MUST be present"; an address of another family: 443;
    // a peer the server does not allow: 403.
    if (alloc.relayProtocol !== 'tcp') return err(400)
    const peer = req.get(XorPeerAddress)
    if (peer === undefined) return err(400)
    const code = this.peerError(alloc, peer) ?? (this.policy.check(peer) === 'allowed' ? undefined : 403)
    if (code !== undefined) return err(code)
    // "If the server is currently processing a Connect request for this allocation with the same XOR-PEER-ADDRESS,
    //  it MUST return a 446 (Connection Already Exists) error. If the server has already successfully processed a
    //  Connect request for this allocation with the same XOR-PEER-ADDRESS, and the resulting client and peer data
    //  connections are either pending or active, it MUST return a 446 (Connection Already Exists) error."
    for (const id of alloc.tcpConnections) {
      const c = this.tcp.get(id)
      if (c !== undefined && sameEndpoint(c.peer, peer)) return err(446)
    }
    if (alloc.tcpConnections.size >= this.options.maxTcpConnections) return err(508)
    // "Otherwise, the server MUST initiate a TCP connection to the peer from the relayed transport address".
    const id = this.newConnectionId()
    const relay = alloc.relayFor(ipFamily(peer.address) as 4 | 6) as RelayAddress
    this.tcp.set(id, {
      id, allocation: alloc, peer, state: 'connecting', deadline: now + this.options.connectionBindTimeout * 1000,
      connect: { req, from, transport, context: ctx }
    })
    alloc.tcpConnections.add(id)
    this.cache.set(this.cacheKey(req, from, transport), 'pending', now)
    this.updateGauges(now)
    return [{ type: 'tcp-connect', connectionId: id, relay: relay.key, peer }]
  }

  /** The adapter's report on a `tcp-connect` action (RFC 6062 §5.2). Never throws. */
  peerConnectResult (connectionId: number, ok: boolean, now: number): RelayAction[] {
    const c = this.tcp.get(connectionId)
    if (c === undefined || c.state !== 'connecting' || c.connect === undefined) return ok ? [{ type: 'tcp-close', connectionId }] : []
    const { req, from, transport, context } = c.connect
    c.connect = undefined
    this.cache.delete(this.cacheKey(req, from, transport))
    if (!ok) {
      // "If the connection attempt fails or times out, the server MUST return a 447 (Connection Timeout or Failure)."
      this.dropTcp(c)
      this.metrics.inc('natkit_relay_tcp_connections_total', 'connect-failed')
      return this.error(req, from, transport, 447, now, context)
    }
    // "If the connection is successful, it is now called a peer data connection. The server MUST buffer any data
    //  received from the client [peer] until [ConnectionBind]. The server then sends a Connect success response
    //  containing the CONNECTION-ID" and starts a 30-second timer for the ConnectionBind.
    c.state = 'waiting-bind'
    c.deadline = now + this.options.connectionBindTimeout * 1000
    this.metrics.inc('natkit_relay_tcp_connections_total', 'outbound')
    return this.success(req, from, transport, context, now, (b) => b.add(ConnectionId, connectionId))
  }

  /**
   * An inbound TCP connection from a peer on a TCP allocation's relayed address (RFC 6062 §5.3). Returns the new
   * connection id (undefined: the adapter must close the connection) and the actions (the ConnectionAttempt).
   */
  peerConnectionAccepted (relayKey: string, peer: Endpoint, now: number): { connectionId: number | undefined, actions: RelayAction[] } {
    const alloc = this.byRelay.get(relayKey)
    if (alloc === undefined || alloc.state !== 'active' || alloc.relayProtocol !== 'tcp') return { connectionId: undefined, actions: this.ignore('unknown-relay') }
    // "If no permission for this peer has been installed for this allocation, the server MUST close the connection
    //  with the peer immediately."
    if (!alloc.hasPermission(peer.address, now) || this.policy.check(peer) !== 'allowed') {
      return { connectionId: undefined, actions: this.ignore('no-permission') }
    }
    if (alloc.tcpConnections.size >= this.options.maxTcpConnections) return { connectionId: undefined, actions: this.ignore('too-big') }
    // "Otherwise, the server sends a ConnectionAttempt indication to the client over the control connection. The
    //  indication MUST include an XOR-PEER-ADDRESS attribute containing the peer's address, as well as a
    //  CONNECTION-ID attribute uniquely identifying the peer data connection." It "MUST start a 30 second timer".
    const id = this.newConnectionId()
    this.tcp.set(id, { id, allocation: alloc, peer, state: 'waiting-bind', deadline: now + this.options.connectionBindTimeout * 1000 })
    alloc.tcpConnections.add(id)
    this.metrics.inc('natkit_relay_tcp_connections_total', 'inbound')
    this.updateGauges(now)
    const ind = new MessageBuilder(Method.ConnectionAttempt, MessageClass.Indication).add(XorPeerAddress, peer).add(ConnectionId, id).build()
    return { connectionId: id, actions: [this.send(alloc.transport, alloc.client, ind)] }
  }

  private onConnectionBind (req: StunMessage, from: Endpoint, transport: ClientTransport, ctx: AuthContext, now: number): RelayAction[] {
    const err = (code: number): RelayAction[] => this.error(req, from, transport, code, now, ctx)
    // RFC 6062 §5.4: "If the client connection transport is not TCP or TLS, the server MUST return a 400 (Bad
    // Request) error." "If the request does not contain the CONNECTION-ID attribute, or if this attribute does not
    // refer to an existing pending connection, the server MUST return a 400 (Bad Request) error."
    if (transport.protocol === 'udp') return err(400)
    const tuple = fiveTupleKey(from, transport)
    if (this.byTuple.has(tuple)) return err(400)
    const id = req.get(ConnectionId)
    const c = id === undefined ? undefined : this.tcp.get(id)
    if (id === undefined || c === undefined || c.state !== 'waiting-bind') return err(400)
    // The data connection must be authenticated as the allocation's user (RFC 6062 §5.4, RFC 8656 §5): 441.
    if (c.allocation.username !== ctx.username) return err(441)
    // "Otherwise, the client connection is now called a client data connection. Data received on it MUST be sent
    //  as-is to the associated peer data connection. Data received on the associated peer data connection MUST be
    //  sent as-is on this client data connection." (After the success response.)
    c.state = 'bound'
    c.dataTuple = tuple
    const response = successResponse(req, undefined, ctx.security, this.options.software)
    return [this.send(transport, from, response), { type: 'tcp-bind', connectionId: id, transport }]
  }

  /** The adapter saw a peer (or client data) TCP connection close. */
  tcpConnectionClosed (connectionId: number, now: number): RelayAction[] {
    const c = this.tcp.get(connectionId)
    if (c === undefined) return []
    this.dropTcp(c)
    this.updateGauges(now)
    return []
  }

  private dropTcp (c: TcpConnection): void {
    this.tcp.delete(c.id)
    c.allocation.tcpConnections.delete(c.id)
  }

  // ---------------------------------------------------------------- transport close, time, drain

  /**
   * A client TCP/TLS connection closed. RFC 8656 §3.1 / RFC 6062 §5: the allocation on that 5-tuple ends (and with
   * it its peer data connections); a client data connection takes its peer connection with it.
   */
  transportClosed (from: Endpoint, transport: ClientTransport, now: number): RelayAction[] {
    const tuple = fiveTupleKey(from, transport)
    const alloc = this.byTuple.get(tuple)
    if (alloc !== undefined) return this.removeAllocation(alloc, now, 'transport-closed')
    for (const c of this.tcp.values()) {
      if (c.dataTuple === tuple) { this.dropTcp(c); return [{ type: 'tcp-close', connectionId: c.id }] }
    }
    return []
  }

  /**
   * Advance time: expire allocations (RFC 8656 §6 time-to-expiry), permissions (§9), channels (§12, after the
   * 5-minute guard), reservations, unbound RFC 6062 connections, cached responses and idle rate-limit buckets.
   */
  tick (now: number): RelayAction[] {
    const actions: RelayAction[] = []
    try {
      const guard = this.options.channelRebindGuard * 1000
      for (const alloc of [...this.allocations.values()]) {
        if (alloc.state === 'active' && alloc.expiresAt <= now) {
          actions.push(...this.removeAllocation(alloc, now, 'expired'))
          continue
        }
        this.sweepPermissions(alloc, now)
        for (const b of [...alloc.channels.values()]) if (b.expiresAt + guard <= now) this.unbind(alloc, b)
      }
      for (const [token, r] of this.reservations) {
        if (r.expiresAt <= now) {
          this.reservations.delete(token)
          this.pool(r.family, 'udp').release(r.port)
        }
      }
      for (const c of [...this.tcp.values()]) {
        if (c.state === 'bound' || c.deadline > now) continue
        // RFC 6062 §5.2/§5.3: "If the timer expires before a ConnectionBind arrives, the server MUST close the peer
        // data connection"; a Connect still waiting for its TCP handshake gets a 447.
        this.dropTcp(c)
        if (c.connect !== undefined) {
          const { req, from, transport, context } = c.connect
          this.cache.delete(this.cacheKey(req, from, transport))
          actions.push(...this.error(req, from, transport, 447, now, context))
        }
        actions.push({ type: 'tcp-close', connectionId: c.id })
      }
      this.cache.sweep(now)
      this.auth.failures.sweep(now)
      this.updateGauges(now)
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

  private updateGauges (now: number): void {
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
