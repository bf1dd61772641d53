import { createServer, type Server, type Socket } from 'node:net'
import { createLogger } from '../log.js'
import { ConnectionGuard, sourceKey, type ConnectionCloseReason } from '../net/connection-guard.js'
import { formatEndpoint, sameEndpoint, type Endpoint } from '../net/endpoint.js'
import { listenStream } from '../net/listen.js'
import { connectionIdOwner } from '../relay/tcp-relay.js'
import { ConnectionId, MessageClass, Method, StunMessage } from '../stun/index.js'
import { StreamFramer } from '../stun/stream-framer.js'

const log = createLogger('natcheck:relay:router')

/**
 * Bytes the primary reads from a TCP connection before it must have a whole first frame: the largest STUN message a
 * stream can carry (20-byte header + 16-bit length). A client's first message (Allocate, ConnectionBind, Binding) is
 * a few hundred bytes; the bound only keeps a connection that sends junk from holding more.
 */
const MAX_PEEK_BYTES = 20 + 0xffff

/** What the primary tells a worker with a handed-over connection. */
export interface HandoffMessage {
  readonly natkit: 'connection'
  /** The primary's handle on the connection, named again in the worker's reports. */
  readonly key: string
  readonly protocol: 'tcp' | 'tls'
  /** Bytes already read from it (base64; TCP only). */
  readonly bytes: string
}

/** What a worker reports about a handed-over connection. */
export type HandoffReport = { readonly natkit: 'connection-authenticated' | 'connection-closed', readonly key: string }

/** A counter the primary's router counts and a worker adds to its metrics (the primary has no relay metrics). */
export type RouterCount = { readonly natkit: 'count-close', readonly reason: ConnectionCloseReason } | { readonly natkit: 'count-malformed' }

/** Options of a StreamRouter. */
export interface StreamRouterOptions {
  /** Workers (CONNECTION-IDs are shared out modulo this; see TurnServerCoreOptions.connectionIds). */
  readonly workers: number
  /** Time from accept to the first complete frame, in ms (the relay's --tcp-first-message-timeout; default 5000). */
  readonly firstMessageTimeoutMs?: number
  /** Unauthenticated connections per source, across all workers (the relay's --tcp-unauth-per-ip; default 32). */
  readonly maxUnauthenticatedPerIp?: number
  /** Whether a worker takes connections now (started, not replaced). */
  readonly ready: (worker: number) => boolean
  /** Hand `socket` to `worker`; `done` is called with an error when it could not be sent. */
  readonly send: (worker: number, message: HandoffMessage, socket: Socket, done: (err: Error | null) => void) => void
  /** A counter for the metrics (sent to a worker). */
  readonly count: (c: RouterCount) => void
}

interface Listener { readonly server: Server, readonly local: Endpoint, readonly protocol: 'tcp' | 'tls' }

/**
 * The relay primary's TCP and TLS listeners (`natcheck relay --workers N`): it accepts every client connection
 * itself — not node:cluster's round-robin, which cannot tell an RFC 6062 data connection from a control one — and
 * hands each to one worker with the socket (worker.send(message, socket)).
 *
 * - TCP: the primary reads the first complete frame (at most MAX_PEEK_BYTES, within the first-message timeout) and
 *   stops reading. A ConnectionBind (RFC 6062 §5.4) goes to the worker whose class its CONNECTION-ID is in (each
 *   worker issues ids ≡ its index mod N); anything else to the worker holding the fewest handed-over connections
 *   (ties round-robin). The bytes read travel with the socket and the worker reads them again first.
 * - TLS: the primary cannot read a frame without terminating TLS, and a TLS session cannot move to another process
 *   after its handshake (node has no kTLS hand-off), so terminating here would leave the primary proxying every
 *   byte of every TLS client on one core. Instead the untouched connection goes to the worker chosen by its source
 *   (the IPv4 address or IPv6 /64, as the per-source limits count), which handshakes it. RFC 6062 §4.3 has a client
 *   open its data connection to the same server address as its control connection, from the same host, so its
 *   ConnectionBind reaches the worker holding its allocation; one from another source address (a NAT pool that
 *   does not keep a host's address) reaches another worker, where the CONNECTION-ID "does not refer to an existing
 *   pending connection": 400 (Bad Request), as §5.4 says. TLS clients spread over workers by source address.
 * - Per-source limits: the primary counts every unauthenticated connection per source (ConnectionGuard), from
 *   accept until the worker reports it authenticated or closed; beyond the limit the newest is refused. The worker
 *   enforces the deadlines (first message, authentication) and the write bound as for a connection it accepted.
 */
export class StreamRouter {
  private readonly guard: ConnectionGuard<string>
  private readonly listeners: Listener[] = []
  /** Handed-over connections: key → worker. */
  private readonly handed = new Map<string, number>()
  /** Handed-over connections open, by worker. */
  private readonly load = new Map<number, number>()
  /** Connections being read (TCP) before the hand-over. */
  private readonly pending = new Set<Socket>()
  private next = 0
  private seq = 0
  private closed = false
  private readonly firstMessageTimeoutMs: number
  readonly addresses: { readonly tcp: Endpoint[], readonly tls: Endpoint[] } = { tcp: [], tls: [] }

  constructor (private readonly options: StreamRouterOptions) {
    this.guard = new ConnectionGuard({ firstMessageTimeoutMs: options.firstMessageTimeoutMs, maxUnauthenticatedPerIp: options.maxUnauthenticatedPerIp })
    this.firstMessageTimeoutMs = this.guard.firstMessageTimeoutMs
  }

  /** Unauthenticated connections counted now, over every source (for tests and logs). */
  get unauthenticated (): number { return this.guard.unauthenticatedCount }

  /** Listen on `ep` for `protocol`; resolves to the bound endpoint (TransportError when it cannot be bound). */
  async listen (ep: Endpoint, protocol: 'tcp' | 'tls'): Promise<Endpoint> {
    // Paused: a TLS connection must not be read here at all, and a TCP one only until its first frame (see stopReading).
    const server = createServer({ pauseOnConnect: true }, (socket) => { this.accept(socket, protocol) })
    const local = await listenStream(server, ep, { label: protocol === 'tls' ? 'TLS' : 'TCP' })
    this.listeners.push({ server, local, protocol })
    this.addresses[protocol].push(local)
    return local
  }

  /** Whether a listener for `protocol` is open on `ep`. */
  has (ep: Endpoint, protocol: 'tcp' | 'tls'): boolean {
    return this.listeners.some(l => l.protocol === protocol && sameEndpoint(l.local, ep))
  }

  /** The listeners open, by protocol. */
  list (): Array<{ local: Endpoint, protocol: 'tcp' | 'tls' }> {
    return this.listeners.map(l => ({ local: l.local, protocol: l.protocol }))
  }

  /** Stop listening on `ep` (connections it accepted go on). */
  unlisten (ep: Endpoint, protocol: 'tcp' | 'tls'): void {
    const i = this.listeners.findIndex(l => l.protocol === protocol && sameEndpoint(l.local, ep))
    if (i < 0) return
    const [l] = this.listeners.splice(i, 1)
    const list = this.addresses[protocol]
    const j = list.findIndex(e => sameEndpoint(e, l.local))
    if (j >= 0) list.splice(j, 1)
    // Not awaited: 'close' waits for every connection it accepted, those in workers too.
    l.server.close()
  }

  /** A worker's report on a connection it was handed. */
  report (worker: number, r: HandoffReport): void {
    if (this.handed.get(r.key) !== worker) return
    if (r.natkit === 'connection-authenticated') {
      this.guard.authenticated(r.key)
      return
    }
    this.release(r.key, worker)
  }

  /** A worker exited: its connections are gone. */
  workerGone (worker: number): void {
    for (const [key, w] of this.handed) if (w === worker) this.release(key, worker)
    this.load.delete(worker)
  }

  /** Stop listening; connections being read are closed (handed-over ones are the workers'). */
  close (): void {
    this.closed = true
    for (const l of [...this.listeners]) this.unlisten(l.local, l.protocol)
    for (const s of this.pending) s.destroy()
    this.pending.clear()
  }

  private release (key: string, worker: number): void {
    this.handed.delete(key)
    this.guard.closed(key)
    this.load.set(worker, Math.max(0, (this.load.get(worker) ?? 1) - 1))
  }

  private accept (socket: Socket, protocol: 'tcp' | 'tls'): void {
    socket.on('error', (err) => { log.trace('connection error: %s', err.message) })
    const address = socket.remoteAddress
    if (this.closed || address === undefined) { socket.destroy(); return }
    const key = `k${++this.seq}`
    if (this.guard.open(key, address, Date.now()) !== undefined) {
      log('refusing %s: %d unauthenticated connections from its source already', formatEndpoint({ address, port: socket.remotePort ?? 0 }), this.guard.unauthenticatedFrom(address))
      this.options.count({ natkit: 'count-close', reason: 'per-ip-limit' })
      socket.destroy()
      return
    }
    if (protocol === 'tls') {
      this.handOver(socket, key, this.bySource(address), 'tls', [])
      return
    }
    this.peek(socket, key)
  }

  /** Read a TCP connection's first frame, then hand it over. */
  private peek (socket: Socket, key: string): void {
    const chunks: Buffer[] = []
    const framer = new StreamFramer('stun-or-channel-data')
    let read = 0
    this.pending.add(socket)
    const timer = setTimeout(() => {
      log('closing %s: no complete first message within %d ms', socket.remoteAddress, this.firstMessageTimeoutMs)
      this.options.count({ natkit: 'count-close', reason: 'idle' })
      socket.destroy()
    }, this.firstMessageTimeoutMs)
    timer.unref()
    const onClose = (): void => { clearTimeout(timer); this.pending.delete(socket); this.guard.closed(key) }
    socket.once('close', onClose)
    const onData = (chunk: Buffer): void => {
      chunks.push(chunk)
      read += chunk.length
      framer.push(chunk)
      // The legacy channel range, as the relay reads ChannelData by default (RFC 5766 clients).
      const frame = framer.next({ legacyChannels: true })
      if (frame.kind === 'incomplete' && read <= MAX_PEEK_BYTES) return
      if (frame.kind === 'invalid' || frame.kind === 'incomplete') {
        log('closing %s: %s', socket.remoteAddress, frame.kind === 'invalid' ? frame.reason : 'first frame too long')
        this.options.count({ natkit: 'count-malformed' })
        socket.destroy()
        return
      }
      clearTimeout(timer)
      socket.off('data', onData)
      socket.off('close', onClose)
      this.pending.delete(socket)
      const owner = frame.kind === 'stun' ? bindOwner(frame.frame, this.options.workers) : undefined
      const worker = owner !== undefined && this.options.ready(owner) ? owner : this.leastLoaded()
      this.handOver(socket, key, worker, 'tcp', chunks)
    }
    socket.on('data', onData)
    socket.resume() // accepted paused
  }

  private handOver (socket: Socket, key: string, worker: number | undefined, protocol: 'tcp' | 'tls', chunks: Buffer[]): void {
    if (worker === undefined) {
      // No worker takes connections (all restarting): the client tries again.
      this.guard.closed(key)
      socket.destroy()
      return
    }
    stopReading(socket)
    this.guard.message(key, Date.now())
    this.handed.set(key, worker)
    this.load.set(worker, (this.load.get(worker) ?? 0) + 1)
    const message: HandoffMessage = { natkit: 'connection', key, protocol, bytes: Buffer.concat(chunks).toString('base64') }
    this.options.send(worker, message, socket, (err) => {
      if (err === null) return
      log('handing a connection to worker %d failed: %s', worker, err.message)
      socket.destroy()
      if (this.handed.get(key) === worker) this.release(key, worker)
    })
  }

  /** The ready worker with the fewest handed-over connections open; ties go round-robin. */
  private leastLoaded (): number | undefined {
    const n = this.options.workers
    let best: number | undefined
    for (let i = 0; i < n; i++) {
      const w = (this.next + i) % n
      if (!this.options.ready(w)) continue
      if (best === undefined || (this.load.get(w) ?? 0) < (this.load.get(best) ?? 0)) best = w
    }
    if (best !== undefined) this.next = (best + 1) % n
    return best
  }

  /** TLS: the worker of the connection's source (see the class comment), or the least loaded when it is not ready. */
  private bySource (address: string): number | undefined {
    const key = sourceKey(address)
    let h = 0x811c9dc5 // FNV-1a
    for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 0x01000193) >>> 0
    const w = h % this.options.workers
    return this.options.ready(w) ? w : this.leastLoaded()
  }
}

/** The worker owning a ConnectionBind's CONNECTION-ID, or undefined when `frame` is no ConnectionBind request with one. */
export function bindOwner (frame: Uint8Array, workers: number): number | undefined {
  let m: StunMessage
  try {
    m = StunMessage.decode(frame, { copy: false })
  } catch {
    return undefined // the worker answers (or drops) it
  }
  if (m.method !== Method.ConnectionBind || m.cls !== MessageClass.Request) return undefined
  let id: number | undefined
  try {
    id = m.get(ConnectionId)
  } catch {
    return undefined
  }
  return id === undefined || id === 0 ? undefined : connectionIdOwner(id, workers)
}

/**
 * Stop reading the connection in this process, at once and for good. Until the worker acknowledges the handle, node
 * keeps it open here (child_process's _pendingMessage) with its reads discarded (`onread` = nop): while it is still
 * reading, bytes the client sends meanwhile (a TLS ClientHello, the rest of a request) would be read here and lost,
 * instead of being read by the worker from the same file descriptor. pause() alone does not stop the handle's reads
 * (the stream reads on up to its high-water mark); readStop() does, and the handle's `reading` flag stays set so
 * that the stream does not start it again.
 */
function stopReading (socket: Socket): void {
  socket.pause()
  const handle = (socket as unknown as { _handle?: { readStop?: () => number } | null })._handle
  handle?.readStop?.()
}
