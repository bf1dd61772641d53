import { sourceKey } from './address.js'
import type { ResolvedRendezvousOptions } from './core-options.js'
import type { Conn } from './core-session.js'
import type { ConnId, RendezvousAction } from './core-types.js'
import { RENDEZVOUS_FATAL_CODES, closeCodeFor, type ObservedAddress, type RendezvousErrorCode, type ServerFrame } from './protocol.js'

/**
 * The WebSocket connections of RendezvousCore and the bounds on unregistered ones (maxPending in all,
 * maxPendingPerIp per source), with the helpers that answer a connection: a frame, an error, a fatal error.
 */
export class Connections {
  private readonly conns = new Map<ConnId, Conn>()
  /** Connections not registered and not closing. */
  pending = 0
  private readonly pendingBySource = new Map<string, number>()
  /** Connections refused at once because of maxPending or maxPendingPerIp. */
  refused = 0

  constructor (private readonly options: ResolvedRendezvousOptions) {}

  get (id: ConnId): Conn | undefined { return this.conns.get(id) }
  delete (id: ConnId): void { this.conns.delete(id) }
  values (): IterableIterator<Conn> { return this.conns.values() }

  /**
   * A new WebSocket connection from `observed`. Over maxPending unregistered connections in all, or maxPendingPerIp
   * from its source (IPv4 address or IPv6 /64), it gets `server_full` and is closed at once.
   */
  open (conn: ConnId, observed: ObservedAddress, now: number): RendezvousAction[] {
    if (this.conns.has(conn)) return []
    const source = sourceKey(observed.address)
    const fromSource = this.pendingBySource.get(source) ?? 0
    let refusal: string | undefined
    if (this.pending >= this.options.maxPending) refusal = `too many unregistered connections (${this.options.maxPending})`
    else if (fromSource >= this.options.maxPendingPerIp) refusal = `too many unregistered connections from ${source} (${this.options.maxPendingPerIp})`
    if (refusal !== undefined) {
      this.refused++
      return [
        { type: 'send', conn, frame: { type: 'error', code: 'server_full', message: refusal } },
        { type: 'close', conn, code: closeCodeFor('server_full'), reason: 'server_full' }
      ]
    }
    this.conns.set(conn, { id: conn, observed, source, openedAt: now, session: undefined, frames: 0, closing: false, pending: true })
    this.pending++
    this.pendingBySource.set(source, fromSource + 1)
    return []
  }

  /** `conn` stops counting as pending (it registered, is closing or has gone). Idempotent. */
  settle (conn: Conn): void {
    if (!conn.pending) return
    conn.pending = false
    this.pending--
    const left = (this.pendingBySource.get(conn.source) ?? 1) - 1
    if (left <= 0) this.pendingBySource.delete(conn.source)
    else this.pendingBySource.set(conn.source, left)
  }

  /** Send an error frame and close: the connection takes no more frames from now on. */
  fatal (conn: Conn, code: RendezvousErrorCode, message: string): RendezvousAction[] {
    this.settle(conn)
    conn.closing = true
    return [frame(conn, { type: 'error', code, message }), { type: 'close', conn: conn.id, code: closeCodeFor(code), reason: code }]
  }

  /** An error frame (closing the connection if the code is fatal). */
  error (conn: Conn, code: RendezvousErrorCode, message: string, ref?: number): RendezvousAction[] {
    if (RENDEZVOUS_FATAL_CODES.has(code)) return this.fatal(conn, code, message)
    return [frame(conn, ref === undefined ? { type: 'error', code, message } : { type: 'error', code, message, ref })]
  }
}

/** A frame to `conn`. */
export function frame (conn: Conn, f: ServerFrame): RendezvousAction {
  return { type: 'send', conn: conn.id, frame: f }
}
