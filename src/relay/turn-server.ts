import { EventEmitter } from 'node:events'
import { readFile } from 'node:fs/promises'
import { networkInterfaces } from 'node:os'
import { createServer as createTcpServer, connect as tcpConnect, type Server, type Socket } from 'node:net'
import { createServer as createTlsServer, type Server as TlsServer } from 'node:tls'
import { InvalidArgumentError, TransportError } from '../errors.js'
import { createLogger } from '../log.js'
import { endpointKey, formatEndpoint, ipFamily, type Endpoint } from '../net/endpoint.js'
import { BatchUdpSocket } from '../net/batch-udp.js'
import { StreamGuard } from '../net/stream-guard.js'
import { bindDatagramSocket } from '../net/native.js'
import type { DatagramSocket } from '../net/udp.js'
import { classifyPacket, encodeChannelData, readStreamFrame } from '../stun/index.js'
import { ClientSendQueue } from './client-send-queue.js'
import type { TurnServerCoreOptions } from './core-options.js'
import { InMemoryRelayMetrics, PrometheusRelayMetrics, type RelayMetrics, type RelayMetricsSnapshot } from './metrics.js'
import { TurnServerCore, type CoreStats } from './server-core.js'
import type { ClientProtocol, ClientTransport, RelayAction, RelayEvent } from './types.js'

const log = createLogger('natcheck:relay:server')

/** TLS listener settings: where, and the PEM certificate and key files (re-read on reload). */
export interface TurnTlsOptions {
  readonly listen: readonly Endpoint[]
  readonly certFile: string
  readonly keyFile: string
}

/**
 * Options for TurnServer.start. Everything of TurnServerCoreOptions (realm, users, authSecret, limits, policy…)
 * plus the sockets. The relay addresses are given as `relayIp`/`externalIp` (coturn's --relay-ip and -X).
 */
export interface TurnServerOptions extends Omit<TurnServerCoreOptions, 'relayAddress' | 'relayAddress6' | 'externalAddress' | 'externalAddress6' | 'ownEndpoints' | 'localAddresses'> {
  /**
   * Other endpoints of this host the relay must never reach as a peer, whatever `allowPeer` says: the admin and
   * rendezvous ports (its own listeners are added by the server itself). A wildcard address means every local one.
   */
  readonly protectedEndpoints?: readonly Endpoint[]
  /** Client-facing UDP and TCP listeners (default [{ address: '127.0.0.1', port: 3478 }]). Port 0 picks one. */
  readonly listen?: readonly Endpoint[]
  /** Listen on UDP (default true). */
  readonly udp?: boolean
  /** Listen on TCP (default true). */
  readonly tcp?: boolean
  /** TLS listeners (default none). */
  readonly tls?: TurnTlsOptions
  /** IPv4 address relay sockets bind to (default: the first IPv4 listen address, unless it is 0.0.0.0). */
  readonly relayIp?: string
  /** IPv6 address relay sockets bind to (default: the first IPv6 listen address, unless it is ::). */
  readonly relayIp6?: string
  /** Public IPv4 advertised in XOR-RELAYED-ADDRESS (default: relayIp). */
  readonly externalIp?: string
  /** Public IPv6 advertised in XOR-RELAYED-ADDRESS (default: relayIp6). */
  readonly externalIp6?: string
  /** Most simultaneous client TCP/TLS connections (default 10000). */
  readonly maxConnections?: number
  /**
   * A TCP/TLS client connection (TLS handshake included) must send its first complete STUN message or ChannelData
   * frame within this many ms, or it is closed (default 5000).
   */
  readonly firstMessageTimeoutMs?: number
  /**
   * A TCP/TLS client connection that has not authenticated — no successful Allocate on it, nor an RFC 6062
   * ConnectionBind — within this many ms of being accepted is closed (default 30 000; coturn also closes sessions
   * that never allocate). Binding requests need no authentication and work until then.
   */
  readonly authTimeoutMs?: number
  /**
   * Concurrent unauthenticated TCP/TLS connections per source (IPv4 address or IPv6 /64); the newest beyond it is
   * refused (default 32).
   */
  readonly maxUnauthenticatedPerIp?: number
  /**
   * A TCP/TLS client connection whose queued outgoing bytes pass this is closed (default 256 KiB; see
   * ConnectionGuardOptions.maxQueuedBytes for why).
   */
  readonly maxQueuedBytes?: number
  /**
   * Batched datagram I/O (recvmmsg/sendmmsg, src/net/native.ts) for the client-facing UDP listeners and the UDP relay
   * sockets, when the native addon is built (default true; `NATKIT_NATIVE=0` in the environment also turns it off).
   * Falls back to node:dgram otherwise.
   */
  readonly nativeIo?: boolean
  /**
   * Batched I/O for the UDP relay sockets (default: nativeIo). Native sockets share one receive/send arena per
   * process, so they cost about what node:dgram ones do to open and hold; turning this off keeps batching on the
   * listeners only.
   */
  readonly nativeRelayIo?: boolean
  /**
   * Share the client-facing listeners with other relay processes (default false): UDP listeners bound with
   * SO_REUSEPORT, each client's 5-tuple hashed to one process (needs native I/O), and TCP/TLS listeners not
   * `exclusive`, so that node:cluster's primary shares them among its workers (see src/cli/relay-workers.ts).
   */
  readonly reusePort?: boolean
  /** SO_RCVBUF/SO_SNDBUF of the client-facing UDP listeners in bytes (default: the OS default). */
  readonly udpBufferSize?: number
  /** Interval of the expiry timer in ms (default 1000). */
  readonly tickInterval?: number
  /** Clock (ms), for tests. */
  readonly now?: () => number
}

/** Events a TurnServer emits. */
export interface TurnServerEvents {
  allocation: [event: Extract<RelayEvent, { type: 'allocation' }>]
  refresh: [event: Extract<RelayEvent, { type: 'refresh' }>]
  deallocation: [event: Extract<RelayEvent, { type: 'deallocation' }>]
  'auth-failure': [event: Extract<RelayEvent, { type: 'auth-failure' }>]
  'quota-refused': [event: Extract<RelayEvent, { type: 'quota-refused' }>]
  error: [error: Error]
}

/** What stats() returns. */
export interface TurnServerStats extends CoreStats {
  readonly clientConnections: number
  readonly relaySockets: number
  readonly metrics: RelayMetricsSnapshot | undefined
}

interface ClientConnection {
  readonly id: string
  readonly socket: Socket
  readonly transport: ClientTransport
  readonly remote: Endpoint
  buffer: Buffer
  /** RFC 6062 client data connection: no more STUN, bytes go to this peer connection. */
  dataFor?: number
}

interface PeerTcp {
  socket: Socket
  data?: ClientConnection
}

/** A client-facing UDP listener: the socket, its 5-tuple half (one object for every packet), and whether send() copies. */
interface UdpListener {
  readonly socket: DatagramSocket
  readonly transport: ClientTransport
  /** BatchUdpSocket copies on send(); node:dgram keeps a reference until the datagram is sent. */
  readonly copiesOnSend: boolean
}

type RelaySocket = { kind: 'udp', socket: DatagramSocket, bindAddress: string, copiesOnSend: boolean } | { kind: 'tcp', server: Server, bindAddress: string, port: number }

/**
 * A TURN server (RFC 8656, RFC 6062, RFC 6156 via RFC 8656) over real sockets: the thin adapter around
 * TurnServerCore. UDP, TCP and TLS client listeners; UDP relay sockets and TCP relay listeners bound to `relayIp`
 * within the port range. Handlers never throw; timers are unref'ed; close() is idempotent.
 */
export class TurnServer extends EventEmitter<TurnServerEvents> {
  private readonly udpListeners = new Map<string, UdpListener>()
  /** The same listeners by their (stable) transport object: the per-packet lookup builds no key. */
  private readonly listenerByTransport = new Map<ClientTransport, UdpListener>()
  private readonly tcpListeners: Array<Server | TlsServer> = []
  private tlsServers: TlsServer[] = []
  private readonly connections = new Map<string, ClientConnection>()
  /** TCP/TLS connections by protocol and remote endpoint, to find the one an allocation event names. */
  private readonly byRemote = new Map<string, ClientConnection>()
  /** Connection-level limits of the TCP/TLS listeners. */
  private readonly guard: StreamGuard
  private readonly relays = new Map<string, RelaySocket>()
  private readonly peerTcp = new Map<number, PeerTcp>()
  private nextConnection = 1
  /** Whether any receive handler may get views of a shared buffer (native sockets): then kept bytes are copied. */
  private nativeViews = false
  /** Peer → client ChannelData for native listeners, sent together once per event-loop turn. */
  private readonly clientQueue = new ClientSendQueue()
  private timer: NodeJS.Timeout | undefined
  private closing: Promise<void> | undefined
  private readonly now: () => number
  readonly metrics: RelayMetrics
  /** Addresses the server actually listens on. */
  readonly addresses: { udp: Endpoint[], tcp: Endpoint[], tls: Endpoint[] } = { udp: [], tcp: [], tls: [] }

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
  }

  /** Validate options, bind every listener, and start the expiry timer. Rejects with TransportError or InvalidArgumentError. */
  static async start (options: TurnServerOptions): Promise<TurnServer> {
    const listen = options.listen ?? [{ address: '127.0.0.1', port: 3478 }]
    if (listen.length === 0 && options.tls === undefined) throw new InvalidArgumentError('nothing to listen on: give listen or tls.listen')
    const tlsContext = options.tls === undefined ? undefined : await readTls(options.tls)
    const metrics = options.metrics ?? new PrometheusRelayMetrics()
    // Bind the listeners first (port 0 resolves), then build the core with the real endpoints in its deny list.
    const server = new TurnServer(options, new TurnServerCore(coreOptions(options, [], metrics)))
    try {
      for (const ep of listen) {
        if (options.udp !== false) {
          const s = await bindDatagramSocket({ address: ep.address, port: ep.port, native: options.nativeIo ?? true, bufferSize: options.udpBufferSize, reusePort: options.reusePort })
          const listener: UdpListener = { socket: s, transport: { protocol: 'udp', local: s.local }, copiesOnSend: s instanceof BatchUdpSocket }
          if (listener.copiesOnSend) server.nativeViews = true
          server.udpListeners.set(endpointKey(s.local), listener)
          server.listenerByTransport.set(listener.transport, listener)
          server.addresses.udp.push(s.local)
          // `data` may be a view valid only during this call (BatchUdpSocket): the core copies what it keeps, and
          // everything it forwards is sent before the handler returns.
          s.onMessage((data, from) => { server.onUdp(listener, data, from) })
        }
        if (options.tcp !== false) {
          const port = options.udp !== false ? server.addresses.udp[server.addresses.udp.length - 1].port : ep.port
          const srv = createTcpServer((sock) => { server.onTcpConnection(sock, 'tcp') })
          server.guard.watch(srv)
          const local = await listenServer(srv, ep.address, port, options.reusePort !== true)
          server.tcpListeners.push(srv)
          server.addresses.tcp.push(local)
        }
      }
      if (options.tls !== undefined && tlsContext !== undefined) {
        for (const ep of options.tls.listen) {
          const srv = createTlsServer({ cert: tlsContext.cert, key: tlsContext.key }, (sock) => { server.onTcpConnection(sock, 'tls') })
          srv.on('tlsClientError', (err) => { log.trace('TLS handshake failed: %s', err.message); metrics.inc('natkit_relay_malformed_total', 'tls-handshake') })
          server.guard.watch(srv)
          const local = await listenServer(srv, ep.address, ep.port, options.reusePort !== true)
          server.tcpListeners.push(srv)
          server.tlsServers.push(srv)
          server.addresses.tls.push(local)
        }
      }
      server.core.reconfigure(coreOptions(options, server.ownEndpoints(), metrics))
      server.core.sink = server
    } catch (err) {
      await server.close()
      throw err
    }
    const interval = options.tickInterval ?? 1000
    server.timer = setInterval(() => { server.execute(server.core.tick(server.now())) }, interval)
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

  // ---------------------------------------------------------------- the data path's sink (see data-path.ts)

  /** @internal RelaySink: client → peer, from the relay socket. `data` may be a view of a receive buffer. */
  toPeer (relay: string, peer: Endpoint, data: Uint8Array): void {
    const r = this.relays.get(relay)
    if (r?.kind !== 'udp') return
    // node:dgram sends later and keeps `data`: copy a view that the next native batch would overwrite.
    r.socket.send(r.copiesOnSend || !this.nativeViews ? data : Buffer.from(data), peer)
  }

  /** @internal RelaySink: peer → client as ChannelData (RFC 8656 §12.4), padded over TCP/TLS (§12.5). */
  toClient (transport: ClientTransport, client: Endpoint, channel: number, data: Uint8Array): void {
    if (transport.protocol === 'udp') {
      const listener = this.listenerByTransport.get(transport) ?? this.udpListeners.get(endpointKey(transport.local))
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

  private onTcpConnection (socket: Socket, protocol: ClientProtocol): void {
    socket.on('error', (err) => { log.trace('connection error: %s', err.message) })
    // Refused (too many unauthenticated from its source) or closed (a deadline passed during the TLS handshake).
    if (!this.guard.adopt(socket)) { socket.destroy(); return }
    if (this.closing !== undefined || this.connections.size >= (this.options.maxConnections ?? 10_000)) {
      this.metrics.inc('natkit_relay_dropped_total', 'connection-limit')
      socket.destroy()
      return
    }
    const remoteAddress = socket.remoteAddress
    const remotePort = socket.remotePort
    if (remoteAddress === undefined || remotePort === undefined) { socket.destroy(); return }
    const id = `c${this.nextConnection++}`
    const local = { address: socket.localAddress ?? '', port: socket.localPort ?? 0 }
    const conn: ClientConnection = {
      id, socket, transport: { protocol, local, connection: id }, remote: { address: remoteAddress, port: remotePort }, buffer: Buffer.alloc(0)
    }
    this.connections.set(id, conn)
    const remoteKey = `${protocol}|${endpointKey(conn.remote)}`
    this.byRemote.set(remoteKey, conn)
    this.metrics.set('natkit_relay_client_connections', this.connections.size)
    socket.setNoDelay(true)
    socket.on('data', (chunk: Buffer) => { this.onStreamData(conn, chunk) })
    socket.on('close', () => {
      this.connections.delete(id)
      if (this.byRemote.get(remoteKey) === conn) this.byRemote.delete(remoteKey)
      this.metrics.set('natkit_relay_client_connections', this.connections.size)
      if (this.closing === undefined) this.execute(this.core.transportClosed(conn.remote, conn.transport, this.now()))
    })
  }

  private onStreamData (conn: ClientConnection, chunk: Buffer): void {
    try {
      if (conn.dataFor !== undefined) return // piped; see tcp-bind
      conn.buffer = conn.buffer.length === 0 ? chunk : Buffer.concat([conn.buffer, chunk])
      while (conn.buffer.length > 0 && conn.dataFor === undefined) {
        // A first byte that starts neither STUN nor ChannelData is fatal at once, without waiting for 4 bytes.
        const first = classifyPacket(conn.buffer.subarray(0, 1), this.core.channelOptions)
        const frame = first === 'stun' || first === 'channel-data'
          ? readStreamFrame(conn.buffer, this.core.channelOptions)
          : { kind: 'invalid' as const, reason: `first byte 0x${conn.buffer[0].toString(16)} starts neither STUN nor ChannelData` }
        if (frame.kind === 'incomplete') break
        if (frame.kind === 'invalid') {
          // A stream that lost its framing cannot be resynchronised: count it and close (RFC 8656 §12.5).
          this.metrics.inc('natkit_relay_malformed_total', 'stream-framing')
          log.trace('closing %s: %s', conn.id, frame.reason)
          conn.socket.destroy()
          return
        }
        conn.buffer = conn.buffer.subarray(frame.length)
        this.guard.message(conn.socket)
        this.execute(this.core.handle(frame.frame, conn.remote, conn.transport, this.now()))
      }
      if (conn.dataFor !== undefined && conn.buffer.length > 0) {
        // Bytes after the ConnectionBind belong to the peer (RFC 6062 §5.4).
        this.peerTcp.get(conn.dataFor)?.socket.write(conn.buffer)
        conn.buffer = Buffer.alloc(0)
      }
    } catch (err) {
      log.error('stream handler failed: %O', err)
      conn.socket.destroy()
    }
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
      case 'open-relay': void this.openRelay(a.relay, a.protocol, a.address, a.port); break
      case 'close-relay': this.closeRelay(a.relay); break
      case 'tcp-connect': this.tcpConnectPeer(a.connectionId, a.relay, a.peer); break
      case 'tcp-bind': this.bindData(a.connectionId, a.transport); break
      case 'tcp-close': this.closePeerTcp(a.connectionId); break
      case 'close-transport': {
        if (a.transport.connection !== undefined) this.connections.get(a.transport.connection)?.socket.destroy()
        break
      }
      case 'event': this.onEvent(a.event); break
      case 'ignore': log.trace('ignored: %s', a.reason); break
    }
  }

  private onEvent (e: RelayEvent): void {
    switch (e.type) {
      case 'allocation':
        // An allocation over TCP/TLS authenticates its connection (the connection-level deadlines end).
        if (e.protocol !== 'udp') {
          const conn = this.byRemote.get(`${e.protocol}|${endpointKey(e.client)}`)
          if (conn !== undefined) this.guard.authenticated(conn.socket)
        }
        log('allocation %d for %s from %s/%s relayed %s lifetime %ds', e.id, e.username, formatEndpoint(e.client), e.protocol, e.relayed.map(formatEndpoint).join(' '), e.lifetime)
        this.emit('allocation', e); break
      case 'refresh': this.emit('refresh', e); break
      case 'deallocation':
        log('allocation %d ended (%s)', e.id, e.reason)
        this.emit('deallocation', e); break
      case 'auth-failure': this.emit('auth-failure', e); break
      case 'quota-refused': this.emit('quota-refused', e); break
    }
  }

  private sendToClient (transport: ClientTransport, to: Endpoint, data: Uint8Array): void {
    if (transport.protocol === 'udp') {
      this.udpListeners.get(endpointKey(transport.local))?.socket.send(data, to)
      return
    }
    const conn = transport.connection === undefined ? undefined : this.connections.get(transport.connection)
    if (conn === undefined || conn.socket.destroyed) return
    // A client that does not read what it is sent is closed once its queue passes the bound (counted by the guard).
    this.guard.write(conn.socket, data)
  }

  private async openRelay (key: string, protocol: 'udp' | 'tcp', address: string, port: number): Promise<void> {
    let result: { ok: true, bound: Endpoint } | { ok: false, inUse: boolean }
    try {
      if (protocol === 'udp') {
        const socket = await bindDatagramSocket({ address, port, native: this.options.nativeRelayIo ?? this.options.nativeIo ?? true })
        if (this.closing !== undefined) { await socket.close(); return }
        const copiesOnSend = socket instanceof BatchUdpSocket
        if (copiesOnSend) this.nativeViews = true
        // As for the listeners, `data` may be a view valid only during this call.
        socket.onMessage((data, from) => {
          if (this.closing !== undefined) return
          const actions = this.core.handlePeer(key, data, from, this.now())
          if (actions.length > 0) this.execute(actions)
        })
        this.relays.set(key, { kind: 'udp', socket, bindAddress: address, copiesOnSend })
        result = { ok: true, bound: socket.local }
      } else {
        const server = createTcpServer({ pauseOnConnect: true }, (sock) => { this.onPeerTcpConnection(key, sock) })
        const bound = await listenServer(server, address, port)
        if (this.closing !== undefined) { server.close(); return }
        this.relays.set(key, { kind: 'tcp', server, bindAddress: address, port: bound.port })
        result = { ok: true, bound }
      }
    } catch (err) {
      const code = ((err as Error & { cause?: { code?: string } }).cause?.code) ?? (err as { code?: string }).code
      log.trace('relay bind %s:%d failed: %s', address, port, (err as Error).message)
      result = { ok: false, inUse: code === 'EADDRINUSE' || code === 'EACCES' }
    }
    if (this.closing === undefined) this.execute(this.core.relayOpened(key, result, this.now()))
  }

  private closeRelay (key: string): void {
    const r = this.relays.get(key)
    if (r === undefined) return
    this.relays.delete(key)
    if (r.kind === 'udp') void r.socket.close()
    else r.server.close()
  }

  // ---------------------------------------------------------------- RFC 6062 plumbing

  private onPeerTcpConnection (relay: string, sock: Socket): void {
    const peer = { address: sock.remoteAddress ?? '', port: sock.remotePort ?? 0 }
    const { connectionId, actions } = this.core.peerConnectionAccepted(relay, peer, this.now())
    if (connectionId === undefined) { sock.destroy(); this.execute(actions); return }
    // The socket stays paused ("the server MUST buffer any data received from the peer"): TCP flow control does it.
    this.trackPeer(connectionId, sock)
    this.execute(actions)
  }

  private trackPeer (id: number, sock: Socket): void {
    this.peerTcp.set(id, { socket: sock })
    sock.on('error', (err) => { log.trace('peer connection %d: %s', id, err.message) })
    sock.on('close', () => {
      const p = this.peerTcp.get(id)
      this.peerTcp.delete(id)
      p?.data?.socket.end()
      if (this.closing === undefined) this.execute(this.core.tcpConnectionClosed(id, this.now()))
    })
  }

  private tcpConnectPeer (id: number, relayKey: string, peer: Endpoint): void {
    const relay = this.relays.get(relayKey)
    const local = relay?.kind === 'tcp' ? { localAddress: relay.bindAddress, localPort: relay.port } : {}
    const attempt = (withPort: boolean): void => {
      const sock = tcpConnect({ host: peer.address, port: peer.port, family: ipFamily(peer.address) || undefined, ...(withPort ? local : { localAddress: (local as { localAddress?: string }).localAddress }) })
      sock.pause()
      const timer = setTimeout(() => { sock.destroy(new TransportError('connect timeout')) }, 30_000)
      timer.unref()
      sock.once('connect', () => {
        clearTimeout(timer)
        this.trackPeer(id, sock)
        this.execute(this.core.peerConnectResult(id, true, this.now()))
      })
      sock.once('error', (err: Error & { code?: string }) => {
        clearTimeout(timer)
        if (this.peerTcp.get(id)?.socket === sock) return
        // The relayed port is also the listener's; if the OS refuses to share it, connect from an ephemeral port.
        if (withPort && (err.code === 'EADDRINUSE' || err.code === 'EADDRNOTAVAIL')) { attempt(false); return }
        if (this.closing === undefined) this.execute(this.core.peerConnectResult(id, false, this.now()))
      })
    }
    attempt(relay?.kind === 'tcp')
  }

  private bindData (id: number, transport: ClientTransport): void {
    const peer = this.peerTcp.get(id)
    const conn = transport.connection === undefined ? undefined : this.connections.get(transport.connection)
    if (peer === undefined || conn === undefined) {
      if (conn !== undefined) conn.socket.end()
      return
    }
    conn.dataFor = id
    peer.data = conn
    // A successful ConnectionBind authenticates the data connection (RFC 6062 §5.4).
    this.guard.authenticated(conn.socket)
    conn.socket.removeAllListeners('data')
    conn.socket.on('data', (chunk: Buffer) => {
      this.metrics.inc('natkit_relay_bytes_total', 'client-to-peer', chunk.length)
      if (!peer.socket.write(chunk)) { conn.socket.pause(); peer.socket.once('drain', () => conn.socket.resume()) }
    })
    peer.socket.on('data', (chunk: Buffer) => {
      this.metrics.inc('natkit_relay_bytes_total', 'peer-to-client', chunk.length)
      if (!conn.socket.write(chunk)) { peer.socket.pause(); conn.socket.once('drain', () => peer.socket.resume()) }
    })
    conn.socket.on('close', () => { peer.socket.destroy() })
    peer.socket.resume()
  }

  private closePeerTcp (id: number): void {
    const p = this.peerTcp.get(id)
    if (p === undefined) return
    this.peerTcp.delete(id)
    p.socket.destroy()
    p.data?.socket.destroy()
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
   * Apply new credentials, realm, limits and policy, and re-read the TLS certificate and key, without dropping
   * allocations. Listener addresses and relayIp cannot change this way (restart for that).
   */
  async reload (options: Partial<TurnServerOptions>): Promise<void> {
    const merged = { ...this.options, ...options }
    const tls = merged.tls !== undefined && this.tlsServers.length > 0 ? await readTls(merged.tls) : undefined
    this.core.reconfigure(coreOptions(merged, this.ownEndpoints(), this.metrics))
    if (tls !== undefined) for (const s of this.tlsServers) s.setSecureContext({ cert: tls.cert, key: tls.key })
    this.options = merged
    log('configuration reloaded')
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
    for (const p of this.peerTcp.values()) p.socket.destroy()
    this.peerTcp.clear()
    for (const c of this.connections.values()) c.socket.destroy()
    this.connections.clear()
    const waits: Array<Promise<unknown>> = []
    for (const r of this.relays.values()) {
      if (r.kind === 'udp') waits.push(r.socket.close())
      else waits.push(new Promise<void>((resolve) => { r.server.close(() => { resolve() }) }))
    }
    this.relays.clear()
    for (const l of this.udpListeners.values()) waits.push(l.socket.close())
    for (const s of this.tcpListeners) waits.push(new Promise<void>((resolve) => { s.close(() => { resolve() }) }))
    await Promise.all(waits)
  }

  async [Symbol.asyncDispose] (): Promise<void> { await this.close() }
}

function coreOptions (o: TurnServerOptions, ownEndpoints: Endpoint[], metrics: RelayMetrics): TurnServerCoreOptions {
  const listen = o.listen ?? [{ address: '127.0.0.1', port: 3478 }]
  const v4 = listen.find(e => ipFamily(e.address) === 4 && e.address !== '0.0.0.0')?.address
  const v6 = listen.find(e => ipFamily(e.address) === 6 && e.address !== '::')?.address
  const relayAddress = o.relayIp ?? v4
  const relayAddress6 = o.relayIp6 ?? v6
  const own = new Set<string>([...listen.map(e => e.address), ...(o.tls?.listen ?? []).map(e => e.address)])
  for (const a of [relayAddress, relayAddress6, o.externalIp, o.externalIp6]) if (a !== undefined) own.add(a)
  return {
    ...o,
    relayAddress,
    relayAddress6,
    externalAddress: o.externalIp,
    externalAddress6: o.externalIp6,
    ownAddresses: [...own, ...(o.ownAddresses ?? [])],
    ownEndpoints: [...ownEndpoints, ...(o.protectedEndpoints ?? [])],
    localAddresses: localInterfaceAddresses(),
    metrics
  }
}

/** Every address of this host's interfaces (a wildcard listener is reachable at each). */
function localInterfaceAddresses (): string[] {
  return Object.values(networkInterfaces()).flatMap(list => (list ?? []).map(i => i.address))
}

async function readTls (tls: TurnTlsOptions): Promise<{ cert: Buffer, key: Buffer }> {
  try {
    const [cert, key] = await Promise.all([readFile(tls.certFile), readFile(tls.keyFile)])
    return { cert, key }
  } catch (err) {
    throw new InvalidArgumentError(`cannot read the TLS certificate or key: ${(err as Error).message}`, { cause: err })
  }
}

function listenServer (server: Server, address: string, port: number, exclusive = true): Promise<Endpoint> {
  return new Promise<Endpoint>((resolve, reject) => {
    const onError = (err: Error & { code?: string }): void => {
      reject(new TransportError(`cannot listen on TCP ${formatEndpoint({ address, port })}: ${err.message}`, { cause: err }))
    }
    server.once('error', onError)
    server.listen({ host: address, port, exclusive }, () => {
      server.off('error', onError)
      server.on('error', (err) => { log.error('listener error: %s', err.message) })
      const a = server.address()
      if (a === null || typeof a === 'string') { reject(new TransportError('listener has no address')); return }
      resolve({ address: a.address, port: a.port })
    })
  })
}
