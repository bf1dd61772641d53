import { ipFamily, sameEndpoint, type Endpoint } from '../net/endpoint.js'
import { ChannelNumber, XorPeerAddress, isAcceptedChannel, type StunMessage } from '../stun/index.js'
import type { Allocation, ChannelBinding, RelayAddress } from './allocation.js'
import type { AuthContext } from './auth.js'
import type { TurnServerCore } from './server-core.js'
import type { ClientTransport, RelayAction } from './types.js'

/** CreatePermission (RFC 8656 §10.2) and ChannelBind (RFC 8656 §12.2; channels §12). */

/** A CreatePermission request (RFC 8656 §10.2). */
export function onCreatePermission (core: TurnServerCore, req: StunMessage, from: Endpoint, transport: ClientTransport, ctx: AuthContext, now: number): RelayAction[] {
  const alloc = core.ownAllocation(req, from, transport, ctx, now)
  if (Array.isArray(alloc)) return alloc
  // "When the server receives the CreatePermission request, it processes as per Section 5 plus the specific rules
  //  mentioned here. The message is checked for validity. The CreatePermission request MUST contain at least one
  //  XOR-PEER-ADDRESS attribute and MAY contain multiple such attributes. If no such attribute exists, or if any of
  //  these attributes are invalid, then a 400 (Bad Request) error is returned. If the request is valid, but the
  //  server is unable to satisfy the request due to some capacity limit or similar, then a 508 (Insufficient
  //  Capacity) error is returned."
  const peers = req.getAll(XorPeerAddress)
  if (peers.length === 0) return core.error(req, from, transport, 400, now, ctx)
  // "If an XOR-PEER-ADDRESS attribute contains an address of an address family that is not the same as that of a
  //  relayed transport address for the allocation, the server MUST generate an error response with the 443."
  // and "[the server] MAY impose restrictions on the IP address allowed in the XOR-PEER-ADDRESS attribute; if a
  //  value is not allowed, the server rejects the request with a 403 (Forbidden) error."
  for (const p of peers) {
    const code = core.peerError(alloc, p)
    if (code !== undefined) return core.error(req, from, transport, code, now, ctx)
  }
  const fresh = new Set(peers.map(p => p.address).filter(a => !alloc.permissions.has(a)))
  if (alloc.permissions.size + fresh.size > core.options.maxPermissions) {
    sweepPermissions(alloc, now)
    if (alloc.permissions.size + fresh.size > core.options.maxPermissions) return core.error(req, from, transport, 508, now, ctx)
  }
  // "If the message is valid and the server is capable of carrying out the request, then the server installs or
  //  refreshes a permission for the IP address contained in each XOR-PEER-ADDRESS attribute [...]. The port
  //  portion of each attribute is ignored."
  for (const p of peers) alloc.permissions.set(p.address, now + core.options.permissionLifetime * 1000)
  core.updateGauges(now)
  return core.success(req, from, transport, ctx, now)
}

/** Drop expired permissions (RFC 8656 §9: a permission lasts 300 s unless refreshed). */
export function sweepPermissions (alloc: Allocation, now: number): void {
  for (const [ip, t] of alloc.permissions) if (t <= now) alloc.permissions.delete(ip)
}

/** A ChannelBind request (RFC 8656 §12.2). */
export function onChannelBind (core: TurnServerCore, req: StunMessage, from: Endpoint, transport: ClientTransport, ctx: AuthContext, now: number): RelayAction[] {
  const alloc = core.ownAllocation(req, from, transport, ctx, now)
  if (Array.isArray(alloc)) return alloc
  const err = (code: number): RelayAction[] => core.error(req, from, transport, code, now, ctx)
  // "The server checks the following: The request contains both a CHANNEL-NUMBER and an XOR-PEER-ADDRESS
  //  attribute; The channel number is in the range 0x4000 through 0x4FFF (inclusive); The channel number is not
  //  currently bound to a different transport address (same transport address is OK); The transport address is not
  //  currently bound to a different channel number. If any of these tests fail, the server replies with a 400."
  // (With legacyChannels, RFC 5766's 0x4000 through 0x7FFF, as coturn accepts.)
  const number = req.get(ChannelNumber)
  const peer = req.get(XorPeerAddress)
  if (number === undefined || peer === undefined || !isAcceptedChannel(number, core.channelOptions)) return err(400)
  const guard = core.options.channelRebindGuard * 1000
  const byNumber = alloc.channels.get(number)
  if (byNumber !== undefined && byNumber.expiresAt + guard <= now) alloc.removeChannel(byNumber)
  const byPeer = alloc.channelForPeer(peer)
  if (byPeer !== undefined && byPeer.expiresAt + guard <= now) alloc.removeChannel(byPeer)
  // (Within 5 minutes of expiry a binding still blocks rebinding to something else, RFC 8656 §12.)
  const current = alloc.channels.get(number)
  if (current !== undefined && !sameEndpoint(current.peer, peer)) return err(400)
  const peerCurrent = alloc.channelForPeer(peer)
  if (peerCurrent !== undefined && peerCurrent.number !== number) return err(400)
  // "If the XOR-PEER-ADDRESS attribute contains an address of an address family that is not the same as that of
  //  a relayed transport address for the allocation, the server MUST generate an error response with the 443".
  // "The server MAY impose restrictions on the IP address and port values allowed in the XOR-PEER-ADDRESS
  //  attribute; if a value is not allowed, the server rejects the request with a 403 (Forbidden) error."
  const code = core.peerError(alloc, peer) ?? (core.policy.check(peer) === 'allowed' ? undefined : 403)
  if (code !== undefined) return err(code)
  // "If the request is valid, but the server is unable to fulfill the request due to some capacity limit or
  //  similar, the server replies with a 508 (Insufficient Capacity) error."
  if (current === undefined && alloc.channels.size >= core.options.maxChannels) return err(508)
  if (!alloc.permissions.has(peer.address) && alloc.permissions.size >= core.options.maxPermissions) {
    sweepPermissions(alloc, now)
    if (alloc.permissions.size >= core.options.maxPermissions) return err(508)
  }
  // "Otherwise, the server replies with a ChannelBind success response. [...] Upon receiving a ChannelBind request,
  //  the server binds the channel number to the transport address for 10 minutes (or refreshes it), and installs or
  //  refreshes a permission for the IP address of the transport address for 5 minutes."
  const expiresAt = now + core.options.channelLifetime * 1000
  if (current !== undefined) current.expiresAt = expiresAt
  else {
    const relay = alloc.relayFor(ipFamily(peer.address) as 4 | 6) as RelayAddress
    const binding: ChannelBinding = {
      number, peer: { address: peer.address, port: peer.port }, expiresAt, relay, policyAllowed: true, policyGeneration: core.policyGeneration
    }
    alloc.addChannel(binding)
  }
  alloc.permissions.set(peer.address, now + core.options.permissionLifetime * 1000)
  core.updateGauges(now)
  return core.success(req, from, transport, ctx, now)
}

/** Expire channels past their rebind guard (RFC 8656 §12). */
export function sweepChannels (core: TurnServerCore, alloc: Allocation, now: number): void {
  const guard = core.options.channelRebindGuard * 1000
  for (const b of [...alloc.channels.values()]) if (b.expiresAt + guard <= now) alloc.removeChannel(b)
}
