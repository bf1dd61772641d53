import { randomBytes } from 'node:crypto'
import { ipFamily, sameEndpoint, type Endpoint } from '../net/endpoint.js'
import { ConnectionId, MessageBuilder, MessageClass, Method, XorPeerAddress, type StunMessage } from '../stun/index.js'
import { fiveTupleKey, type Allocation, type RelayAddress } from './allocation.js'
import type { AuthContext } from './auth.js'
import { successResponse } from './responses.js'
import type { TurnServerCore } from './server-core.js'
import type { ClientTransport, RelayAction } from './types.js'

/**
 * RFC 6062 (TURN extensions for TCP allocations): Connect (§5.2), the ConnectionAttempt indication for inbound peer
 * connections (§5.3), ConnectionBind (§5.4), and the 30-second timers. The adapter owns the TCP sockets; these
 * functions keep the connection table of the core and tell the adapter what to connect, join or close.
 */

/** One RFC 6062 peer data connection. */
export interface TcpConnection {
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

/**
 * The worker whose CONNECTION-IDs include `id` when `count` servers share out the id space (see
 * TurnServerCoreOptions.connectionIds): `id mod count`.
 */
export function connectionIdOwner (id: number, count: number): number {
  return id % count
}

/** A random CONNECTION-ID (RFC 6062 §6.2.1, 32 bits, not 0) of this server's class, not in use. */
function newConnectionId (core: TurnServerCore): number {
  const { index, of } = core.options.connectionIds
  // Uniform over the ids ≡ index (mod of) in [1, 2^32 - 1].
  const classes = Math.floor((0xffffffff - index) / of) + 1
  for (;;) {
    const id = (randomBytes(4).readUInt32BE(0) % classes) * of + index
    if (id !== 0 && !core.tcp.has(id)) return id
  }
}

/** A Connect request (RFC 6062 §5.2). */
export function onConnect (core: TurnServerCore, req: StunMessage, from: Endpoint, transport: ClientTransport, ctx: AuthContext, now: number): RelayAction[] {
  const alloc = core.ownAllocation(req, from, transport, ctx, now)
  if (Array.isArray(alloc)) return alloc
  const err = (code: number): RelayAction[] => core.error(req, from, transport, code, now, ctx)
  // "If the request is received on a connection that is not a control connection of a TCP allocation [...] 400";
  // "The XOR-PEER-ADDRESS attribute MUST be present"; an address of another family: 443; a peer the server does not
  // allow: 403.
  if (alloc.relayProtocol !== 'tcp') return err(400)
  const peer = req.get(XorPeerAddress)
  if (peer === undefined) return err(400)
  const code = core.peerError(alloc, peer) ?? (core.policy.check(peer) === 'allowed' ? undefined : 403)
  if (code !== undefined) return err(code)
  // "If the server is currently processing a Connect request for this allocation with the same XOR-PEER-ADDRESS,
  //  it MUST return a 446 (Connection Already Exists) error. If the server has already successfully processed a
  //  Connect request for this allocation with the same XOR-PEER-ADDRESS, and the resulting client and peer data
  //  connections are either pending or active, it MUST return a 446 (Connection Already Exists) error."
  for (const id of alloc.tcpConnections) {
    const c = core.tcp.get(id)
    if (c !== undefined && sameEndpoint(c.peer, peer)) return err(446)
  }
  if (alloc.tcpConnections.size >= core.options.maxTcpConnections) return err(508)
  // "Otherwise, the server MUST initiate a TCP connection to the peer from the relayed transport address".
  const id = newConnectionId(core)
  const relay = alloc.relayFor(ipFamily(peer.address) as 4 | 6) as RelayAddress
  core.tcp.set(id, {
    id, allocation: alloc, peer, state: 'connecting', deadline: now + core.options.connectionBindTimeout * 1000,
    connect: { req, from, transport, context: ctx }
  })
  alloc.tcpConnections.add(id)
  core.cache.set(core.cacheKey(req, from, transport), 'pending', now)
  core.updateGauges(now)
  return [{ type: 'tcp-connect', connectionId: id, relay: relay.key, peer }]
}

/** The adapter's report on a `tcp-connect` action (RFC 6062 §5.2). */
export function peerConnectResult (core: TurnServerCore, connectionId: number, ok: boolean, now: number): RelayAction[] {
  const c = core.tcp.get(connectionId)
  if (c === undefined || c.state !== 'connecting' || c.connect === undefined) return ok ? [{ type: 'tcp-close', connectionId }] : []
  const { req, from, transport, context } = c.connect
  c.connect = undefined
  core.cache.delete(core.cacheKey(req, from, transport))
  if (!ok) {
    // "If the connection attempt fails or times out, the server MUST return a 447 (Connection Timeout or Failure)."
    dropTcp(core, c)
    core.metrics.inc('natkit_relay_tcp_connections_total', 'connect-failed')
    return core.error(req, from, transport, 447, now, context)
  }
  // "If the connection is successful, it is now called a peer data connection. The server MUST buffer any data
  //  received from the client [peer] until [ConnectionBind]. The server then sends a Connect success response
  //  containing the CONNECTION-ID" and starts a 30-second timer for the ConnectionBind.
  c.state = 'waiting-bind'
  c.deadline = now + core.options.connectionBindTimeout * 1000
  core.metrics.inc('natkit_relay_tcp_connections_total', 'outbound')
  return core.success(req, from, transport, context, now, (b) => b.add(ConnectionId, connectionId))
}

/** An inbound peer TCP connection on a TCP allocation's relayed address (RFC 6062 §5.3). */
export function peerConnectionAccepted (core: TurnServerCore, relayKey: string, peer: Endpoint, now: number): { connectionId: number | undefined, actions: RelayAction[] } {
  const alloc = core.byRelay.get(relayKey)
  if (alloc === undefined || alloc.state !== 'active' || alloc.relayProtocol !== 'tcp') return { connectionId: undefined, actions: core.ignore('unknown-relay') }
  // "If no permission for this peer has been installed for this allocation, the server MUST close the connection
  //  with the peer immediately."
  if (!alloc.hasPermission(peer.address, now) || core.policy.check(peer) !== 'allowed') {
    return { connectionId: undefined, actions: core.ignore('no-permission') }
  }
  if (alloc.tcpConnections.size >= core.options.maxTcpConnections) return { connectionId: undefined, actions: core.ignore('too-big') }
  // "Otherwise, the server sends a ConnectionAttempt indication to the client over the control connection. The
  //  indication MUST include an XOR-PEER-ADDRESS attribute containing the peer's address, as well as a
  //  CONNECTION-ID attribute uniquely identifying the peer data connection." It "MUST start a 30 second timer".
  const id = newConnectionId(core)
  core.tcp.set(id, { id, allocation: alloc, peer, state: 'waiting-bind', deadline: now + core.options.connectionBindTimeout * 1000 })
  alloc.tcpConnections.add(id)
  core.metrics.inc('natkit_relay_tcp_connections_total', 'inbound')
  core.updateGauges(now)
  const ind = new MessageBuilder(Method.ConnectionAttempt, MessageClass.Indication).add(XorPeerAddress, peer).add(ConnectionId, id).build()
  return { connectionId: id, actions: [core.send(alloc.transport, alloc.client, ind)] }
}

/** A ConnectionBind request (RFC 6062 §5.4). */
export function onConnectionBind (core: TurnServerCore, req: StunMessage, from: Endpoint, transport: ClientTransport, ctx: AuthContext, now: number): RelayAction[] {
  const err = (code: number): RelayAction[] => core.error(req, from, transport, code, now, ctx)
  // "If the client connection transport is not TCP or TLS, the server MUST return a 400 (Bad Request) error."
  // "If the request does not contain the CONNECTION-ID attribute, or if this attribute does not refer to an
  // existing pending connection, the server MUST return a 400 (Bad Request) error."
  if (transport.protocol === 'udp') return err(400)
  if (core.tuples.has(from, transport)) return err(400)
  // A CONNECTION-ID of another worker's class (a data connection that reached the wrong process) refers to no
  // pending connection here: 400 as well, the answer §5.4 gives; the primary routes by class, so only a
  // ConnectionBind over TLS from another source address than its control connection can get here (relay-workers.ts).
  const id = req.get(ConnectionId)
  const c = id === undefined ? undefined : core.tcp.get(id)
  if (id === undefined || c === undefined || c.state !== 'waiting-bind') return err(400)
  // The data connection must be authenticated as the allocation's user (RFC 6062 §5.4, RFC 8656 §5): 441.
  if (c.allocation.username !== ctx.username) return err(441)
  // "Otherwise, the client connection is now called a client data connection. Data received on it MUST be sent
  //  as-is to the associated peer data connection. Data received on the associated peer data connection MUST be
  //  sent as-is on this client data connection." (After the success response.)
  c.state = 'bound'
  c.dataTuple = fiveTupleKey(from, transport)
  const response = successResponse(req, undefined, ctx.security, core.options.software)
  return [core.send(transport, from, response), { type: 'tcp-bind', connectionId: id, transport }]
}

/** Forget a connection. */
export function dropTcp (core: TurnServerCore, c: TcpConnection): void {
  core.tcp.delete(c.id)
  c.allocation.tcpConnections.delete(c.id)
}

/** A client data connection closed: its peer connection goes with it (RFC 6062 §5.5). */
export function dataConnectionClosed (core: TurnServerCore, tuple: string): RelayAction[] {
  for (const c of core.tcp.values()) {
    if (c.dataTuple === tuple) { dropTcp(core, c); return [{ type: 'tcp-close', connectionId: c.id }] }
  }
  return []
}

/**
 * The 30-second timers: "If the timer expires before a ConnectionBind arrives, the server MUST close the peer data
 * connection" (§5.2/§5.3); a Connect still waiting for its TCP handshake gets a 447.
 */
export function expireTcp (core: TurnServerCore, now: number): RelayAction[] {
  const actions: RelayAction[] = []
  for (const c of [...core.tcp.values()]) {
    if (c.state === 'bound' || c.deadline > now) continue
    dropTcp(core, c)
    if (c.connect !== undefined) {
      const { req, from, transport, context } = c.connect
      core.cache.delete(core.cacheKey(req, from, transport))
      actions.push(...core.error(req, from, transport, 447, now, context))
    }
    actions.push({ type: 'tcp-close', connectionId: c.id })
  }
  return actions
}
