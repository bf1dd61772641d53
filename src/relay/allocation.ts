import { endpointKey, type Endpoint } from '../net/endpoint.js'
import type { ResponseSecurity } from './responses.js'
import { TokenBucket } from '../util/token-bucket.js'
import type { ClientTransport } from './types.js'

/**
 * The state of one TURN allocation (RFC 8656 §3, §6): the 5-tuple, the relayed transport address(es), the
 * time-to-expiry, permissions (§9) and channel bindings (§12). Plain data plus small helpers; the protocol rules
 * live in the server core.
 */

/** One relayed transport address of an allocation (two for a dual-stack allocation, RFC 8656 §7.2). */
export interface RelayAddress {
  /** The core's key for the relay socket (the adapter's handle). */
  readonly key: string
  readonly family: 4 | 6
  /** Address the socket binds to. */
  readonly bindAddress: string
  /** Address advertised in XOR-RELAYED-ADDRESS (the external IP when configured). */
  readonly advertisedAddress: string
  port: number
  state: 'opening' | 'open' | 'failed'
  /** Bind attempts so far (a port busy in the OS makes the core try another). */
  attempts: number
  /** The port was claimed through a RESERVATION-TOKEN (no retry with another port). */
  readonly reserved: boolean
  /** For EVEN-PORT: the kind of port to pick when retrying. */
  readonly want: 'any' | 'even' | 'even-pair'
  /** Error for this family when it failed (ADDRESS-ERROR-CODE). */
  failure?: number
}

/** A channel binding (RFC 8656 §12), with what the data path precomputes at bind time. */
export interface ChannelBinding {
  readonly number: number
  readonly peer: Endpoint
  /** While now < expiresAt the binding is active; until expiresAt + guard it blocks rebinding. */
  expiresAt: number
  /** The relayed address of the peer's family (RFC 8656 §12: data on the channel leaves from it). */
  readonly relay: RelayAddress
  /** The peer policy's verdict on `peer`, valid while the core's policy generation equals `policyGeneration`. */
  policyAllowed: boolean
  policyGeneration: number
}

/** The 5-tuple key of a client transport: protocol, client endpoint, server endpoint (and connection). */
export function fiveTupleKey (from: Endpoint, transport: ClientTransport): string {
  return `${transport.protocol}|${endpointKey(from)}|${endpointKey(transport.local)}|${transport.connection ?? ''}`
}

/**
 * The allocations by 5-tuple. UDP 5-tuples are found through client IP → client port → allocations (one per
 * server listener, usually one), so the per-packet lookup builds no string; TCP/TLS ones by fiveTupleKey.
 */
export class TupleIndex {
  private readonly byKey = new Map<string, Allocation>()
  private readonly udp = new Map<string, Map<number, Allocation[]>>()

  get (from: Endpoint, transport: ClientTransport): Allocation | undefined {
    if (transport.protocol !== 'udp') return this.byKey.get(fiveTupleKey(from, transport))
    const list = this.udp.get(from.address)?.get(from.port)
    if (list === undefined) return undefined
    const local = transport.local
    for (let i = 0; i < list.length; i++) {
      const a = list[i]
      if (a.transport.local.port === local.port && a.transport.local.address === local.address) return a
    }
    return undefined
  }

  has (from: Endpoint, transport: ClientTransport): boolean {
    return this.get(from, transport) !== undefined
  }

  add (alloc: Allocation): void {
    if (alloc.transport.protocol !== 'udp') { this.byKey.set(alloc.tupleKey, alloc); return }
    let ports = this.udp.get(alloc.client.address)
    if (ports === undefined) { ports = new Map(); this.udp.set(alloc.client.address, ports) }
    const list = ports.get(alloc.client.port)
    if (list === undefined) ports.set(alloc.client.port, [alloc]); else list.push(alloc)
  }

  delete (alloc: Allocation): void {
    if (alloc.transport.protocol !== 'udp') {
      if (this.byKey.get(alloc.tupleKey) === alloc) this.byKey.delete(alloc.tupleKey)
      return
    }
    const ports = this.udp.get(alloc.client.address)
    const list = ports?.get(alloc.client.port)
    if (ports === undefined || list === undefined) return
    const rest = list.filter(a => a !== alloc)
    if (rest.length > 0) ports.set(alloc.client.port, rest)
    else {
      ports.delete(alloc.client.port)
      if (ports.size === 0) this.udp.delete(alloc.client.address)
    }
  }
}

/** One allocation. */
export class Allocation {
  state: 'pending' | 'active' = 'pending'
  expiresAt: number
  readonly permissions = new Map<string, number>()
  readonly channels = new Map<number, ChannelBinding>()
  /** Peer IP → peer port → binding: looked up per peer datagram without building a string key. */
  private readonly channelByPeer = new Map<string, Map<number, ChannelBinding>>()
  /** RFC 6062 connection ids of this allocation. */
  readonly tcpConnections = new Set<number>()
  readonly bucket: TokenBucket | undefined
  /** RESERVATION-TOKEN issued with this allocation (EVEN-PORT R=1), hex. */
  reservationToken: string | undefined

  constructor (
    readonly id: number,
    readonly tupleKey: string,
    readonly client: Endpoint,
    readonly transport: ClientTransport,
    readonly username: string,
    /** The relay transport protocol (REQUESTED-TRANSPORT): UDP, or TCP for RFC 6062. */
    readonly relayProtocol: 'udp' | 'tcp',
    readonly relays: RelayAddress[],
    /** The requesting Allocate's transaction id and security, to build the success response when relays open. */
    readonly pendingRequest: { lifetime: number, security: ResponseSecurity },
    readonly dontFragment: boolean,
    now: number,
    bandwidth: number,
    bandwidthBurst: number
  ) {
    this.expiresAt = now + pendingRequest.lifetime * 1000
    this.bucket = bandwidth > 0 ? new TokenBucket(bandwidth, bandwidthBurst, now) : undefined
  }

  /** The open relay of a family, if any. */
  relayFor (family: 4 | 6): RelayAddress | undefined {
    return this.relays.find(r => r.family === family && r.state === 'open')
  }

  /** Whether a permission for the peer's IP is installed and unexpired (RFC 8656 §9). */
  hasPermission (address: string, now: number): boolean {
    const t = this.permissions.get(address)
    return t !== undefined && t > now
  }

  /** The channel bound to a peer transport address (active or within its rebind guard), if any. */
  channelForPeer (peer: Endpoint): ChannelBinding | undefined {
    return this.channelByPeer.get(peer.address)?.get(peer.port)
  }

  /** The active channel bound to a peer, if any. */
  activeChannelForPeer (peer: Endpoint, now: number): ChannelBinding | undefined {
    const c = this.channelByPeer.get(peer.address)?.get(peer.port)
    return c !== undefined && c.expiresAt > now ? c : undefined
  }

  /** Install a binding under its number and its peer. */
  addChannel (binding: ChannelBinding): void {
    this.channels.set(binding.number, binding)
    let ports = this.channelByPeer.get(binding.peer.address)
    if (ports === undefined) { ports = new Map(); this.channelByPeer.set(binding.peer.address, ports) }
    ports.set(binding.peer.port, binding)
  }

  /** Remove a binding. */
  removeChannel (binding: ChannelBinding): void {
    if (this.channels.get(binding.number) === binding) this.channels.delete(binding.number)
    const ports = this.channelByPeer.get(binding.peer.address)
    if (ports?.get(binding.peer.port) === binding) {
      ports.delete(binding.peer.port)
      if (ports.size === 0) this.channelByPeer.delete(binding.peer.address)
    }
  }

  /** The active binding of a channel number, if any. */
  activeChannel (number: number, now: number): ChannelBinding | undefined {
    const c = this.channels.get(number)
    return c !== undefined && c.expiresAt > now ? c : undefined
  }

  /** Active permissions and channels (for gauges). */
  counts (now: number): { permissions: number, channels: number } {
    let permissions = 0; let channels = 0
    for (const t of this.permissions.values()) if (t > now) permissions++
    for (const c of this.channels.values()) if (c.expiresAt > now) channels++
    return { permissions, channels }
  }
}
