import { EventEmitter } from 'node:events'
import { createServer, type IncomingMessage, type Server } from 'node:http'
import type { Socket } from 'node:net'
import type { Duplex } from 'node:stream'
import { WebSocketServer, WebSocket, type RawData } from 'ws'
import { InvalidArgumentError, TransportError } from '../errors.js'
import { createLogger } from '../log.js'
import { formatEndpoint, type Endpoint } from '../net/endpoint.js'
import { ipv4Address } from '../net/endpoint.js'
import { observedAddress, sourceKey } from './address.js'
import { RendezvousCore } from './core.js'
import type { ConnId, RendezvousAction, RendezvousEvent, RendezvousStats } from './core-types.js'
import type { RendezvousCoreOptions } from './core-options.js'
import { RENDEZVOUS_CLOSE_CODES, RENDEZVOUS_PATH } from './protocol.js'
import type { RendezvousRemote } from './remote.js'

const log = createLogger('natcheck:rendezvous:server')

/** Options for RendezvousServer.start: the core's (auth, limits, TTLs) plus the sockets. */
export interface RendezvousServerOptions extends RendezvousCoreOptions {
  /** Where to listen (port 0 picks one). Required unless `server` is given. */
  readonly listen?: Endpoint
  /**
   * Attach to this HTTP server instead of listening: the rendezvous handles WebSocket upgrades on `path` and leaves
   * other upgrades and requests alone. close() does not close that server.
   */
  readonly server?: Server
  /** The WebSocket path (default '/'). */
  readonly path?: string
  /** Take the observed address from X-Forwarded-For (only behind a proxy you control; default false). */
  readonly trustProxy?: boolean
  /** Hard cap on a WebSocket message, enforced by ws `maxPayload`: over it the connection is closed with 1009
   * (default 4 × maxMessageBytes, so frames a little over maxMessageBytes get a `too_large` error instead). */
  readonly maxPayloadBytes?: number
  /** A client that does not read: once this much is waiting to be written to it, it is dropped (default 1 MiB). */
  readonly maxWriteBufferBytes?: number
  /** Interval of the expiry timer (default 1000 ms). */
  readonly tickIntervalMs?: number
  /** WebSocket ping interval; a connection that misses a pong for one interval is terminated (default 20000 ms, 0 off). */
  readonly heartbeatMs?: number
  /** Clock (ms since the epoch), for tests. */
  readonly now?: () => number
  /**
   * Other rendezvous nodes to share peers with (e.g. RedisRendezvousRemote): peers registered at different nodes
   * find and signal each other. The server starts it, and closes it on close(). Its `node` names this server.
   */
  readonly remote?: RendezvousRemote
  /**
   * On close(), how long a server whose `remote` moves sessions keeps its sessions after telling its clients it is
   * going away (`shutting_down`), so that those reconnecting to another node resume there (default 3000 ms; 0 off;
   * it ends as soon as every session has moved). Without such a remote, sessions end at once.
   */
  readonly handoverGraceMs?: number
}

/** Events a RendezvousServer emits. */
export interface RendezvousServerEvents {
  online: [event: Extract<RendezvousEvent, { type: 'online' }>]
  offline: [event: Extract<RendezvousEvent, { type: 'offline' }>]
  'auth-failure': [event: Extract<RendezvousEvent, { type: 'auth-failure' }>]
}

/** What RendezvousServer.stats() returns. */
export interface RendezvousServerStats extends RendezvousStats {
  /** Open WebSocket connections, registered or not. */
  readonly connections: number
}

/** How long close() waits for clients to complete the closing handshake before cutting them off. */
const CLOSE_GRACE_MS = 500

/**
 * The rendezvous (signalling) server over WebSockets: a thin adapter around RendezvousCore. It listens on its own
 * HTTP server or attaches to one (the TURN relay's). Handlers never throw; timers are unref'ed; close() is idempotent.
 * Protocol: docs/rendezvous.md.
 */
export class RendezvousServer extends EventEmitter<RendezvousServerEvents> {
  private readonly sockets = new Map<ConnId, WebSocket>()
  private readonly alive = new Set<ConnId>()
  private nextConn = 1
  private timers: NodeJS.Timeout[] = []
  /** Timers bounding the wait for a session another node holds (SessionRequest ref → timer). */
  private readonly resumeTimers = new Map<string, NodeJS.Timeout>()
  private closing: Promise<void> | undefined
  /** Whether the remote is still to be used (until close() has given it up). */
  private remoteOpen = true
  private readonly now: () => number
  private readonly wss: WebSocketServer
  private readonly upgrade = (req: IncomingMessage, socket: Duplex, head: Buffer): void => { this.onUpgrade(req, socket, head) }
  /** TCP connections per source (sourceKey) that have not completed the WebSocket handshake (own server only). */
  private readonly handshaking = new Map<string, number>()
  private readonly unupgraded = new WeakMap<Duplex, string>()
  private readonly connection = (socket: Socket): void => { this.onTcpConnection(socket) }

  private constructor (private readonly options: RendezvousServerOptions, readonly core: RendezvousCore, readonly http: Server, private readonly ownsHttp: boolean) {
    super()
    this.now = options.now ?? Date.now
    const maxPayload = options.maxPayloadBytes ?? 4 * core.options.maxMessageBytes
    if (maxPayload < core.options.maxMessageBytes) throw new InvalidArgumentError('maxPayloadBytes must be at least maxMessageBytes')
    this.wss = new WebSocketServer({ noServer: true, maxPayload, perMessageDeflate: false, clientTracking: false })
  }

  /** Validate options, listen (or attach), and start the timers. Rejects with InvalidArgumentError or TransportError. */
  static async start (options: RendezvousServerOptions): Promise<RendezvousServer> {
    const remote = options.remote
    // Sessions move between nodes when the remote can carry them (requestSession and handOver).
    const cluster = remote?.requestSession !== undefined && remote.handOver !== undefined
    const core = new RendezvousCore(remote === undefined ? options : { ...options, node: remote.node, cluster })
    if (options.server === undefined && options.listen === undefined) throw new InvalidArgumentError('give listen: { address, port } or server: an http.Server to attach to')
    const http = options.server ?? createServer((req, res) => {
      res.writeHead(426, { 'content-type': 'text/plain', connection: 'close', upgrade: 'websocket' })
      res.end('natkit rendezvous: connect with a WebSocket\n')
    })
    const server = new RendezvousServer(options, core, http, options.server === undefined)
    if (server.ownsHttp && options.listen !== undefined) {
      // Bound what the HTTP layer holds before the core sees a connection: slow handshakes and connection count.
      http.headersTimeout = 10_000
      http.requestTimeout = 10_000
      http.maxConnections = core.options.maxPeers + core.options.maxPending + 64
      const listen = options.listen
      await new Promise<void>((resolve, reject) => {
        const onError = (err: Error): void => { reject(new TransportError(`cannot listen on ${formatEndpoint(listen)}: ${err.message}`, { cause: err })) }
        http.once('error', onError)
        http.listen(listen.port, listen.address, () => { http.off('error', onError); resolve() })
      })
      http.on('error', (err) => { log.error('http server error: %s', err.message) })
      // Behind a proxy every TCP connection comes from the proxy: per-source counting is the core's job then.
      if (options.trustProxy !== true) http.on('connection', server.connection)
    }
    http.on('upgrade', server.upgrade)
    server.startRemote()
    const tick = setInterval(() => { server.execute(core.tick(server.now())) }, options.tickIntervalMs ?? 1000)
    tick.unref()
    server.timers.push(tick)
    const heartbeat = options.heartbeatMs ?? 20_000
    if (heartbeat > 0) {
      const hb = setInterval(() => { server.heartbeat() }, heartbeat)
      hb.unref()
      server.timers.push(hb)
    }
    log('listening on %s', server.address === undefined ? '(not listening)' : formatEndpoint(server.address))
    return server
  }

  /** The address the HTTP server listens on (undefined if an attached server is not listening). */
  get address (): Endpoint | undefined {
    const a = this.http.address()
    if (a === null || typeof a === 'string') return undefined
    return { address: ipv4Address(a.address), port: a.port }
  }

  /** `ws://IP:PORT/` for this server (undefined if not listening). */
  get url (): string | undefined {
    const a = this.address
    return a === undefined ? undefined : `ws://${formatEndpoint(a)}${this.options.path ?? RENDEZVOUS_PATH}`
  }

  /** Counters and gauges: peers online, messages relayed and queued, drops by reason, connections. */
  stats (): RendezvousServerStats {
    return { ...this.core.stats(), connections: this.sockets.size }
  }

  /**
   * A TCP connection to our own HTTP server. Before the WebSocket handshake completes the core does not know it, so
   * it is counted here: at most maxPendingPerIp per source, else it is destroyed at once. Otherwise one host could
   * take every one of http.maxConnections with sockets that never finish a request.
   */
  private onTcpConnection (socket: Socket): void {
    const key = sourceKey(socket.remoteAddress ?? '')
    const n = this.handshaking.get(key) ?? 0
    if (n >= this.core.options.maxPendingPerIp) {
      log.trace('too many handshaking connections from %s: dropped', key)
      socket.destroy()
      return
    }
    this.handshaking.set(key, n + 1)
    this.unupgraded.set(socket, key)
    socket.once('close', () => { this.handshakeDone(socket) })
  }

  /** `socket` completed the handshake or went away: it no longer counts as handshaking. Idempotent. */
  private handshakeDone (socket: Duplex): void {
    const key = this.unupgraded.get(socket)
    if (key === undefined) return
    this.unupgraded.delete(socket)
    const left = (this.handshaking.get(key) ?? 1) - 1
    if (left <= 0) this.handshaking.delete(key)
    else this.handshaking.set(key, left)
  }

  private onUpgrade (req: IncomingMessage, socket: Duplex, head: Buffer): void {
    let path: string
    try {
      path = new URL(req.url ?? '/', 'http://x').pathname
    } catch {
      path = ''
    }
    if (path !== (this.options.path ?? RENDEZVOUS_PATH)) {
      // Someone else's upgrade (on a shared server): leave it alone unless nobody else would answer.
      if (this.http.listenerCount('upgrade') <= 1) socket.destroy()
      return
    }
    socket.on('error', (err) => { log.trace('socket error during upgrade: %s', err.message) })
    if (this.closing !== undefined) { socket.destroy(); return }
    this.wss.handleUpgrade(req, socket, head, (ws) => { this.handshakeDone(socket); this.onConnection(ws, req) })
  }

  private onConnection (ws: WebSocket, req: IncomingMessage): void {
    const id = this.nextConn++
    const observed = observedAddress(req, this.options.trustProxy === true)
    if (this.closing !== undefined) { ws.terminate(); return }
    this.sockets.set(id, ws)
    this.alive.add(id)
    log.trace('connection %d from %s:%d', id, observed.address, observed.port)
    ws.on('message', (data: RawData, isBinary: boolean) => {
      const bytes = Buffer.isBuffer(data) ? data : Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data)
      // ws has already checked that a text frame is valid UTF-8 (RFC 6455 §8.1), else it closes with 1007.
      this.execute(this.core.handle(id, isBinary ? bytes : bytes.toString('utf8'), this.now()))
    })
    ws.on('pong', () => { this.alive.add(id) })
    ws.on('error', (err) => { log.trace('connection %d: %s', id, err.message) })
    ws.on('close', () => {
      this.sockets.delete(id)
      this.alive.delete(id)
      this.execute(this.core.closed(id, this.now()))
    })
    this.execute(this.core.open(id, observed, this.now()))
  }

  /** Feed what the other nodes announce into the core. */
  private startRemote (): void {
    const remote = this.options.remote
    if (remote === undefined) return
    const core = this.core
    remote.start({
      message: (m) => { this.execute(core.receiveRemote(m, this.now())) },
      online: (node, id, at) => { this.execute(core.remoteOnline(node, id, at, this.now())) },
      offline: (node, id) => { this.execute(core.remoteOffline(node, id)) },
      roster: (node, entries) => { this.execute(core.remoteRoster(node, entries, this.now())) },
      nodeGone: (node) => { this.execute(core.remoteNodeGone(node)) },
      sessionRequest: (node, request) => { this.execute(core.sessionRequest(node, request, this.now())) },
      sessionHandover: (_node, handover) => {
        const timer = this.resumeTimers.get(handover.ref)
        if (timer !== undefined) { clearTimeout(timer); this.resumeTimers.delete(handover.ref) }
        this.execute(core.takeOver(handover, this.now()))
      },
      localRoster: () => core.roster()
    })
  }

  /** Hand a message to another node; ack the sender when it is there, else the core queues it here. */
  private forward (a: Extract<RendezvousAction, { type: 'forward' }>): void {
    const remote = this.options.remote
    const done = (ok: boolean): void => {
      if (ok) {
        if (a.ack !== undefined) this.execute([{ type: 'send', conn: a.ack.conn, frame: { type: 'ack', seq: a.ack.seq, queued: false } }])
        return
      }
      log('could not hand a message for %s to node %s: queued here', a.message.to, a.node)
      this.execute(this.core.forwardFailed(a.message, a.ack, this.now()))
    }
    if (remote === undefined || !this.remoteOpen) { done(false); return }
    remote.forward(a.node, a.message).then(done, () => { done(false) })
  }

  /** Ask the other nodes for a session; after the bound, the core goes on without it. */
  private requestSession (a: Extract<RendezvousAction, { type: 'session-request' }>): void {
    const ref = a.request.ref
    const timer = setTimeout(() => {
      this.resumeTimers.delete(ref)
      this.execute(this.core.resumeTimedOut(ref, this.now()))
    }, a.timeoutMs)
    timer.unref()
    this.resumeTimers.set(ref, timer)
    this.options.remote?.requestSession?.(a.request)
  }

  /** Hand a session over to the node that asked for it; if it cannot take it, the core keeps it. */
  private handOver (a: Extract<RendezvousAction, { type: 'session-handover' }>): void {
    const remote = this.options.remote
    const done = (ok: boolean): void => {
      if (ok) { log('handed session of %s over to node %s', a.handover.id, a.node); return }
      log('could not hand the session of %s over to node %s: kept here', a.handover.id, a.node)
      this.execute(this.core.handOverFailed(a.node, a.handover, this.now()))
    }
    if (remote?.handOver === undefined || !this.remoteOpen) { done(false); return }
    remote.handOver(a.node, a.handover).then(done, () => { done(false) })
  }

  private heartbeat (): void {
    for (const [id, ws] of this.sockets) {
      if (!this.alive.has(id)) { log.trace('connection %d missed a pong: terminated', id); ws.terminate(); continue }
      this.alive.delete(id)
      try { ws.ping() } catch { ws.terminate() }
    }
  }

  private execute (actions: RendezvousAction[]): void {
    for (const a of actions) {
      switch (a.type) {
        case 'send': {
          const ws = this.sockets.get(a.conn)
          if (ws === undefined || ws.readyState !== WebSocket.OPEN) break
          if (ws.bufferedAmount > (this.options.maxWriteBufferBytes ?? 1024 * 1024)) {
            log('connection %d does not read: dropped', a.conn)
            ws.close(RENDEZVOUS_CLOSE_CODES.SLOW_CONSUMER, 'slow consumer')
            ws.terminate()
            break
          }
          ws.send(JSON.stringify(a.frame))
          break
        }
        case 'close': {
          const ws = this.sockets.get(a.conn)
          if (ws !== undefined && ws.readyState === WebSocket.OPEN) ws.close(a.code, a.reason)
          break
        }
        case 'forward':
          this.forward(a)
          break
        case 'session-request':
          this.requestSession(a)
          break
        case 'session-handover':
          this.handOver(a)
          break
        case 'event':
          if (a.event.type === 'online') {
            this.options.remote?.announce({ type: 'online', id: a.event.id, at: a.event.at })
            this.emit('online', a.event)
          } else if (a.event.type === 'offline') {
            this.options.remote?.announce({ type: 'offline', id: a.event.id })
            this.emit('offline', a.event)
          } else {
            this.emit('auth-failure', a.event)
          }
          break
      }
    }
  }

  /** Tell every client the server is going away, close every connection and stop listening. Idempotent. */
  close (): Promise<void> {
    this.closing ??= this.doClose()
    return this.closing
  }

  private async doClose (): Promise<void> {
    for (const t of this.timers) clearInterval(t)
    this.timers = []
    for (const t of this.resumeTimers.values()) clearTimeout(t)
    this.resumeTimers.clear()
    this.http.off('upgrade', this.upgrade)
    this.http.off('connection', this.connection)
    const remote = this.options.remote
    const grace = this.core.options.cluster ? (this.options.handoverGraceMs ?? 3000) : 0
    if (grace > 0 && this.core.stats().sessions > 0) {
      // Clients reconnect elsewhere and resume there: their sessions are handed over while this node still answers.
      this.execute(this.core.closeAll(this.now()))
      const end = Date.now() + grace
      while (Date.now() < end && this.core.stats().sessions > 0) await new Promise((resolve) => setTimeout(resolve, 50))
      log('closing: %d sessions handed over, %d not asked for', this.core.stats().sessionsHandedOver, this.core.stats().sessions)
    }
    this.execute(this.core.shutdown(this.now()))
    this.remoteOpen = false
    await remote?.close()
    if (this.sockets.size > 0) {
      const open = [...this.sockets.values()].map(ws => new Promise<void>((resolve) => { if (ws.readyState === WebSocket.CLOSED) resolve(); else ws.once('close', () => { resolve() }) }))
      let timer: NodeJS.Timeout | undefined
      await Promise.race([Promise.all(open), new Promise<void>((resolve) => { timer = setTimeout(resolve, CLOSE_GRACE_MS) })])
      clearTimeout(timer)
      for (const ws of this.sockets.values()) ws.terminate()
    }
    this.sockets.clear()
    await new Promise<void>((resolve) => { this.wss.close(() => { resolve() }) })
    if (this.ownsHttp) {
      await new Promise<void>((resolve) => {
        if (!this.http.listening) { resolve(); return }
        this.http.close(() => { resolve() })
        this.http.closeAllConnections()
      })
    }
    log('closed')
  }

  async [Symbol.asyncDispose] (): Promise<void> { await this.close() }
}
