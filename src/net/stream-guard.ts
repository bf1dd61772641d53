import type { Server, Socket } from 'node:net'
import { createLogger } from '../log.js'
import { CONNECTION_CLOSE_REASONS, ConnectionGuard, type ConnectionCloseReason, type ConnectionGuardOptions } from './connection-guard.js'
import { formatEndpoint, type Endpoint } from './endpoint.js'

const log = createLogger('natcheck:net:guard')

/** Options of a StreamGuard: the limits, plus the seams. */
export interface StreamGuardOptions extends ConnectionGuardOptions {
  /** Clock in ms (default Date.now). */
  readonly now?: () => number
  /** How often deadlines are checked, in ms (default: a fifth of the shortest timeout, within 20–1000 ms). */
  readonly checkIntervalMs?: number
  /** Called once for every connection the guard refuses or closes (metrics, logs). */
  readonly onClose?: (reason: ConnectionCloseReason, remote: Endpoint) => void
}

interface Tracked {
  readonly raw: Socket
  readonly remote: Endpoint
  /** The socket the server's handler got: the TLSSocket for TLS, the raw socket for TCP. */
  served?: Socket
  observer?: StreamGuardObserver
}

/** Told what becomes of one connection (see StreamGuard.observe). */
export interface StreamGuardObserver {
  /** It authenticated (at most once). */
  readonly authenticated?: () => void
  /** The guard stopped tracking it: it closed, or the guard closed it (once). */
  readonly closed?: () => void
}

/**
 * The socket adapter of ConnectionGuard, shared by the TURN relay and the STUN server. `watch(listener)` registers
 * every TCP connection the moment it is accepted — before any TLS handshake, so a client that never finishes the
 * handshake counts against its source and is closed by the first-message deadline — refuses connections beyond the
 * per-source cap, and closes connections whose deadline passes. The server then reports, per served socket, each
 * complete message (`message`), authentication (`authenticated`), and writes through `write`, which closes a
 * connection whose queue passes the bound.
 */
export class StreamGuard {
  readonly guard: ConnectionGuard<string>
  /** Connections refused or closed by the guard, by reason. */
  readonly closedBy: Record<ConnectionCloseReason, number> = Object.fromEntries(CONNECTION_CLOSE_REASONS.map(r => [r, 0])) as Record<ConnectionCloseReason, number>
  private readonly tracked = new Map<string, Tracked>()
  private readonly keys = new WeakMap<Socket, string>()
  private readonly now: () => number
  private readonly interval: number
  private timer: NodeJS.Timeout | undefined
  private stopped = false

  constructor (private readonly options: StreamGuardOptions = {}) {
    this.guard = new ConnectionGuard<string>(options)
    this.now = options.now ?? Date.now
    const g = this.guard
    const shortest = Math.min(g.firstMessageTimeoutMs, g.idleTimeoutMs ?? Infinity, g.authTimeoutMs ?? Infinity)
    this.interval = options.checkIntervalMs ?? Math.min(1000, Math.max(20, Math.floor(shortest / 5)))
  }

  /** Guard every connection `listener` accepts (a net.Server or tls.Server). */
  watch (listener: Server): void {
    // Prepended: the guard sees the connection before the server's own handler (and before TLS wraps it).
    listener.prependListener('connection', (raw: Socket) => { this.accept(raw) })
  }

  /**
   * The server's handler got `socket` (for TLS, the TLSSocket once the handshake is done). False when the guard
   * refused or already closed the connection: the handler then leaves it alone.
   */
  adopt (socket: Socket): boolean {
    const key = this.keys.get(socket) ?? tupleKey(socket)
    const t = key === undefined ? undefined : this.tracked.get(key)
    if (key === undefined || t === undefined || socket.destroyed) return false
    t.served = socket
    this.keys.set(socket, key)
    return true
  }

  /** A complete, valid message arrived on `socket`. */
  message (socket: Socket): void {
    const key = this.keys.get(socket)
    if (key !== undefined) this.guard.message(key, this.now())
  }

  /** `socket` authenticated: no more deadlines, and it no longer counts against its source. */
  authenticated (socket: Socket): void {
    const key = this.keys.get(socket)
    if (key === undefined || this.guard.isAuthenticated(key)) return
    this.guard.authenticated(key)
    const observer = this.tracked.get(key)?.observer
    if (observer?.authenticated !== undefined) this.notify(observer.authenticated)
  }

  /**
   * Be told when the connection of `socket` (a raw socket this guard accepted, or the one the handler adopted)
   * authenticates and when it stops being tracked — e.g. to tell the process that counts its source (the relay's
   * primary, which handed it over). False when the guard does not track it (refused, or already closed).
   */
  observe (socket: Socket, observer: StreamGuardObserver): boolean {
    const key = this.keys.get(socket) ?? tupleKey(socket)
    const t = key === undefined ? undefined : this.tracked.get(key)
    if (t === undefined) return false
    t.observer = observer
    return true
  }

  /** Whether the guard counts `socket` as authenticated. */
  isAuthenticated (socket: Socket): boolean {
    const key = this.keys.get(socket)
    return key !== undefined && this.guard.isAuthenticated(key)
  }

  /** Write `data` to `socket`; if its queue then passes the bound, close it. False when it was closed. */
  write (socket: Socket, data: Uint8Array): boolean {
    socket.write(data)
    if (this.guard.queued(socket.writableLength) === undefined) return true
    const key = this.keys.get(socket)
    const t = key === undefined ? undefined : this.tracked.get(key)
    log('closing %s: %d bytes queued, the peer does not read', t === undefined ? '?' : formatEndpoint(t.remote), socket.writableLength)
    this.count('backpressure', t?.remote ?? { address: socket.remoteAddress ?? '', port: socket.remotePort ?? 0 })
    if (key !== undefined) this.forget(key)
    socket.destroy()
    return false
  }

  /** Bytes queued for writing over every served connection. */
  queuedBytes (): number {
    let n = 0
    for (const t of this.tracked.values()) n += t.served?.writableLength ?? 0
    return n
  }

  /** Connections tracked (accepted and not yet closed). */
  get size (): number { return this.tracked.size }

  /** Stop the deadline timer (the listeners' sockets are the server's to close). Idempotent. */
  stop (): void {
    this.stopped = true
    if (this.timer !== undefined) clearInterval(this.timer)
    this.timer = undefined
  }

  private accept (raw: Socket): void {
    if (this.stopped) return
    const key = tupleKey(raw)
    const remote = { address: raw.remoteAddress ?? '', port: raw.remotePort ?? 0 }
    if (key === undefined) return // already gone; the server's handler sees it destroyed
    if (this.guard.open(key, remote.address, this.now()) !== undefined) {
      log('refusing %s: %d unauthenticated connections from its source already', formatEndpoint(remote), this.guard.unauthenticatedFrom(remote.address))
      this.count('per-ip-limit', remote)
      raw.destroy()
      return
    }
    this.tracked.set(key, { raw, remote })
    this.keys.set(raw, key)
    raw.once('close', () => { this.forget(key) })
    if (this.timer === undefined) {
      this.timer = setInterval(() => { this.check() }, this.interval)
      this.timer.unref()
    }
  }

  private check (): void {
    for (const { key, reason } of this.guard.expire(this.now())) {
      const t = this.tracked.get(key)
      if (t === undefined) continue
      this.tracked.delete(key)
      if (t.observer?.closed !== undefined) this.notify(t.observer.closed)
      log('closing %s: %s', formatEndpoint(t.remote), reason)
      this.count(reason, t.remote)
      ;(t.served ?? t.raw).destroy()
      if (t.served !== undefined && t.served !== t.raw) t.raw.destroy()
    }
    if (this.tracked.size === 0 && this.timer !== undefined) {
      clearInterval(this.timer)
      this.timer = undefined
    }
  }

  private forget (key: string): void {
    const t = this.tracked.get(key)
    this.tracked.delete(key)
    this.guard.closed(key)
    if (t?.observer?.closed !== undefined) this.notify(t.observer.closed)
  }

  private notify (f: () => void): void {
    try {
      f()
    } catch (err) {
      log.error('observer failed: %O', err)
    }
  }

  private count (reason: ConnectionCloseReason, remote: Endpoint): void {
    this.closedBy[reason]++
    try {
      this.options.onClose?.(reason, remote)
    } catch (err) {
      log.error('onClose failed: %O', err)
    }
  }
}

/** The connection's 4-tuple as a Map key (the same for a TLSSocket and the TCP socket under it). */
function tupleKey (s: Socket): string | undefined {
  if (s.remoteAddress === undefined || s.remotePort === undefined) return undefined
  return `${s.remoteAddress}|${s.remotePort}|${s.localAddress ?? ''}|${s.localPort ?? 0}`
}
