import { isIP } from 'node:net'
import { InvalidArgumentError } from '../errors.js'
import { ipv4Address } from './endpoint.js'
import { ipToBytes } from './ip.js'

/**
 * Connection-level limits for TCP/TLS listeners (the TURN relay's and the STUN server's), as a sans-IO state
 * machine: the adapter reports what happens to each connection (opened, a complete message, authenticated, bytes
 * queued, closed) with the time, and asks which connections must be closed now. No sockets, no timers: tests drive
 * it with a clock of their own.
 *
 * RFC 8489 §6.2.2 lets a server close a connection it considers timed out, and RFC 8656 §5 has the TURN server
 * require authentication for everything but Binding; coturn likewise closes sessions that never allocate. The limits:
 * - first message: a connection (the TLS handshake included) that has not delivered one complete, valid message
 *   (STUN, or ChannelData on the relay) within `firstMessageTimeoutMs` is closed;
 * - idle: an unauthenticated connection with no complete message for `idleTimeoutMs` is closed (not reset by partial
 *   bytes, so a slow trickle does not keep a connection alive);
 * - authentication: a connection not authenticated within `authTimeoutMs` of being accepted is closed;
 * - per source: at most `maxUnauthenticatedPerIp` unauthenticated connections per source address (an IPv4 address,
 *   or an IPv6 /64, the block one host usually holds); beyond it the newest is refused;
 * - backpressure: a connection whose queued outgoing bytes pass `maxQueuedBytes` is closed.
 * Authenticated connections are exempt from the deadlines and the per-source count.
 */

/** Why a connection was refused or closed; the label of the servers' counters. */
export type ConnectionCloseReason = 'idle' | 'auth-timeout' | 'per-ip-limit' | 'backpressure'

/** Every ConnectionCloseReason, for counters. */
export const CONNECTION_CLOSE_REASONS: readonly ConnectionCloseReason[] = ['idle', 'auth-timeout', 'per-ip-limit', 'backpressure']

/** Options of a ConnectionGuard. Times in ms; `undefined` (where allowed) turns a limit off. */
export interface ConnectionGuardOptions {
  /** Time from accept (TLS handshake included) to the first complete message (default 5000). */
  readonly firstMessageTimeoutMs?: number
  /** Time without a complete message before an unauthenticated connection is closed (default: no such limit). */
  readonly idleTimeoutMs?: number
  /** Time from accept to authentication (default: no such limit; connections need not authenticate). */
  readonly authTimeoutMs?: number
  /** Concurrent unauthenticated connections per source address (IPv4 address or IPv6 /64) (default 32). */
  readonly maxUnauthenticatedPerIp?: number
  /**
   * Bytes a connection may have queued for writing (the socket's own buffer, not the kernel's) before it is closed
   * (default 256 KiB). Queued bytes exist only when the peer reads slower than the server writes: beyond the kernel's
   * send buffer (itself up to a few MiB), 256 KiB is already seconds of relayed media at the rates TURN carries, too
   * late to be of use, while a peer that never reads would otherwise hold that memory for as long as it keeps
   * sending requests (before this bound: ~1 MiB per relay connection, without bound on the STUN server).
   */
  readonly maxQueuedBytes?: number
}

/** The defaults of ConnectionGuardOptions. */
export const CONNECTION_GUARD_DEFAULTS = {
  firstMessageTimeoutMs: 5000,
  maxUnauthenticatedPerIp: 32,
  maxQueuedBytes: 256 * 1024
} as const

interface Entry {
  readonly source: string
  readonly openedAt: number
  lastMessageAt: number | undefined
  authenticated: boolean
}

/** A connection the guard wants closed, and why. */
export interface ExpiredConnection<K> {
  readonly key: K
  readonly reason: ConnectionCloseReason
}

/**
 * The per-source key: an IPv4 address (IPv4-mapped IPv6 folded to IPv4), or the /64 of an IPv6 address. Anything
 * else (no address at all) is its own key.
 */
export function sourceKey (address: string): string {
  const v4 = ipv4Address(address)
  if (isIP(v4) !== 6) return v4
  const b = ipToBytes(v4)
  return `${b.subarray(0, 8).toString('hex')}::/64`
}

function checkMs (name: string, v: number | undefined): void {
  if (v !== undefined && !(Number.isFinite(v) && v > 0)) throw new InvalidArgumentError(`${name} must be a positive number of milliseconds, not ${String(v)}`)
}

/** Connection-level limits of a stream listener, sans-IO (see the file comment). Keys are the adapter's handles. */
export class ConnectionGuard<K> {
  private readonly entries = new Map<K, Entry>()
  private readonly unauthenticated = new Map<string, number>()
  readonly firstMessageTimeoutMs: number
  readonly idleTimeoutMs: number | undefined
  readonly authTimeoutMs: number | undefined
  readonly maxUnauthenticatedPerIp: number
  readonly maxQueuedBytes: number

  constructor (options: ConnectionGuardOptions = {}) {
    checkMs('firstMessageTimeoutMs', options.firstMessageTimeoutMs)
    checkMs('idleTimeoutMs', options.idleTimeoutMs)
    checkMs('authTimeoutMs', options.authTimeoutMs)
    const perIp = options.maxUnauthenticatedPerIp
    if (perIp !== undefined && !(Number.isInteger(perIp) && perIp > 0)) throw new InvalidArgumentError(`maxUnauthenticatedPerIp must be a positive whole number, not ${String(perIp)}`)
    const queued = options.maxQueuedBytes
    if (queued !== undefined && !(Number.isInteger(queued) && queued > 0)) throw new InvalidArgumentError(`maxQueuedBytes must be a positive whole number of bytes, not ${String(queued)}`)
    this.firstMessageTimeoutMs = options.firstMessageTimeoutMs ?? CONNECTION_GUARD_DEFAULTS.firstMessageTimeoutMs
    this.idleTimeoutMs = options.idleTimeoutMs
    this.authTimeoutMs = options.authTimeoutMs
    this.maxUnauthenticatedPerIp = perIp ?? CONNECTION_GUARD_DEFAULTS.maxUnauthenticatedPerIp
    this.maxQueuedBytes = queued ?? CONNECTION_GUARD_DEFAULTS.maxQueuedBytes
  }

  /** Connections tracked. */
  get size (): number { return this.entries.size }

  /** Unauthenticated connections tracked, over every source. */
  get unauthenticatedCount (): number {
    let n = 0
    for (const v of this.unauthenticated.values()) n += v
    return n
  }

  /** Unauthenticated connections from the source of `address` (see sourceKey). */
  unauthenticatedFrom (address: string): number {
    return this.unauthenticated.get(sourceKey(address)) ?? 0
  }

  /**
   * A connection was accepted from `address`. Returns undefined when it is tracked, or 'per-ip-limit' when its source
   * already has the most unauthenticated connections allowed: then it is not tracked, and the adapter closes it.
   */
  open (key: K, address: string, now: number): 'per-ip-limit' | undefined {
    if (this.entries.has(key)) return undefined
    const source = sourceKey(address)
    const n = this.unauthenticated.get(source) ?? 0
    if (n >= this.maxUnauthenticatedPerIp) return 'per-ip-limit'
    this.unauthenticated.set(source, n + 1)
    this.entries.set(key, { source, openedAt: now, lastMessageAt: undefined, authenticated: false })
    return undefined
  }

  /** A complete, valid message (or frame) arrived on the connection. */
  message (key: K, now: number): void {
    const e = this.entries.get(key)
    if (e !== undefined) e.lastMessageAt = now
  }

  /** The connection proved credentials (an allocation, a ConnectionBind): no more deadlines, no longer counted. */
  authenticated (key: K): void {
    const e = this.entries.get(key)
    if (e === undefined || e.authenticated) return
    e.authenticated = true
    this.release(e.source)
  }

  /** Whether the connection is tracked and authenticated. */
  isAuthenticated (key: K): boolean {
    return this.entries.get(key)?.authenticated === true
  }

  /** `queuedBytes` are waiting to be written on the connection: 'backpressure' when that passes the bound. */
  queued (queuedBytes: number): 'backpressure' | undefined {
    return queuedBytes > this.maxQueuedBytes ? 'backpressure' : undefined
  }

  /** The connection closed (for any reason). Idempotent. */
  closed (key: K): void {
    const e = this.entries.get(key)
    if (e === undefined) return
    this.entries.delete(key)
    if (!e.authenticated) this.release(e.source)
  }

  /** When the connection must be closed, and why (undefined: never, as things stand). */
  deadline (key: K): { at: number, reason: ConnectionCloseReason } | undefined {
    const e = this.entries.get(key)
    return e === undefined ? undefined : this.deadlineOf(e)
  }

  /** The connections whose deadline is at or before `now`; they are no longer tracked (the adapter closes them). */
  expire (now: number): Array<ExpiredConnection<K>> {
    const out: Array<ExpiredConnection<K>> = []
    for (const [key, e] of this.entries) {
      const d = this.deadlineOf(e)
      if (d !== undefined && d.at <= now) out.push({ key, reason: d.reason })
    }
    for (const x of out) this.closed(x.key)
    return out
  }

  /** The earliest deadline of any connection (undefined when none has one). */
  nextDeadline (): number | undefined {
    let next: number | undefined
    for (const e of this.entries.values()) {
      const d = this.deadlineOf(e)
      if (d !== undefined && (next === undefined || d.at < next)) next = d.at
    }
    return next
  }

  private deadlineOf (e: Entry): { at: number, reason: ConnectionCloseReason } | undefined {
    if (e.authenticated) return undefined
    let best: { at: number, reason: ConnectionCloseReason } | undefined
    const consider = (at: number, reason: ConnectionCloseReason): void => {
      if (best === undefined || at < best.at) best = { at, reason }
    }
    if (e.lastMessageAt === undefined) consider(e.openedAt + this.firstMessageTimeoutMs, 'idle')
    else if (this.idleTimeoutMs !== undefined) consider(e.lastMessageAt + this.idleTimeoutMs, 'idle')
    if (this.authTimeoutMs !== undefined) consider(e.openedAt + this.authTimeoutMs, 'auth-timeout')
    return best
  }

  private release (source: string): void {
    const n = (this.unauthenticated.get(source) ?? 1) - 1
    if (n <= 0) this.unauthenticated.delete(source)
    else this.unauthenticated.set(source, n)
  }
}
