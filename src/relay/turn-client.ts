import { EventEmitter } from 'node:events'
import type { Socket } from 'node:net'
import { AbortError, InvalidArgumentError, StunErrorResponse, StunIntegrityError, TransportError } from '../errors.js'
import { createLogger } from '../log.js'
import { endpointKey, formatEndpoint, sameTransportAddress, type Endpoint } from '../net/endpoint.js'
import { resolveServer, type Transport } from '../net/resolve.js'
import { connectStream, type TlsClientOptions } from '../net/stream.js'
import type { DatagramSocket } from '../net/udp.js'
import {
  AlternateServer, ChannelNumber, ConnectionId, Data, ErrorCode, Lifetime, MessageBuilder, MessageClass, Method,
  RequestedAddressFamily, RequestedTransport, Software, StunMessage, TransportProtocol, XorMappedAddress, XorPeerAddress,
  XorRelayedAddress, classifyPacket, decodeChannelData, encodeChannelData, CHANNEL_MIN, CHANNEL_MAX,
  type RetransmitOptions
} from '../stun/index.js'
import { ClientAuth, type TurnCredentials } from './turn-client-auth.js'
import { openTurnTransport, type TurnTransport } from './turn-client-transport.js'

const log = createLogger('natcheck:relay:client')

/** A live allocation (RFC 8656 §7). */
export interface TurnAllocation {
  /** The relayed transport address peers send to (XOR-RELAYED-ADDRESS). */
  readonly relayed: Endpoint
  /** The client's address as the server sees it (XOR-MAPPED-ADDRESS). */
  readonly mapped: Endpoint
  readonly lifetimeS: number
  /** The server this allocation lives on. */
  readonly server: Endpoint
  readonly transport: Transport
}

/** Options for TurnClient.allocate. */
export interface TurnClientOptions {
  /** The TURN server, `HOST[:PORT]` (default port 3478, 5349 for TLS; SRV `_turn._udp` etc. when no port). */
  readonly server: string
  /** How to reach the server (default udp). */
  readonly transport?: Transport
  readonly credentials: TurnCredentials
  /** UDP only: use this socket (shared, e.g. with ICE host candidates); other traffic on it goes to `onOther`. */
  readonly socket?: DatagramSocket
  readonly onOther?: (data: Buffer, from: Endpoint) => void
  readonly localAddress?: string
  readonly tls?: TlsClientOptions
  /** Requested allocation lifetime in seconds (default 600, RFC 8656 §7.2). */
  readonly lifetimeS?: number
  /** REQUESTED-ADDRESS-FAMILY (RFC 8656 §7.2; default: the server's own family's default, IPv4). */
  readonly family?: 4 | 6
  /** Relay UDP (default) or TCP (RFC 6062; needs a TCP or TLS control connection). */
  readonly relayTransport?: 'udp' | 'tcp'
  readonly retransmit?: RetransmitOptions
  readonly software?: string
  /** Refresh the allocation this many seconds before it expires (default 60; half the lifetime for short ones). */
  readonly refreshMarginS?: number
  /** Re-create permissions this often (default 240 s; they last 300 s, RFC 8656 §9). */
  readonly permissionRefreshS?: number
  /** Re-bind channels this often (default 480 s; they last 600 s, RFC 8656 §12). */
  readonly channelRefreshS?: number
  /** Timer seam for the refresh, permission, channel and reallocation timers (default: unref'ed Node timers). */
  readonly timers?: TurnClientTimers
  /** Move the allocation to another server of the service when this one stops answering (see TurnFailoverOptions). */
  readonly failover?: TurnFailoverOptions
  readonly signal?: AbortSignal
}

/**
 * Failover between the relay nodes of one service (e.g. `natcheck relay --redis` nodes): the client probes its server
 * with a Binding request (every TURN server answers Binding, RFC 8656 §4) and, when no answer comes in time, or the
 * server loses the allocation or the connection and cannot allocate again, allocates on the next server of `servers`
 * (following 300 ALTERNATE-SERVER), re-installs its permissions and channels there and emits `reallocated` with the
 * new relayed address. Peers must learn that address (the application or ICE signals it); data the client sends
 * goes out from it at once.
 */
export interface TurnFailoverOptions {
  /** Other servers, `HOST[:PORT]`, tried in order (the failed one is tried last; it may come back). */
  readonly servers: readonly string[]
  /** Probe the current server this often (default 5 s; 0 disables the probe, failover then follows refresh failures). */
  readonly checkIntervalS?: number
  /** How long a probe, and an Allocate on another server, may take before it counts as failed (default 3000 ms). */
  readonly timeoutMs?: number
}

/**
 * The clock TurnClient schedules its protocol timers on. Tests inject a manual one and run hours of refreshes
 * (RFC 8656 §8, §9, §12) in milliseconds; request retransmissions stay on the transport's own timers.
 */
export interface TurnClientTimers {
  setTimeout (fn: () => void, ms: number): unknown
  clearTimeout (handle: unknown): void
}

/** Node timers that do not hold the process open. */
export const NODE_TIMERS: TurnClientTimers = {
  setTimeout: (fn, ms) => { const t = setTimeout(fn, ms); t.unref(); return t },
  clearTimeout: (h) => { clearTimeout(h as NodeJS.Timeout) }
}

/** Events of TurnClient. */
export interface TurnClientEvents {
  /** Data from a peer, through the relay. */
  data: [data: Buffer, peer: Endpoint]
  /** The server forgot the allocation (437) or restarted, and the client allocated again (maybe a new address). */
  reallocated: [allocation: TurnAllocation, reason: string]
  /** RFC 6062: a peer opened a TCP connection to the relayed address and it is now bound to this socket. */
  'tcp-connection': [socket: Socket, peer: Endpoint]
  /** A background refresh or reallocation failed; the client keeps trying on its schedule. */
  error: [error: Error]
  closed: []
}

const MAX_PENDING_PER_PEER = 64
const MAX_REDIRECTS = 3

/**
 * A TURN client (RFC 8656, RFC 6062): allocates over UDP, TCP or TLS (following 300 ALTERNATE-SERVER, answering
 * 401/438 challenges with MD5 or SHA-256 keys), keeps the allocation, permissions and channels refreshed, sends through
 * a channel once one is bound and Send indications before, and allocates again by itself if the server forgets the
 * allocation or restarts. `close()` releases the allocation (LIFETIME 0).
 */
export class TurnClient extends EventEmitter<TurnClientEvents> {
  private transport!: TurnTransport
  private auth: ClientAuth
  private current!: TurnAllocation
  private readonly permissions = new Map<string, { timer: unknown, ready: Promise<void> }>()
  private readonly channels = new Map<string, { channel: number, peer: Endpoint, timer: unknown, bound: boolean }>()
  private readonly byChannel = new Map<number, Endpoint>()
  private readonly pending = new Map<string, Buffer[]>()
  private nextChannel = CHANNEL_MIN
  private refreshTimer: unknown
  private checkTimer: unknown
  private readonly timers: TurnClientTimers
  private closing: Promise<void> | undefined
  private reallocating: Promise<void> | undefined

  private constructor (private readonly options: TurnClientOptions) {
    super()
    this.auth = new ClientAuth(options.credentials)
    this.timers = options.timers ?? NODE_TIMERS
  }

  /** Connect to the server and allocate. Rejects with StunErrorResponse (e.g. 401 wrong credentials, 486 quota), TransportError, StunTimeoutError or AbortError. */
  static async allocate (options: TurnClientOptions): Promise<TurnClient> {
    const lifetime = options.lifetimeS ?? 600
    if (!(lifetime > 0)) throw new InvalidArgumentError('lifetimeS must be positive')
    if (options.relayTransport === 'tcp' && (options.transport ?? 'udp') === 'udp') {
      throw new InvalidArgumentError('TCP relaying (RFC 6062) needs a TCP or TLS connection to the server: set transport to tcp or tls')
    }
    if (options.failover !== undefined) {
      const f = options.failover
      if (!Array.isArray(f.servers) || f.servers.some(x => typeof x !== 'string' || x === '')) throw new InvalidArgumentError('failover.servers must be a list of HOST[:PORT] strings')
      if (f.checkIntervalS !== undefined && !(f.checkIntervalS >= 0)) throw new InvalidArgumentError('failover.checkIntervalS must be a number of seconds >= 0')
      if (f.timeoutMs !== undefined && !(f.timeoutMs > 0)) throw new InvalidArgumentError('failover.timeoutMs must be a positive number of milliseconds')
    }
    const client = new TurnClient(options)
    const targets = await resolveServer(options.server, { transport: options.transport ?? 'udp', service: 'turn', family: undefined, signal: options.signal })
    let lastError: unknown
    for (const target of targets) {
      try {
        await client.connectAndAllocate(target, options.signal)
        client.scheduleCheck()
        return client
      } catch (err) {
        lastError = err
        if (err instanceof StunErrorResponse || err instanceof AbortError) throw err
      }
    }
    throw lastError instanceof Error ? lastError : new TransportError(`cannot reach TURN server ${options.server}`)
  }

  /** The live allocation. */
  get allocation (): TurnAllocation { return this.current }

  /** The local address of the connection to the server. */
  get local (): Endpoint { return this.transport.local }

  private async connectAndAllocate (target: Endpoint & { host?: string }, signal?: AbortSignal): Promise<void> {
    let server = target
    for (let redirect = 0; redirect <= MAX_REDIRECTS; redirect++) {
      this.transport = await this.openTransport(server, signal)
      try {
        this.current = await this.allocateOn(signal)
        this.scheduleRefresh()
        return
      } catch (err) {
        await this.transport.close()
        // RFC 8656 §7.4 / RFC 8489 §10: 300 Try Alternate with ALTERNATE-SERVER moves the allocation elsewhere.
        if (err instanceof StunErrorResponse && err.errorCode === 300) {
          const alt = (err.response as StunMessage | undefined)?.get(AlternateServer)
          if (alt !== undefined) { log('redirected to %s', formatEndpoint(alt)); server = alt; continue }
        }
        throw err
      }
    }
    throw new TransportError(`more than ${MAX_REDIRECTS} ALTERNATE-SERVER redirects`)
  }

  private async openTransport (server: Endpoint & { host?: string }, signal?: AbortSignal): Promise<TurnTransport> {
    const t = await openTurnTransport({
      server,
      kind: this.options.transport ?? 'udp',
      socket: this.options.socket,
      localAddress: this.options.localAddress,
      tls: this.options.tls,
      retransmit: this.options.retransmit,
      onServerFrame: (frame) => { this.onServerFrame(frame) },
      onOther: this.options.onOther,
      signal
    })
    t.onLost = () => {
      // Only the live transport's loss matters (a replaced one is closed on purpose).
      if (this.closing === undefined && this.transport === t) void this.reallocate('the connection to the server was lost', true)
    }
    return t
  }

  /**
   * Send a request, answering a 401/438 challenge once (RFC 8489 §9.2.5) and checking the response's integrity.
   * Resolves with a success response; rejects with StunErrorResponse for an error response.
   */
  private async request (build: () => MessageBuilder, signal?: AbortSignal): Promise<StunMessage> {
    for (let attempt = 0; attempt < 3; attempt++) {
      const b = build()
      if (this.options.software !== undefined) b.add(Software, this.options.software)
      const signedRequest = this.auth.ready
      const response = await this.transport.request(this.auth.sign(b).fingerprint().build(), { signal })
      if (signedRequest && !this.auth.verify(response)) {
        throw new StunIntegrityError(`${response.describe()} from ${formatEndpoint(this.transport.server)} has no valid MESSAGE-INTEGRITY for our credentials`)
      }
      if (response.cls === MessageClass.SuccessResponse) return response
      const error = response.get(ErrorCode) ?? { code: 500, reason: 'error response without ERROR-CODE' }
      const signed = this.auth.ready
      if ((error.code === 401 && !signed) || error.code === 438) {
        if (this.auth.learn(response)) continue
      } else if (error.code === 401 && signed && attempt === 0) {
        // A 401 after signing: the realm or nonce may have changed; learn once more, then give up (wrong credentials).
        if (this.auth.learn(response)) continue
      }
      throw new StunErrorResponse(error.code, error.reason, response)
    }
    throw new StunErrorResponse(401, 'Unauthenticated (the server kept challenging: wrong credentials?)')
  }

  private async allocateOn (signal?: AbortSignal): Promise<TurnAllocation> {
    const relayTcp = this.options.relayTransport === 'tcp'
    const res = await this.request(() => {
      const b = new MessageBuilder(Method.Allocate, MessageClass.Request)
        .add(RequestedTransport, relayTcp ? TransportProtocol.TCP : TransportProtocol.UDP)
        .add(Lifetime, this.options.lifetimeS ?? 600)
      if (this.options.family !== undefined) b.add(RequestedAddressFamily, this.options.family)
      return b
    }, signal)
    const allocation: TurnAllocation = {
      relayed: res.require(XorRelayedAddress),
      mapped: res.get(XorMappedAddress) ?? this.transport.local,
      lifetimeS: res.get(Lifetime) ?? this.options.lifetimeS ?? 600,
      server: this.transport.server,
      transport: this.transport.kind
    }
    log('allocated %s on %s (lifetime %d s)', formatEndpoint(allocation.relayed), formatEndpoint(allocation.server), allocation.lifetimeS)
    return allocation
  }

  private scheduleRefresh (): void {
    this.timers.clearTimeout(this.refreshTimer)
    const lifetime = this.current.lifetimeS
    const margin = Math.min(this.options.refreshMarginS ?? 60, lifetime / 2)
    this.refreshTimer = this.timers.setTimeout(() => { void this.refresh() }, (lifetime - margin) * 1000)
  }

  /** Refresh the allocation now (RFC 8656 §8). On 437 the client allocates again. */
  async refresh (signal?: AbortSignal): Promise<void> {
    try {
      const res = await this.request(() => new MessageBuilder(Method.Refresh, MessageClass.Request).add(Lifetime, this.options.lifetimeS ?? 600), signal)
      this.current = { ...this.current, lifetimeS: res.get(Lifetime) ?? this.current.lifetimeS }
      this.scheduleRefresh()
    } catch (err) {
      if (this.closing !== undefined) return
      const reason = err instanceof StunErrorResponse && err.errorCode === 437
        ? 'the server no longer knows the allocation (437)'
        : `refresh failed: ${(err as Error).message}`
      await this.reallocate(reason)
    }
  }

  /**
   * Allocate again after the server lost the allocation (or stopped answering), re-install permissions and channels,
   * and say so. Without failover, on the same server; with it, on the same server first (`away` false: it answered,
   * but forgot the allocation) or the other servers first (`away` true: it stopped answering or hung up).
   */
  private async reallocate (reason: string, away = false): Promise<void> {
    this.reallocating ??= (async () => {
      log('reallocating: %s', reason)
      const here: Endpoint = this.transport.server
      const others = this.options.failover?.servers ?? []
      const order: Array<Endpoint | string> = away ? [...others, here] : [here, ...others]
      for (let attempt = 0; attempt < 5 && this.closing === undefined; attempt++) {
        for (const where of order) {
          if (this.closing !== undefined) return
          try {
            await this.allocateAt(where)
            this.scheduleRefresh()
            const peers = [...this.permissions.keys()]
            this.permissions.clear()
            for (const ip of peers) await this.createPermission({ address: ip, port: 0 })
            for (const c of this.channels.values()) { c.bound = false; await this.bindChannelNumber(c.peer, c.channel) }
            const moved = !sameTransportAddress(this.current.server, here)
            if (moved) log('moved the allocation from %s to %s', formatEndpoint(here), formatEndpoint(this.current.server))
            this.emit('reallocated', this.current, moved ? `${reason}; moved to ${formatEndpoint(this.current.server)}` : reason)
            this.scheduleCheck()
            return
          } catch (err) {
            // Reported to 'error' listeners; without one, only logged (an unheard 'error' would end the retries).
            if (this.listenerCount('error') > 0) this.emit('error', err as Error)
            else log('reallocation on %s failed: %s', typeof where === 'string' ? where : formatEndpoint(where), (err as Error).message)
          }
        }
        await new Promise<void>(resolve => { this.timers.setTimeout(resolve, Math.min(10_000, 500 * 2 ** attempt)) })
      }
    })().finally(() => { this.reallocating = undefined })
    await this.reallocating
  }

  /**
   * Allocate on `where`: the current server (over the same UDP transport, or a new connection), or another one
   * (a new transport; a name is resolved). With failover, each try is bounded by its timeoutMs.
   */
  private async allocateAt (where: Endpoint | string): Promise<void> {
    const f = this.options.failover
    const signal = f === undefined ? undefined : AbortSignal.timeout(f.timeoutMs ?? 3000)
    this.auth = new ClientAuth(this.options.credentials)
    if (typeof where !== 'string' && sameTransportAddress(where, this.transport.server) && this.transport.kind === 'udp') {
      this.current = await this.allocateOn(signal)
      return
    }
    const kind = this.options.transport ?? 'udp'
    const [target] = typeof where === 'string' ? await resolveServer(where, { transport: kind, service: 'turn', family: undefined, signal }) : [where]
    if (target === undefined) throw new TransportError(`cannot resolve TURN server ${String(where)}`)
    try { await this.transport.close() } catch { /* already closed by a failed try */ }
    await this.connectAndAllocate(target, signal)
  }

  /** With failover: probe the server with a Binding request after checkIntervalS. */
  private scheduleCheck (): void {
    const f = this.options.failover
    this.timers.clearTimeout(this.checkTimer)
    if (f === undefined || f.checkIntervalS === 0 || this.closing !== undefined) return
    this.checkTimer = this.timers.setTimeout(() => { void this.check() }, (f.checkIntervalS ?? 5) * 1000)
  }

  private async check (): Promise<void> {
    if (this.closing !== undefined) return
    if (this.reallocating !== undefined) { this.scheduleCheck(); return }
    const timeoutMs = this.options.failover?.timeoutMs ?? 3000
    const server = this.transport.server
    try {
      await this.transport.request(new MessageBuilder(Method.Binding, MessageClass.Request).fingerprint().build(), { signal: AbortSignal.timeout(timeoutMs) })
      this.scheduleCheck()
    } catch {
      if (this.closing !== undefined || !sameTransportAddress(server, this.transport.server)) return
      await this.reallocate(`${formatEndpoint(server)} did not answer a Binding request within ${timeoutMs} ms`, true)
    }
  }

  /** Install (or refresh) permissions for these peers' IP addresses (RFC 8656 §9). */
  async createPermission (peers: Endpoint | Endpoint[], signal?: AbortSignal): Promise<void> {
    const list = Array.isArray(peers) ? peers : [peers]
    const fresh = list.filter(p => !this.permissions.has(p.address))
    const ready = (async () => {
      await this.request(() => {
        const b = new MessageBuilder(Method.CreatePermission, MessageClass.Request)
        for (const p of list) b.add(XorPeerAddress, { address: p.address, port: 0 })
        return b
      }, signal)
    })()
    for (const p of list) {
      const old = this.permissions.get(p.address)
      this.timers.clearTimeout(old?.timer)
      const timer = this.timers.setTimeout(() => { void this.createPermission(p).catch(err => { this.emit('error', err as Error) }) }, (this.options.permissionRefreshS ?? 240) * 1000)
      this.permissions.set(p.address, { timer, ready })
    }
    try {
      await ready
    } catch (err) {
      for (const p of fresh) { this.timers.clearTimeout(this.permissions.get(p.address)?.timer); this.permissions.delete(p.address) }
      throw err
    }
    for (const p of list) this.flushPending(p.address)
  }

  /** Bind a channel to a peer (RFC 8656 §12); later sends to it use 4-byte ChannelData headers. */
  async bindChannel (peer: Endpoint, signal?: AbortSignal): Promise<number> {
    const existing = this.channels.get(endpointKey(peer))
    if (existing !== undefined) { if (!existing.bound) await this.bindChannelNumber(peer, existing.channel, signal); return existing.channel }
    if (this.nextChannel > CHANNEL_MAX) throw new InvalidArgumentError('all 4096 channel numbers are in use')
    const channel = this.nextChannel++
    await this.bindChannelNumber(peer, channel, signal)
    return channel
  }

  private async bindChannelNumber (peer: Endpoint, channel: number, signal?: AbortSignal): Promise<void> {
    // Record channel → peer before the request goes out: the server may relay ChannelData on the channel the moment it
    // has sent the success response, and with batched I/O that ChannelData is handled in the same batch, before this
    // function resumes after the response. Sends keep using Send indications until the bind succeeds (`bound`).
    const key = endpointKey(peer)
    const known = this.byChannel.get(channel)
    this.byChannel.set(channel, peer)
    try {
      await this.request(() => new MessageBuilder(Method.ChannelBind, MessageClass.Request)
        .add(ChannelNumber, channel).add(XorPeerAddress, peer), signal)
    } catch (err) {
      // A failed first bind leaves no mapping behind; a failed re-bind keeps the one the server may still hold.
      if (known === undefined && this.channels.get(key)?.bound !== true) this.byChannel.delete(channel)
      throw err
    }
    this.timers.clearTimeout(this.channels.get(key)?.timer)
    const timer = this.timers.setTimeout(() => { void this.bindChannelNumber(peer, channel).catch(err => { this.emit('error', err as Error) }) }, (this.options.channelRefreshS ?? 480) * 1000)
    this.channels.set(key, { channel, peer, timer, bound: true })
    // A ChannelBind also installs the permission (RFC 8656 §12.2).
    if (!this.permissions.has(peer.address)) this.permissions.set(peer.address, { timer: undefined, ready: Promise.resolve() })
  }

  /**
   * Send data to a peer through the relay: ChannelData on a bound channel, a Send indication otherwise. Without a
   * permission for the peer's IP one is created first (the data waits, up to 64 packets per peer). Never throws.
   */
  send (data: Uint8Array, peer: Endpoint): void {
    if (this.closing !== undefined) return
    const channel = this.channels.get(endpointKey(peer))
    if (channel?.bound === true) {
      this.transport.write(encodeChannelData(channel.channel, data, { pad: this.transport.kind !== 'udp' }))
      return
    }
    if (this.permissions.has(peer.address)) {
      this.transport.write(new MessageBuilder(Method.Send, MessageClass.Indication).add(XorPeerAddress, peer).add(Data, data).build())
      return
    }
    const key = endpointKey(peer)
    const queue = this.pending.get(key) ?? []
    if (queue.length < MAX_PENDING_PER_PEER) queue.push(Buffer.from(data))
    this.pending.set(key, queue)
    if (queue.length === 1) void this.createPermission(peer).catch(err => { this.pending.delete(key); this.emit('error', err as Error) })
  }

  private flushPending (ip: string): void {
    for (const [key, queue] of this.pending) {
      const [address, port] = key.split('|')
      if (address !== ip) continue
      this.pending.delete(key)
      for (const data of queue) this.send(data, { address, port: Number(port) })
    }
  }

  /** Handle what the server sent that is not a response: ChannelData, Data indications, ConnectionAttempt. */
  private onServerFrame (frame: Buffer): void {
    try {
      const kind = classifyPacket(frame)
      if (kind === 'channel-data') {
        const cd = decodeChannelData(frame)
        const peer = this.byChannel.get(cd.channel)
        if (peer !== undefined) this.emit('data', Buffer.from(cd.data), peer)
        return
      }
      if (kind !== 'stun') return
      const m = StunMessage.decode(frame, { copy: false })
      if (m.cls !== MessageClass.Indication) return
      if (m.method === Method.Data) {
        const peer = m.get(XorPeerAddress); const data = m.get(Data)
        if (peer !== undefined && data !== undefined) this.emit('data', Buffer.from(data), peer)
      } else if (m.method === Method.ConnectionAttempt) {
        const id = m.get(ConnectionId); const peer = m.get(XorPeerAddress)
        if (id !== undefined && peer !== undefined) void this.acceptTcp(id, peer)
      }
    } catch (err) {
      log.trace('ignored a frame from the server: %s', (err as Error).message)
    }
  }

  /**
   * RFC 6062 §4.3: open a TCP connection from the relayed address to `peer`. Resolves with the data connection, a
   * plain byte stream to the peer once bound (Connect, then ConnectionBind on a new connection to the server).
   */
  async connectTcp (peer: Endpoint, signal?: AbortSignal): Promise<Socket> {
    if (this.options.relayTransport !== 'tcp') throw new InvalidArgumentError('connectTcp needs an allocation made with relayTransport: \'tcp\'')
    if (!this.permissions.has(peer.address)) await this.createPermission(peer, signal)
    const res = await this.request(() => new MessageBuilder(Method.Connect, MessageClass.Request).add(XorPeerAddress, peer), signal)
    return await this.bindData(res.require(ConnectionId), signal)
  }

  private async acceptTcp (id: number, peer: Endpoint): Promise<void> {
    try {
      const socket = await this.bindData(id)
      this.emit('tcp-connection', socket, peer)
    } catch (err) {
      this.emit('error', err as Error)
    }
  }

  /** RFC 6062 §4.4: a new connection to the server, bound to a CONNECTION-ID; afterwards it carries raw data. */
  private async bindData (id: number, signal?: AbortSignal): Promise<Socket> {
    const kind = this.transport.kind as 'tcp' | 'tls'
    // From the control connection's local address: a relay with several processes may route TLS by source address.
    const socket = await connectStream(this.transport.server, { tls: kind === 'tls' ? (this.options.tls ?? {}) : false, localAddress: this.options.localAddress, signal })
    try {
      for (let attempt = 0; attempt < 3; attempt++) {
        const request = this.auth.sign(new MessageBuilder(Method.ConnectionBind, MessageClass.Request).add(ConnectionId, id)).fingerprint().build()
        const response = await exchangeOnce(socket, request, 10_000, signal)
        if (!this.auth.verify(response)) throw new StunIntegrityError(`${response.describe()} to ConnectionBind has no valid MESSAGE-INTEGRITY`)
        if (response.cls === MessageClass.SuccessResponse) return socket
        const error = response.get(ErrorCode)
        if (error?.code === 438 && this.auth.learn(response)) continue
        throw new StunErrorResponse(error?.code ?? 500, error?.reason ?? 'ConnectionBind failed', response)
      }
      throw new StunErrorResponse(438, 'Stale Nonce (ConnectionBind kept failing)')
    } catch (err) {
      socket.destroy()
      throw err
    }
  }

  /** Release the allocation (Refresh with LIFETIME 0), stop every timer, close the connection. Idempotent. */
  close (): Promise<void> {
    this.closing ??= (async () => {
      this.timers.clearTimeout(this.refreshTimer)
      this.timers.clearTimeout(this.checkTimer)
      for (const p of this.permissions.values()) this.timers.clearTimeout(p.timer)
      for (const c of this.channels.values()) this.timers.clearTimeout(c.timer)
      this.pending.clear()
      if (this.transport !== undefined && this.current !== undefined) {
        try {
          const ac = AbortSignal.timeout(2000)
          await this.transport.request(this.auth.sign(new MessageBuilder(Method.Refresh, MessageClass.Request).add(Lifetime, 0)).fingerprint().build(), { signal: ac })
        } catch { /* best effort: the server expires it anyway */ }
        await this.transport.close()
      }
      this.emit('closed')
    })()
    return this.closing
  }

  async [Symbol.asyncDispose] (): Promise<void> { await this.close() }
}

/**
 * One request and its response on a fresh stream, reading exactly one STUN message: whatever arrives after it (the
 * peer's first bytes on an RFC 6062 data connection) is put back, and the socket is left paused for its new owner.
 */
async function exchangeOnce (socket: Socket, request: Uint8Array, timeoutMs: number, signal?: AbortSignal): Promise<StunMessage> {
  return await new Promise<StunMessage>((resolve, reject) => {
    let buffer = Buffer.alloc(0)
    const finish = (err: Error | undefined, message?: StunMessage, rest?: Buffer): void => {
      clearTimeout(timer)
      socket.off('data', onData); socket.off('error', onError); socket.off('close', onClose)
      signal?.removeEventListener('abort', onAbort)
      socket.pause()
      if (rest !== undefined && rest.length > 0) socket.unshift(rest)
      if (err !== undefined) reject(err); else resolve(message as StunMessage)
    }
    const onData = (chunk: Buffer): void => {
      buffer = Buffer.concat([buffer, chunk])
      if (buffer.length < 20) return
      const total = 20 + buffer.readUInt16BE(2)
      if (buffer.length < total) return
      try {
        finish(undefined, StunMessage.decode(buffer.subarray(0, total)), buffer.subarray(total))
      } catch (err) {
        finish(err as Error)
      }
    }
    const onError = (err: Error): void => { finish(new TransportError(`data connection failed: ${err.message}`, { cause: err })) }
    const onClose = (): void => { finish(new TransportError('the server closed the data connection')) }
    const onAbort = (): void => { finish(new AbortError()) }
    const timer = setTimeout(() => { finish(new TransportError(`no ConnectionBind response within ${timeoutMs} ms`)) }, timeoutMs)
    socket.on('data', onData); socket.on('error', onError); socket.on('close', onClose)
    signal?.addEventListener('abort', onAbort, { once: true })
    socket.write(request)
  })
}
