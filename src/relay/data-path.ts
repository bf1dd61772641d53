import { ipFamily, type Endpoint } from '../net/endpoint.js'
import { Data, DontFragment, MessageBuilder, MessageClass, Method, XorPeerAddress, encodeChannelData, type StunMessage } from '../stun/index.js'
import type { Allocation, ChannelBinding, RelayAddress } from './allocation.js'
import type { TurnServerCore } from './server-core.js'
import type { ClientTransport, RelayAction } from './types.js'

/**
 * The relay's data path: Send indications and ChannelData from clients (RFC 8656 §11.2, §12.6), UDP datagrams from
 * peers (§11.3, §12.7). This is the hot path, so it allocates as little as it can: the ChannelData header is read in
 * place and the payload forwarded as a view of the received packet; the 5-tuple and the peer's channel are found
 * without building string keys; the peer policy verdict is cached on the channel binding; traffic is counted in
 * plain numbers (TrafficCounters) that the metrics read when scraped. With a RelaySink the forwarded packets go
 * straight to the adapter and no action objects are made.
 */

/**
 * Where the data path delivers when the adapter installs one (TurnServerCore.sink). Both are called synchronously
 * with views of the packet being handled: a sink that keeps the bytes beyond the call must copy them.
 */
export interface RelaySink {
  /** Send `data` to `peer` from the relay socket `relay` (RFC 8656 §12.6: "relays it to the peer"). */
  toPeer (relay: string, peer: Endpoint, data: Uint8Array): void
  /**
   * Send `data` to the client as a ChannelData message on `channel` (RFC 8656 §12.4; over TCP/TLS padded to 4 bytes,
   * §12.5). The sink frames it, so it can reuse a buffer when its socket copies on send.
   */
  toClient (transport: ClientTransport, client: Endpoint, channel: number, data: Uint8Array): void
}

/** Relayed traffic, counted in plain numbers on the hot path and flushed into the metrics when they are read. */
export interface TrafficCounters {
  clientToPeerPackets: number
  clientToPeerBytes: number
  peerToClientPackets: number
  peerToClientBytes: number
}

/**
 * The adapter's native fast path for established channels (src/relay/fast-path.ts over native/udp_fast.c). The core
 * offers it a channel binding each time it relays a packet of one in JS and the binding qualifies (see
 * offerFastPath); the fast path then relays that channel's packets, both ways, without them reaching the core until
 * `ttlMs` have passed.
 */
export interface FastPathHook {
  /**
   * Relay ChannelData on `channel` from `client` to `peer` through `relay`, and datagrams from `peer` on `relay` back
   * to `client` as ChannelData, for `ttlMs` (the core has checked that it would relay them itself until then).
   */
  install (transport: ClientTransport, client: Endpoint, channel: number, relay: string, peer: Endpoint, ttlMs: number): void
  /** Add what the fast path relayed since the last call to `t` (called before the metrics are read). */
  collect (t: TrafficCounters): void
  /** Forget every entry: what they rested on changed (reconfigure: policy, options). */
  clear (): void
}

/**
 * Offer a channel binding to the fast path, right after relaying one of its packets: installed only if the core would
 * relay every packet of it, both ways, for a while — an active UDP allocation over a UDP client transport, no
 * bandwidth cap (its token bucket counts packets in JS), the binding active on an open relay, its peer allowed by the
 * policy and a permission for it — and only until the nearest of the channel, permission and allocation expiries.
 */
export function offerFastPath (core: TurnServerCore, alloc: Allocation, binding: ChannelBinding, now: number): void {
  const hook = core.fastPath
  if (hook === undefined || alloc.bucket !== undefined || alloc.state !== 'active' || alloc.relayProtocol !== 'udp') return
  if (alloc.transport.protocol !== 'udp' || binding.relay.state !== 'open') return
  if (binding.policyGeneration !== core.policyGeneration) {
    binding.policyAllowed = core.policy.check(binding.peer) === 'allowed'
    binding.policyGeneration = core.policyGeneration
  }
  if (!binding.policyAllowed) return
  const permission = alloc.permissions.get(binding.peer.address)
  if (permission === undefined) return
  const ttl = Math.min(binding.expiresAt, permission, alloc.expiresAt) - now
  if (ttl <= 0) return
  hook.install(alloc.transport, alloc.client, binding.number, binding.relay.key, binding.peer, ttl)
}

/** What the data path returns when it delivered through the sink: nothing for the adapter to do. Never modify it. */
export const NO_ACTIONS = Object.freeze([]) as unknown as RelayAction[]

/** ChannelData from a client: RFC 8656 §12.6. `packet` is the whole message (one datagram, or one stream frame). */
export function onChannelData (core: TurnServerCore, packet: Uint8Array, from: Endpoint, transport: ClientTransport, now: number): RelayAction[] {
  // The 4-byte header (RFC 8656 §12.4: channel number, length), checked as decodeChannelData does, in place.
  const length = packet.length
  if (length < 4) return core.ignore('malformed', 'channel-data')
  const channel = (packet[0] << 8) | packet[1]
  const size = (packet[2] << 8) | packet[3]
  if (4 + size > length || length - 4 - size > 3) return core.ignore('malformed', 'channel-data')
  const alloc = core.tuples.get(from, transport)
  if (alloc === undefined || alloc.state !== 'active' || alloc.relayProtocol !== 'udp') return core.ignore('no-allocation')
  // "If the ChannelData message is received on a channel that is not bound to any peer, then the message is
  //  silently discarded."
  const binding = alloc.channels.get(channel)
  if (binding === undefined || binding.expiresAt <= now) return core.ignore('no-channel')
  if (binding.relay.state !== 'open') return core.ignore('family-mismatch')
  // The policy can only change on reconfigure(), which bumps the generation; until then the verdict stands.
  if (binding.policyGeneration !== core.policyGeneration) {
    binding.policyAllowed = core.policy.check(binding.peer) === 'allowed'
    binding.policyGeneration = core.policyGeneration
  }
  if (!binding.policyAllowed) return core.ignore('denied-peer')
  // "the server [...] relays it to the peer [...] (subject to the permission rules)" (RFC 8656 §9: permissions are
  // checked for both directions).
  if (!alloc.hasPermission(binding.peer.address, now)) return core.ignore('no-permission')
  const actions = forward(core, alloc, binding.relay, binding.peer, packet.subarray(4, 4 + size), now)
  if (core.fastPath !== undefined) offerFastPath(core, alloc, binding, now)
  return actions
}

/** A Send indication: RFC 8656 §11.2. */
export function onSendIndication (core: TurnServerCore, msg: StunMessage, from: Endpoint, transport: ClientTransport, now: number): RelayAction[] {
  const alloc = core.tuples.get(from, transport)
  if (alloc === undefined || alloc.state !== 'active' || alloc.relayProtocol !== 'udp') return core.ignore('no-allocation')
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
    return core.ignore('malformed', 'attribute')
  }
  if (peer === undefined || data === undefined) return core.ignore('bad-indication')
  if (msg.unknownComprehensionRequired().length > 0) return core.ignore('unknown-attribute')
  // "The Send indication may also contain the DONT-FRAGMENT attribute. If the server is unable to set the DF bit
  //  on outgoing UDP datagrams when this attribute is present, then the server acts as if the DONT-FRAGMENT
  //  attribute is an unknown comprehension-required attribute (and thus the Send indication is discarded)."
  if (!core.options.dontFragment && msg.has(DontFragment.type)) return core.ignore('unknown-attribute')
  // "If the XOR-PEER-ADDRESS attribute contains an address of an address family that is not the same as that of
  //  a relayed transport address for the allocation, the indication is discarded."
  const family = ipFamily(peer.address)
  const relay = family === 0 ? undefined : alloc.relayFor(family)
  if (relay === undefined) return core.ignore('family-mismatch')
  if (core.policy.check(peer) !== 'allowed') return core.ignore('denied-peer')
  // "the server MUST first check if there is a permission for the IP address in XOR-PEER-ADDRESS; if not, the
  //  indication is silently discarded".
  if (!alloc.hasPermission(peer.address, now)) return core.ignore('no-permission')
  return forward(core, alloc, relay, peer, data, now)
}

/** Client → peer after the checks: the bandwidth cap, the counters, then the sink or a `relay` action. */
function forward (core: TurnServerCore, alloc: Allocation, relay: RelayAddress, peer: Endpoint, data: Uint8Array, now: number): RelayAction[] {
  if (alloc.bucket !== undefined && !alloc.bucket.take(data.length, now)) return core.ignore('bandwidth')
  const t = core.traffic
  t.clientToPeerPackets++
  t.clientToPeerBytes += data.length
  const sink = core.sink
  if (sink !== undefined) {
    sink.toPeer(relay.key, peer, data)
    return NO_ACTIONS
  }
  return [{ type: 'relay', relay: relay.key, to: peer, data }]
}

/** A datagram from a peer on a UDP relay socket: RFC 8656 §11.3 (Data indication) and §12.7 (ChannelData). */
export function onPeerData (core: TurnServerCore, relayKey: string, data: Uint8Array, peer: Endpoint, now: number): RelayAction[] {
  const alloc = core.byRelay.get(relayKey)
  if (alloc === undefined || alloc.state !== 'active') return core.ignore('unknown-relay')
  // "When the server receives a UDP datagram at a currently allocated relayed transport address, the server
  //  looks up the allocation associated with the relayed transport address. The server then checks to see
  //  whether the set of permissions for the allocation allow the relaying of the UDP datagrams".
  if (!alloc.hasPermission(peer.address, now)) return core.ignore('no-permission')
  if (alloc.bucket !== undefined && !alloc.bucket.take(data.length, now)) return core.ignore('bandwidth')
  const t = core.traffic
  t.peerToClientPackets++
  t.peerToClientBytes += data.length
  // "If relaying is permitted, then the server checks if there is a channel bound to the peer that sent the UDP
  //  datagram. If a channel is bound, then the server uses a ChannelData message to send the data to the
  //  client. If a channel is not bound, then the server uses a Data indication" with XOR-PEER-ADDRESS and DATA.
  const binding = alloc.activeChannelForPeer(peer, now)
  if (binding !== undefined) {
    if (core.fastPath !== undefined) offerFastPath(core, alloc, binding, now)
    const sink = core.sink
    if (sink !== undefined) {
      sink.toClient(alloc.transport, alloc.client, binding.number, data)
      return NO_ACTIONS
    }
    const framed = encodeChannelData(binding.number, data, { pad: alloc.transport.protocol !== 'udp', legacyChannels: true })
    return [core.send(alloc.transport, alloc.client, framed)]
  }
  const indication = new MessageBuilder(Method.Data, MessageClass.Indication).add(XorPeerAddress, peer).add(Data, data).build()
  return [core.send(alloc.transport, alloc.client, indication)]
}
