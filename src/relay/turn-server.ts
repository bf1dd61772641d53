import { EventEmitter } from 'node:events'
import type { Socket } from 'node:net'
import { InvalidArgumentError } from '../errors.js'
import { createLogger } from '../log.js'
import { endpointKey, formatEndpoint, sameEndpoint, type Endpoint } from '../net/endpoint.js'
import { loadNativeUdp, wantsNativeUdp } from '../net/native.js'
import { StreamGuard } from '../net/stream-guard.js'
import { readTlsFiles } from '../net/tls-files.js'
import { encodeChannelData } from '../stun/index.js'
import type { AdapterHost } from './adapter-host.js'
import { ClientConnections } from './client-connections.js'
import { ClientListeners, listenerKey, type ListenAddresses, type UdpListener } from './client-listeners.js'
import { ClientSendQueue } from './client-send-queue.js'
import type { TurnServerCoreOptions } from './core-options.js'
import { InMemoryRelayMetrics, PrometheusRelayMetrics, type RelayMetrics } from './metrics.js'
import { RelayFastPath, fastPathUnavailableReason } from './fast-path.js'
import { PeerConnections } from './peer-connections.js'
import { RelaySockets } from './relay-sockets.js'
import { TurnServerCore } from './server-core.js'
import {
  DEFAULT_LISTEN, coreOptions, listenOptions, type TurnServerEvents, type TurnServerOptions, type TurnServerStats
} from './turn-server-options.js'
import type { ClientProtocol, ClientTransport, RelayAction, RelayEvent } from './types.js'

export type { TurnServerEvents, TurnServerOptions, TurnServerStats, TurnTlsOptions } from './turn-server-options.js'

const log = createLogger('natcheck:relay:server')

/**
 * A TURN server (RFC 8656, RFC 6062, RFC 6156 via RFC 8656) over real sockets: the thin adapter around
 * TurnServerCore. UDP, TCP and TLS client listeners (client-listeners.ts) and connections (client-connections.ts);
 * UDP relay sockets and TCP relay listeners bound to `relayIp` within the port range (relay-sockets.ts); RFC 6062
 * peer connections (peer-connections.ts). This file starts and stops them and carries out the core's actions.
 * Handlers never throw; timers are unref'ed; close() is idempotent.
 */
export class TurnServer extends EventEmitter<TurnServerEvents> {
  private readonly clientListeners: ClientListeners
  private readonly connections: ClientConnections
  /** Connection-level limits of the TCP/TLS listeners. */
  private readonly guard: StreamGuard
  private readonly relays: RelaySockets
  private readonly peers: PeerConnections
  /** Whether any receive handler may get views of a shared buffer (native sockets): then kept bytes are copied. */
  private nativeViews = false
  /** Peer → client ChannelData for native listeners, sent together once per event-loop turn. */
  private readonly clientQueue = new ClientSendQueue()
  private timer: NodeJS.Timeout | undefined
  private closing: Promise<void> | undefined
  /** Reloads run one after the other. */
  private reloading: Promise<void> = Promise.resolve()
  /**
   * Every address and endpoint the relay listened or relayed on since it started: never peers, also after a reload
   * moved off them (allocations made before may still use them).
   */
  private readonly formerAddresses = new Set<string>()
  private readonly formerEndpoints = new Map<string, Endpoint>()
  private readonly now: () => number
  readonly metrics: RelayMetrics
  /** Addresses the server actually listens on. */
  readonly addresses: ListenAddresses
  /**
   * Whether the native fast path for established channels runs (TurnServerOptions.fastPath), and if not, why.
   */
  readonly fastPath: { readonly enabled: boolean, readonly reason?: string }

  private constructor (private options: TurnServerOptions, readonly core: TurnServerCore) {
    super()
    this.now = options.now ?? Date.now
    this.metrics = core.metrics
    const metrics = this.metrics
    this.guard = new StreamGuard({
      firstMessageTimeoutMs: options.firstMessageTimeoutMs,
      authTimeoutMs: options.authTimeoutMs ?? 30_000,
      maxUnauthenticatedPerIp: options.maxUnauthenticatedPerIp,
      maxQueuedBytes: options.maxQueuedBytes,
      onClose: (reason) => { metrics.inc('natkit_relay_connections_closed_total', reason) }
    })
    metrics.onCollect?.(() => {
      metrics.set('natkit_relay_client_queued_bytes', this.guard.queuedBytes())
      metrics.set('natkit_relay_unauthenticated_connections', this.guard.guard.unauthenticatedCount)
    })
    const host: AdapterHost = {
      core,
      metrics,
      now: this.now,
      execute: (actions) => { this.execute(actions) },
      closing: () => this.closing !== undefined,
      markNativeViews: () => { this.nativeViews = true }
    }
    this.clientListeners = new ClientListeners(host, this.guard, {
      onUdp: (listener, data, from) => { this.onUdp(listener, data, from) },
      onConnection: (socket, protocol) => { this.onConnection(socket, protocol) }
    })
    this.addresses = this.clientListeners.addresses
    this.relays = new RelaySockets(host, {
      native: () => this.options.nativeRelayIo ?? this.options.nativeIo ?? true,
      onPeerConnection: (relay, socket) => { this.peers.accepted(relay, socket) }
    })
    this.connections = new ClientConnections(host, this.guard, {
      maxConnections: () => this.options.maxConnections ?? 10_000,
      toPeer: (id, bytes) => { this.peers.write(id, bytes) }
    })
    this.peers = new PeerConnections(host, this.relays, this.connections, this.guard)
    this.fastPath = fastPathState(options)
    if (this.fastPath.enabled) core.fastPath = new RelayFastPath(this.clientListeners, this.relays)
  }

  /** Validate options, bind every listener, and start the expiry timer. Rejects with TransportError or InvalidArgumentError. */
  static async start (options: TurnServerOptions): Promise<TurnServer> {
    const listen = options.listen ?? DEFAULT_LISTEN
    if (listen.length === 0 && options.tls === undefined) throw new InvalidArgumentError('nothing to listen on: give listen or tls.listen')
    const tlsContext = options.tls === undefined ? undefined : await readTlsFiles(options.tls)
    const metrics = options.metrics ?? new PrometheusRelayMetrics()
    // Bind the listeners first (port 0 resolves), then build the core with the real endpoints in its deny list.
    const server = new TurnServer(options, new TurnServerCore(coreOptions(options, [], metrics)))
    try {
      for (const ep of listen) await server.clientListeners.open(ep, listenOptions(options))
      if (options.tls !== undefined && tlsContext !== undefined) {
        for (const ep of options.tls.listen) await server.clientListeners.openTls(ep, tlsContext, options.reusePort === true, options.streamHandoff === true)
      }
      server.core.reconfigure(coreOptions(options, server.ownEndpoints(), metrics))
      server.core.sink = server
    } catch (err) {
      await server.close()
      throw err
    }
    const interval = options.tickInterval ?? 1000
    server.timer = setInterval(() => {
      server.execute(server.core.tick(server.now()))
      server.sweepRetired()
    }, interval)
    server.timer.unref()
    return server
  }

  private ownEndpoints (): Endpoint[] {
    return [...this.addresses.udp, ...this.addresses.tcp, ...this.addresses.tls]
  }

  // ---------------------------------------------------------------- client input

  private onUdp (listener: UdpListener, data: Buffer, from: Endpoint): void {
    if (this.closing !== undefined) return
    const actions = this.core.handle(data, from, listener.transport, this.now())
    if (actions.length > 0) this.execute(actions)
  }

  private onConnection (socket: Socket, protocol: ClientProtocol): void {
    this.connections.accept(socket, protocol)
  }

  /**
   * Serve a client TCP or TLS connection that another process accepted on one of the configured listeners and
   * handed over (`streamHandoff`; the relay's primary, src/cli/relay-workers.ts). `preRead`: the bytes it already
   * read from a TCP connection (they are read again first); a TLS connection comes before its handshake. It is
   * guarded like one accepted here; `observer` hears when it authenticates and when it ends.
   */
  serveConnection (socket: Socket, protocol: ClientProtocol, preRead?: Uint8Array, observer?: { readonly authenticated?: () => void, readonly closed?: () => void }): void {
    socket.on('error', (err) => { log.trace('handed-over connection error: %s', err.message) })
    if (this.closing !== undefined) { socket.destroy(); observer?.closed?.(); return }
    this.clientListeners.adopt(socket, protocol, preRead, observer)
  }

  // ---------------------------------------------------------------- the data path's sink (see data-path.ts)

  /** @internal RelaySink: client → peer, from the relay socket. `data` may be a view of a receive buffer. */
  toPeer (relay: string, peer: Endpoint, data: Uint8Array): void {
    this.relays.send(relay, peer, data, this.nativeViews)
  }

  /** @internal RelaySink: peer → client as ChannelData (RFC 8656 §12.4), padded over TCP/TLS (§12.5). */
  toClient (transport: ClientTransport, client: Endpoint, channel: number, data: Uint8Array): void {
    if (transport.protocol === 'udp') {
      const listener = this.clientListeners.udp(transport)
      if (listener === undefined) return
      if (listener.copiesOnSend) {
        // Framed into the queue's buffer (no allocation) and sent with the others of this turn in one sendmmsg.
        this.clientQueue.push(listener.socket, client, channel, data)
      } else {
        listener.socket.send(encodeChannelData(channel, data, { legacyChannels: true }), client)
      }
      return
    }
    this.sendToClient(transport, client, encodeChannelData(channel, data, { pad: true, legacyChannels: true }))
  }

  // ---------------------------------------------------------------- actions

  private execute (actions: RelayAction[]): void {
    for (const a of actions) {
      try {
        this.executeOne(a)
      } catch (err) {
        log.error('action %s failed: %O', a.type, err)
      }
    }
  }

  private executeOne (a: RelayAction): void {
    switch (a.type) {
      case 'send': this.sendToClient(a.transport, a.to, a.data); break
      case 'relay': this.toPeer(a.relay, a.to, a.data); break
      case 'open-relay': void this.relays.open(a.relay, a.protocol, a.address, a.port); break
      case 'close-relay': this.relays.close(a.relay); break
      case 'tcp-connect': this.peers.connect(a.connectionId, a.relay, a.peer); break
      case 'tcp-bind': this.peers.bind(a.connectionId, a.transport); break
      case 'tcp-close': this.peers.close(a.connectionId); break
      case 'close-transport': this.connections.get(a.transport)?.socket.destroy(); break
      case 'event': this.onEvent(a.event); break
      case 'ignore': log.trace('ignored: %s', a.reason); break
    }
  }

  private onEvent (e: RelayEvent): void {
    switch (e.type) {
      case 'allocation':
        // An allocation over TCP/TLS authenticates its connection (the connection-level deadlines end).
        if (e.protocol !== 'udp') {
          const conn = this.connections.find(e.protocol, e.client)
          if (conn !== undefined) this.guard.authenticated(conn.socket)
        }
        log('allocation %d for %s from %s/%s relayed %s lifetime %ds', e.id, e.username, formatEndpoint(e.client), e.protocol, e.relayed.map(formatEndpoint).join(' '), e.lifetime)
        this.emit('allocation', e); break
      case 'refresh': this.emit('refresh', e); break
      case 'deallocation':
        log('allocation %d ended (%s)', e.id, e.reason)
        this.sweepRetired()
        this.emit('deallocation', e); break
      case 'auth-failure': this.emit('auth-failure', e); break
      case 'quota-refused': this.emit('quota-refused', e); break
    }
  }

  private sendToClient (transport: ClientTransport, to: Endpoint, data: Uint8Array): void {
    if (transport.protocol === 'udp') {
      this.clientListeners.udp(transport)?.socket.send(data, to)
      return
    }
    // A client that does not read what it is sent is closed once its queue passes the bound (counted by the guard).
    this.connections.send(transport, data)
  }

  // ---------------------------------------------------------------- lifecycle

  /** Counters and table sizes. */
  stats (): TurnServerStats {
    const m = this.metrics
    return {
      ...this.core.stats(this.now()),
      clientConnections: this.connections.size,
      relaySockets: this.relays.size,
      metrics: m instanceof InMemoryRelayMetrics ? m.snapshot() : undefined
    }
  }

  /**
   * Apply new options without dropping allocations: credentials, realm, limits and policy; the TLS certificate and
   * key (re-read); the listeners; the relay and external addresses.
   * - Listeners (`listen` and `tls.listen`, compared by the configured address): new ones open. A removed one takes
   *   no new clients and no new allocations from then on: its TCP or TLS listener closes at once (connections it
   *   accepted stay open), and Allocate requests through it are refused with 508; allocations made through it
   *   before go on until they end (expiry, Refresh with lifetime 0, their connection closing). A removed UDP
   *   listener stays open for them and closes when the last one ends.
   * - `relayIp`/`externalIp` (and the IPv6 ones): new allocations bind and advertise the new addresses; existing
   *   ones keep theirs. Addresses the relay used before stay protected from being peers.
   * - `udp`, `tcp`, `nativeIo`, `udpBufferSize` and `reusePort` apply to listeners opened from now on.
   * Rejects with TransportError (a new listener cannot be bound) or InvalidArgumentError; then the listeners it
   * opened are closed again and nothing else changes.
   */
  async reload (options: Partial<TurnServerOptions>): Promise<void> {
    const run = this.reloading.then(async () => { await this.doReload(options) })
    this.reloading = run.catch(() => {})
    await run
  }

  private async doReload (options: Partial<TurnServerOptions>): Promise<void> {
    if (this.closing !== undefined) return
    const merged = { ...this.options, ...options }
    const want = new Map<string, { kind: 'listen' | 'tls', ep: Endpoint }>()
    for (const ep of merged.listen ?? DEFAULT_LISTEN) want.set(listenerKey('listen', ep), { kind: 'listen', ep })
    for (const ep of merged.tls?.listen ?? []) want.set(listenerKey('tls', ep), { kind: 'tls', ep })
    if (want.size === 0) throw new InvalidArgumentError('nothing to listen on: give listen or tls.listen')
    const added = [...want].filter(([key]) => !this.clientListeners.has(key))
    const removed = this.clientListeners.keys().filter(key => !want.has(key))
    const needTls = this.clientListeners.tlsCount > 0 || added.some(([, a]) => a.kind === 'tls')
    const tls = merged.tls !== undefined && needTls ? await readTlsFiles(merged.tls) : undefined
    const inUse = (udp: UdpListener): boolean => this.core.allocationsThrough({ protocol: 'udp', local: udp.socket.local }) > 0
    const opened: string[] = []
    try {
      for (const [key, a] of added) {
        if (a.kind === 'listen') await this.clientListeners.open(a.ep, listenOptions(merged))
        else if (tls !== undefined) await this.clientListeners.openTls(a.ep, tls, merged.reusePort === true, merged.streamHandoff === true)
        opened.push(key)
      }
      this.core.reconfigure(this.coreOptionsFor(merged))
    } catch (err) {
      for (const key of opened) await this.clientListeners.retire(key, inUse)
      throw err
    }
    for (const key of removed) {
      this.core.closedListeners.push(...await this.clientListeners.retire(key, inUse))
      log('listener %s removed', key)
    }
    // A listener given again takes allocations again.
    const open = [
      ...this.addresses.udp.map(local => ({ protocol: 'udp', local })), ...this.addresses.tcp.map(local => ({ protocol: 'tcp', local })),
      ...this.addresses.tls.map(local => ({ protocol: 'tls', local }))
    ]
    const closed = this.core.closedListeners.filter(c => !open.some(o => o.protocol === c.protocol && sameEndpoint(o.local, c.local)))
    this.core.closedListeners.splice(0, this.core.closedListeners.length, ...closed)
    if (tls !== undefined) this.clientListeners.setSecureContext(tls)
    this.options = merged
    this.sweepRetired()
    log('configuration reloaded')
  }

  /** The core's options for `o`: this server's listeners, and every address and endpoint it used before, are not peers. */
  private coreOptionsFor (o: TurnServerOptions): TurnServerCoreOptions {
    for (const e of this.ownEndpoints()) this.formerEndpoints.set(endpointKey(e), e)
    const c = coreOptions(o, [...this.formerEndpoints.values()], this.metrics)
    for (const a of c.ownAddresses ?? []) this.formerAddresses.add(a)
    return { ...c, ownAddresses: [...this.formerAddresses] }
  }

  /** Close the removed UDP listeners whose last allocation ended. */
  private sweepRetired (): void {
    if (this.clientListeners.retiringCount === 0 || this.closing !== undefined) return
    const inUse = (udp: UdpListener): boolean => this.core.allocationsThrough({ protocol: 'udp', local: udp.socket.local }) > 0
    this.clientListeners.closeRetired(inUse).then((closed) => {
      for (const local of closed) {
        const i = this.core.closedListeners.findIndex(c => c.protocol === 'udp' && sameEndpoint(c.local, local))
        if (i >= 0) this.core.closedListeners.splice(i, 1)
        log('removed UDP listener %s closed: its last allocation ended', formatEndpoint(local))
      }
    }, (err: Error) => { log.error('closing removed listeners failed: %O', err) })
  }

  /**
   * Graceful drain: refuse new allocations (508), let existing ones run until they end or `deadlineMs` passes,
   * then close.
   */
  async drain (deadlineMs: number): Promise<void> {
    this.core.draining = true
    const end = Date.now() + deadlineMs
    while (this.core.allocationCount > 0 && Date.now() < end && this.closing === undefined) {
      await new Promise<void>((resolve) => { setTimeout(resolve, Math.min(200, Math.max(1, end - Date.now()))) })
    }
    await this.close()
  }

  /** Close every socket and connection. Idempotent. */
  close (): Promise<void> {
    this.closing ??= this.doClose()
    return this.closing
  }

  private async doClose (): Promise<void> {
    if (this.timer !== undefined) clearInterval(this.timer)
    this.guard.stop()
    this.clientQueue.close()
    this.execute(this.core.shutdown(this.now()).filter(a => a.type === 'event'))
    this.peers.destroyAll()
    this.connections.destroyAll()
    await Promise.all([this.relays.closeAll(), this.clientListeners.closeAll()])
  }

  async [Symbol.asyncDispose] (): Promise<void> { await this.close() }
}

/**
 * @internal Whether a server with these options runs the native fast path (see TurnServerOptions.fastPath), and if
 * not, why (the CLI's primary process says it before its workers start).
 */
export function fastPathState (o: TurnServerOptions): { enabled: boolean, reason?: string } {
  if (o.fastPath === false) return { enabled: false, reason: 'turned off' }
  if (o.now !== undefined) return { enabled: false, reason: 'a clock was injected (the addon uses the monotonic clock)' }
  if (!wantsNativeUdp({ native: o.nativeIo }) || o.nativeRelayIo === false) return { enabled: false, reason: 'needs native I/O on the listeners and the relay sockets' }
  const native = loadNativeUdp()
  const reason = fastPathUnavailableReason(native === undefined ? undefined : typeof native.fastInstall === 'function')
  return reason === undefined ? { enabled: true } : { enabled: false, reason }
}
