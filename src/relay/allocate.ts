import { randomBytes } from 'node:crypto'
import type { Endpoint } from '../net/endpoint.js'
import {
  AddressErrorCode, AdditionalAddressFamily, AlternateServer, DontFragment, ERROR_REASONS, EvenPort, Lifetime,
  RequestedAddressFamily, RequestedTransport, ReservationToken, TransportProtocol, XorMappedAddress, XorRelayedAddress,
  type StunMessage
} from '../stun/index.js'
import { Allocation, fiveTupleKey, type RelayAddress } from './allocation.js'
import type { AuthContext } from './auth.js'
import { checkReservationToken, reservationToken } from './reservation-token.js'
import type { AddAttributes } from './responses.js'
import type { TurnServerCore } from './server-core.js'
import type { ClientTransport, RelayAction, RelayEvent, RelayOpenResult } from './types.js'

/**
 * Allocate (RFC 8656 §6, §7.2): the request's checks in the RFC's numbered steps, the choice of relay ports, the
 * adapter's report on binding them (retrying ports the OS holds elsewhere), and the success or error response once
 * every relayed address is bound or failed. The allocation tables are the core's (allocation-table.ts).
 */

/**
 * Bind attempts per relay address before giving up with 508. Ports the pool thinks free may be busy in the OS (other
 * programs, another relay on the host): with 10 000 of 16 384 ports taken elsewhere, 8 random tries still failed 2 %
 * of the time, 64 fail with odds below 1e-13.
 */
const MAX_BIND_ATTEMPTS = 64
/** RFC 8656 §7.2: a reserved port is held "for about 30 seconds". */
const RESERVATION_MS = 30_000

/**
 * The lifetime an Allocate or Refresh gets (RFC 8656 §7.2 step 6 of the response, §8.2 "desired lifetime"): the
 * default without LIFETIME; zero when allowed and asked; else the requested value capped at the maximum, and never
 * below the default.
 */
export function lifetimeOf (core: TurnServerCore, req: StunMessage, allowZero: boolean): number {
  const requested = req.get(Lifetime)
  if (requested === undefined) return core.options.defaultLifetime
  if (requested === 0 && allowZero) return 0
  // "If the request contains a LIFETIME attribute, then the server computes the minimum of the client's proposed
  //  lifetime and the server's maximum allowed lifetime. If this computed value is greater than the default
  //  lifetime, then the server uses the computed lifetime [...]. Otherwise, the server uses the default lifetime."
  const m = Math.min(requested, core.options.maxLifetime)
  return m > core.options.defaultLifetime ? m : core.options.defaultLifetime
}

/** An authenticated Allocate request (RFC 8656 §7.2, RFC 6062 §5.1, RFC 6156 via RFC 8656). */
export function onAllocate (core: TurnServerCore, req: StunMessage, from: Endpoint, transport: ClientTransport, ctx: AuthContext, now: number): RelayAction[] {
  const o = core.options
  const err = (code: number, add?: AddAttributes): RelayAction[] => core.error(req, from, transport, code, now, ctx, add)
  // 1. "The server MUST require that the request be authenticated." (done by the caller)
  // 2. "The server checks if the 5-tuple is currently in use by an existing allocation. If yes, the server rejects
  //    the request with a 437 (Allocation Mismatch) error." (Retransmissions were answered from the cache.)
  if (core.tuples.has(from, transport)) return err(437)
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
    const r = core.table.reservations.get(hex) ?? (core.sharedReservations ? checkReservationToken(core.nonceSecret, tokenBytes, now) : undefined)
    if (r === undefined || r.expiresAt <= now) return err(508)
    core.table.reservations.delete(hex)
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
  const available = families.filter(f => bindAddressFor(core, f) !== undefined)
  if (available.length === 0) return err(440)
  // 8. EVEN-PORT is honoured when the relay ports are picked (below). 9. Quotas: "At any point, the server MAY
  //    choose to reject the request with a 486 (Allocation Quota Reached) error if it feels the client is trying
  //    to exceed some locally defined allocation quota." A draining server has no capacity: 508.
  const tryAlternate = (): RelayAction[] | undefined => {
    const alt = core.alternate?.()
    return alt === undefined ? undefined : err(300, (b) => b.add(AlternateServer, alt))
  }
  if (core.draining) return tryAlternate() ?? err(508)
  // A listener removed by a reload takes no new allocations (its existing ones live on): 508, as when draining.
  if (core.closedListeners.length > 0 && core.listenerClosed(transport)) return err(508)
  const elsewhere = core.quotaElsewhere
  const userCount = core.table.userCount(ctx.username) + (elsewhere?.user(ctx.username) ?? 0)
  const quota = userCount >= o.userQuota ? 'user' : core.table.size + (elsewhere?.total() ?? 0) >= o.totalQuota ? 'total' : undefined
  if (quota === 'total') {
    const redirected = tryAlternate()
    if (redirected !== undefined) return redirected
  }
  if (quota !== undefined) {
    core.metrics.inc('natkit_relay_quota_refusals_total', quota)
    const limit = quota === 'user' ? o.userQuota : o.totalQuota
    return [{ type: 'event', event: { type: 'quota-refused', quota, limit, username: ctx.username, client: from, protocol: transport.protocol } }, ...err(486)]
  }

  // Pick the relay ports ("the server chooses a relayed transport address for the allocation").
  const id = core.newAllocationId()
  const want: RelayAddress['want'] = evenPort === undefined ? 'any' : evenPort.reserve ? 'even-pair' : 'even'
  const relays: RelayAddress[] = []
  for (const family of families) {
    const bindAddress = bindAddressFor(core, family)
    const base = {
      key: `a${id}v${family}`, family, attempts: 0, reserved: reservedPort !== undefined,
      want: family === primary ? want : 'any' as RelayAddress['want']
    }
    if (bindAddress === undefined) {
      relays.push({ ...base, bindAddress: '', advertisedAddress: '', port: 0, state: 'failed', failure: 440 })
      continue
    }
    let port: number | undefined
    if (reservedPort !== undefined) { port = reservedPort.port } else port = core.table.pool(family, relayProtocol).take(now, base.want)
    const advertisedAddress = (family === 4 ? o.externalAddress : o.externalAddress6) ?? bindAddress
    if (port === undefined) relays.push({ ...base, bindAddress, advertisedAddress, port: 0, state: 'failed', failure: 508 })
    else relays.push({ ...base, bindAddress, advertisedAddress, port, state: 'opening' })
  }
  if (relays.every(r => r.state === 'failed')) {
    releasePorts(core, relays, relayProtocol)
    return err(relays.some(r => r.failure === 508) ? 508 : 440)
  }
  const lifetime = lifetimeOf(core, req, false)
  const alloc = new Allocation(id, fiveTupleKey(from, transport), from, transport, ctx.username, relayProtocol, relays,
    { lifetime, security: ctx.security }, dontFragment, now, o.bandwidth, o.bandwidthBurst)
  if (evenPort?.reserve === true) {
    const primaryRelay = relays[0]
    const token = (core.sharedReservations ? reservationToken(core.nonceSecret, primaryRelay.family, primaryRelay.port + 1, now) : randomBytes(8)).toString('hex')
    if (primaryRelay.state === 'opening') {
      core.table.reservations.set(token, { family: primaryRelay.family, port: primaryRelay.port + 1, expiresAt: now + RESERVATION_MS })
      alloc.reservationToken = token
    }
  }
  core.table.add(alloc)
  core.pending.set(alloc, { req, from, transport, ctx })
  core.cache.set(core.cacheKey(req, from, transport), 'pending', now)
  return relays.filter(r => r.state === 'opening').map(r => ({ type: 'open-relay', relay: r.key, protocol: relayProtocol, address: r.bindAddress, port: r.port }))
}

function bindAddressFor (core: TurnServerCore, family: 4 | 6): string | undefined {
  return family === 4 ? core.options.relayAddress : core.options.relayAddress6
}

function releasePorts (core: TurnServerCore, relays: RelayAddress[], protocol: 'udp' | 'tcp'): void {
  for (const r of relays) if (r.state !== 'failed' && r.port !== 0) core.table.pool(r.family, protocol).release(r.port)
}

/** The adapter's report on an `open-relay` action: the allocation completes (success or error response) once every relay socket is bound or failed. */
export function relayOpened (core: TurnServerCore, relay: string, result: RelayOpenResult, now: number): RelayAction[] {
  const alloc = core.byRelay.get(relay)
  const r = alloc?.relays.find(x => x.key === relay)
  if (alloc === undefined || r === undefined || r.state !== 'opening') {
    return result.ok ? [{ type: 'close-relay', relay }] : []
  }
  const pool = core.table.pool(r.family, alloc.relayProtocol)
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
  return finishAllocate(core, alloc, now)
}

function finishAllocate (core: TurnServerCore, alloc: Allocation, now: number): RelayAction[] {
  const pending = core.pending.get(alloc)
  core.pending.delete(alloc)
  if (pending === undefined) return []
  const { req, from, transport, ctx } = pending
  core.cache.delete(core.cacheKey(req, from, transport))
  const open = alloc.relays.filter(r => r.state === 'open')
  if (open.length === 0) {
    const code = alloc.relays.find(r => r.failure !== undefined)?.failure ?? 508
    const actions = core.removeAllocation(alloc, now, undefined)
    return [...core.error(req, from, transport, code, now, ctx), ...actions]
  }
  alloc.state = 'active'
  const lifetime = alloc.pendingRequest.lifetime
  alloc.expiresAt = now + lifetime * 1000
  const relayed = open.map(r => ({ address: r.advertisedAddress, port: r.port }))
  const failed = alloc.relays.filter(r => r.state === 'failed')
  // "If all the checks pass, the server creates the allocation. [...] the server sends a success response" with
  // XOR-RELAYED-ADDRESS (one per family), LIFETIME, RESERVATION-TOKEN (EVEN-PORT R=1) and XOR-MAPPED-ADDRESS;
  // a failed second family is reported in ADDRESS-ERROR-CODE.
  const actions = core.success(req, from, transport, ctx, now, (b) => {
    for (const e of relayed) b.add(XorRelayedAddress, e)
    for (const f of failed) b.add(AddressErrorCode, { family: f.family, code: f.failure ?? 508, reason: ERROR_REASONS[f.failure ?? 508] })
    b.add(Lifetime, lifetime)
    if (alloc.reservationToken !== undefined) b.add(ReservationToken, Buffer.from(alloc.reservationToken, 'hex'))
    b.add(XorMappedAddress, from)
  })
  core.metrics.inc('natkit_relay_allocations_total', alloc.relayProtocol)
  core.updateGauges(now)
  const event: RelayEvent = {
    type: 'allocation', id: alloc.id, username: alloc.username, client: from, protocol: transport.protocol,
    relayed, transport: alloc.relayProtocol, lifetime
  }
  return [...actions, { type: 'event', event }]
}
