import type { Endpoint } from '../net/endpoint.js'
import { Lifetime, RequestedAddressFamily, type StunMessage } from '../stun/index.js'
import type { RelayAddress } from './allocation.js'
import { lifetimeOf } from './allocate.js'
import type { AuthContext } from './auth.js'
import type { TurnServerCore } from './server-core.js'
import type { ClientTransport, RelayAction } from './types.js'

/** An authenticated Refresh request (RFC 8656 §8.2, with RFC 6156's REQUESTED-ADDRESS-FAMILY rules). */
export function onRefresh (core: TurnServerCore, req: StunMessage, from: Endpoint, transport: ClientTransport, ctx: AuthContext, now: number): RelayAction[] {
  const alloc = core.ownAllocation(req, from, transport, ctx, now)
  if (Array.isArray(alloc)) return alloc
  // "If the server receives a Refresh Request with a REQUESTED-ADDRESS-FAMILY attribute and the attribute value
  //  does not match the address family of the allocation, the server MUST reply with a 443 (Peer Address Family
  //  Mismatch) Refresh error response."
  const family = req.get(RequestedAddressFamily)
  if (family !== undefined && alloc.relayFor(family) === undefined) return core.error(req, from, transport, 443, now, ctx)
  // "The server computes a value called the "desired lifetime" as follows: if the request contains a LIFETIME
  //  attribute and the attribute value is zero, then the "desired lifetime" is zero. Otherwise, [min/max as for
  //  Allocate]."
  const lifetime = lifetimeOf(core, req, true)
  const extra: RelayAction[] = []
  if (lifetime === 0) {
    // "If the "desired lifetime" is zero, then the request succeeds and the allocation is deleted." For a dual
    // allocation with REQUESTED-ADDRESS-FAMILY, only that family's relayed address goes.
    const open = alloc.relays.filter(r => r.state === 'open')
    if (family !== undefined && open.length > 1) {
      const r = alloc.relayFor(family) as RelayAddress
      r.state = 'failed'
      core.byRelay.delete(r.key)
      core.table.pool(r.family, alloc.relayProtocol).release(r.port)
      extra.push({ type: 'close-relay', relay: r.key })
    } else {
      extra.push(...core.removeAllocation(alloc, now, 'refresh'))
    }
  } else {
    // "If the "desired lifetime" is non-zero, then the request succeeds and the allocation's time-to-expiry is set
    //  to the "desired lifetime"."
    alloc.expiresAt = now + lifetime * 1000
    extra.push({ type: 'event', event: { type: 'refresh', id: alloc.id, lifetime } })
  }
  // "the server sends a success response with a LIFETIME attribute set to the desired lifetime".
  return [...core.success(req, from, transport, ctx, now, (b) => b.add(Lifetime, lifetime)), ...extra]
}
