import { randomBytes } from 'node:crypto'
import type { Connections } from './core-conns.js'
import type { Delivery } from './core-delivery.js'
import type { RemoteDirectory } from './core-directory.js'
import type { ResolvedRendezvousOptions } from './core-options.js'
import { SEEN_SEQS, rememberSeq, remoteMessage, type Conn, type Session, type SessionTable } from './core-session.js'
import type { DropReason, HandedOverDelivery, RemoteMessage, RendezvousAction, SessionHandover, SessionRequest } from './core-types.js'
import type { Watches } from './core-watches.js'
import type { RegisterFrame } from './protocol.js'
import { heldSize, type ByteBudget, type HeldMessage, type OfflineQueues } from './queue.js'

/**
 * Sessions moving between rendezvous nodes (a client that resumes at another node than the one holding its
 * session): the steps of both sides (Handovers, behind RendezvousCore's sessionRequest, takeOver, resumeTimedOut,
 * handOverFailed), what the holder sends and how the taker rebuilds the session. docs/rendezvous.md, "Sessions move
 * between nodes".
 */

/** What the handover steps use of RendezvousCore. */
export interface HandoverHost {
  readonly options: ResolvedRendezvousOptions
  readonly conns: Connections
  readonly sessions: SessionTable
  readonly queues: OfflineQueues
  readonly watches: Watches
  readonly elsewhere: RemoteDirectory
  readonly delivery: Delivery
  readonly budget: ByteBudget
  readonly dropped: Record<DropReason, number>
  isOnline: (id: string) => boolean
  /** Remove a session and everything it holds. */
  forget: (s: Session) => void
  /** Close a connection whose id registered again (`replaced`). */
  replace: (conn: Conn) => RendezvousAction[]
  /** Finish a registration (RendezvousCore's steps 2 and 3), delivering `handed` after the replay. */
  attach: (conn: Conn, f: RegisterFrame, now: number, handed?: readonly RemoteMessage[]) => RendezvousAction[]
}

/**
 * Everything `s` holds, for the node its client resumed at: the resume buffer after `received` (only those can
 * still be replayed: the client has seen every `n` up to it and none after), the messages queued for the id here,
 * its watches and its recent `seq`s.
 */
export function exportSession (s: Session, ref: string, received: number | undefined, queued: readonly HeldMessage[]): SessionHandover {
  const replay: HandedOverDelivery[] = received === undefined
    ? []
    : s.replay.filter(d => d.n > received).map(d => d.seq === undefined ? { n: d.n, from: d.from, json: d.json, at: d.at } : { n: d.n, from: d.from, json: d.json, seq: d.seq, at: d.at })
  return {
    ref,
    id: s.peerId,
    session: s.key,
    nextN: s.nextN,
    replay,
    queued: queued.map(m => remoteMessage(s.peerId, m.from, m.json, m.seq, m.expiresAt)),
    watches: [...s.watches],
    seen: [...s.seen]
  }
}

/**
 * Fill a freshly created session with what another node handed over: numbering, resume buffer (charged to the
 * shared budget and trimmed to this node's bounds), watches (at most maxWatch) and seqs (at most SEEN_SEQS).
 * The queued messages are the caller's to deliver or queue.
 */
export function importSession (s: Session, h: SessionHandover, parts: { options: ResolvedRendezvousOptions, budget: ByteBudget, delivery: Delivery, watches: Watches }, now: number): void {
  const last = h.replay.at(-1)?.n ?? 0
  s.nextN = Math.max(h.nextN, last + 1, 1)
  for (const d of h.replay.slice(-parts.options.replayMessages)) {
    const size = heldSize(d.from, d.json)
    s.replay.push(d.seq === undefined ? { n: d.n, from: d.from, json: d.json, size, at: d.at } : { n: d.n, from: d.from, json: d.json, seq: d.seq, size, at: d.at })
    s.replayBytes += size
    parts.budget.used += size
  }
  parts.delivery.trim(s, now)
  for (const id of h.watches.slice(0, parts.options.maxWatch)) parts.watches.add(s, id)
  for (const [seq, queued] of h.seen.slice(-SEEN_SEQS)) rememberSeq(s, seq, queued)
}

/**
 * `h` without the messages whose JSON does not parse (a handover comes from another node, through a transport:
 * the core must not throw on it), and how many were dropped.
 */
export function sanitizeHandover (h: SessionHandover): { handover: SessionHandover, invalid: number } {
  const parses = (json: string): boolean => {
    try { JSON.parse(json); return true } catch { return false }
  }
  const replay = h.replay.filter(d => parses(d.json))
  const queued = h.queued.filter(m => parses(m.json) && m.to === h.id)
  const invalid = h.replay.length - replay.length + h.queued.length - queued.length
  return { handover: invalid === 0 ? h : { ...h, replay, queued }, invalid }
}

/** Both sides of sessions moving between nodes, for RendezvousCore. */
export class Handovers {
  /** Registrations waiting for another node to hand over the session they resume: request ref → who and until when. */
  private readonly resuming = new Map<string, { conn: Conn, frame: RegisterFrame, deadline: number }>()
  /** Ids whose session this node handed over lately: messages for them that still arrive here go on at once. */
  private readonly movedTo = new Map<string, { node: string, until: number }>()
  /** Sessions handed over to other nodes, and taken over from them. */
  handedOver = 0
  takenOver = 0

  constructor (private readonly core: HandoverHost) {}

  /**
   * A `resume` naming a session no session here has: ask the other nodes, and hold the registration until the
   * session is handed over (takeOver) or no node answered in time (timedOut).
   */
  ask (conn: Conn, f: RegisterFrame & { resume: string }, now: number): RendezvousAction[] {
    const ref = randomBytes(12).toString('base64url')
    conn.resuming = ref
    const wait = this.core.options.handoverTimeoutMs
    this.resuming.set(ref, { conn, frame: f, deadline: now + wait })
    const request: SessionRequest = f.received === undefined ? { ref, id: f.id, session: f.resume } : { ref, id: f.id, session: f.resume, received: f.received }
    return [{ type: 'session-request', request, timeoutMs: wait }]
  }

  /** `conn` went while its registration waited for a handover. */
  closed (conn: Conn): void {
    if (conn.resuming !== undefined) this.resuming.delete(conn.resuming)
  }

  /** `id` registered here: messages for it are no longer handed on. */
  registered (id: string): void { this.movedTo.delete(id) }

  /** Where a message for `id` that arrives here goes on at once, if its session moved away a moment ago. */
  movedNode (id: string): string | undefined { return this.movedTo.get(id)?.node }

  /** Registrations that waited too long go on with fresh sessions; old moves are forgotten. */
  tick (now: number): RendezvousAction[] {
    const out: RendezvousAction[] = []
    for (const [ref, r] of [...this.resuming]) if (now >= r.deadline) out.push(...this.timedOut(ref, now))
    for (const [id, m] of [...this.movedTo]) if (now >= m.until) this.movedTo.delete(id)
    return out
  }

  /** Forget every waiting registration (shutdown). */
  clear (): void { this.resuming.clear() }

  /** RendezvousCore.resumeTimedOut: no answer in time, a fresh session. */
  timedOut (ref: string, now: number): RendezvousAction[] {
    const r = this.resuming.get(ref)
    if (r === undefined) return []
    this.resuming.delete(ref)
    r.conn.resuming = undefined
    if (r.conn.closing || this.core.conns.get(r.conn.id) !== r.conn) return []
    return this.core.attach(r.conn, r.frame, now)
  }

  /** RendezvousCore.sessionRequest: hand over a session held here for that id, or stay silent. */
  request (node: string, request: SessionRequest, now: number): RendezvousAction[] {
    const s = this.core.sessions.byKey.get(request.session)
    if (s === undefined || s.peerId !== request.id || node === this.core.options.node) return []
    const out: RendezvousAction[] = []
    const wasOnline = this.core.isOnline(s.peerId)
    if (s.conn !== undefined) out.push(...this.core.replace(s.conn))
    const { messages, expired } = this.core.queues.take(s.peerId, now)
    this.core.dropped.expired += expired
    const handover = exportSession(s, request.ref, request.received, messages)
    this.core.forget(s)
    this.handedOver++
    this.core.elsewhere.set(s.peerId, node, now)
    this.movedTo.set(s.peerId, { node, until: now + Math.max(5000, 2 * this.core.options.handoverTimeoutMs) })
    out.push({ type: 'session-handover', node, handover })
    if (!wasOnline) out.push(...this.core.watches.presence(s.peerId, true))
    return out
  }

  /** RendezvousCore.takeOver: resume the waiting registration with the session, or keep what it brings. */
  takeOver (received: SessionHandover, now: number): RendezvousAction[] {
    const { handover: h, invalid } = sanitizeHandover(received)
    this.core.dropped.invalid += invalid
    this.takenOver++
    const r = this.resuming.get(h.ref)
    if (r !== undefined && r.frame.id === h.id && r.frame.resume === h.session && !r.conn.closing) {
      this.resuming.delete(h.ref)
      r.conn.resuming = undefined
      const existing = this.core.sessions.byId.get(h.id)
      const out = existing?.conn !== undefined ? this.core.replace(existing.conn) : []
      if (this.adopt(h, now) === undefined) {
        this.core.dropped.queue_full += h.replay.length + h.queued.length
        return [...out, ...this.core.conns.fatal(r.conn, 'server_full', `the server has ${this.core.options.maxPeers} peers`)]
      }
      return [...out, ...this.core.attach(r.conn, r.frame, now, h.queued)]
    }
    const live = this.core.sessions.byId.get(h.id)
    if (live?.conn !== undefined) {
      // Too late for its registration, which got a new session: the messages the client has not seen go to it.
      const out: RendezvousAction[] = []
      for (const m of [...h.replay, ...h.queued]) out.push(this.core.delivery.deliver(live, m.from, JSON.parse(m.json) as unknown, m.json, m.seq, now))
      return out
    }
    if (this.adopt(h, now) === undefined) { this.core.dropped.queue_full += h.replay.length + h.queued.length; return [] }
    for (const m of h.queued) this.requeue(m, now)
    return []
  }

  /** RendezvousCore.handOverFailed: keep the session here again. */
  failed (node: string, h: SessionHandover, now: number): RendezvousAction[] {
    this.handedOver--
    if (this.core.elsewhere.where(h.id)?.node === node) this.core.elsewhere.delete(h.id)
    this.movedTo.delete(h.id)
    const out = this.core.isOnline(h.id) ? [] : this.core.watches.presence(h.id, false)
    if (this.core.sessions.byId.get(h.id)?.conn !== undefined) {
      for (const m of h.queued) this.requeue(m, now)
      return out
    }
    if (this.adopt(h, now) !== undefined) for (const m of h.queued) this.requeue(m, now)
    return out
  }

  /**
   * A session here from a handover, replacing the id's session here (whose connection, if any, the caller has
   * closed), or undefined if this node is full.
   */
  private adopt (h: SessionHandover, now: number): Session | undefined {
    const existing = this.core.sessions.byId.get(h.id)
    if (existing === undefined && this.core.sessions.byId.size >= this.core.options.maxPeers) return undefined
    if (existing !== undefined) this.core.forget(existing)
    const session = this.core.sessions.create(h.id, existing, now, h.session)
    importSession(session, h, { options: this.core.options, budget: this.core.budget, delivery: this.core.delivery, watches: this.core.watches }, now)
    return session
  }

  /** Queue a message that was queued at another node (its expiry kept), under the local bounds. */
  private requeue (m: RemoteMessage, now: number): void {
    const refusal = this.core.queues.push(m.to, { from: m.from, json: m.json, seq: m.seq, size: heldSize(m.from, m.json), expiresAt: m.expiresAt, unknownRecipient: false }, now)
    if (refusal !== undefined) this.core.dropped.queue_full++
  }
}
