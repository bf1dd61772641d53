import { randomBytes } from 'node:crypto'
import { TokenBucket } from '../util/token-bucket.js'
import { resolveRendezvousOptions, type RendezvousCoreOptions, type ResolvedRendezvousOptions } from './core-options.js'
import {
  RENDEZVOUS_FATAL_CODES, closeCodeFor, parseClientFrame,
  type ObservedAddress, type RegisterFrame, type RendezvousErrorCode, type SendFrame, type ServerFrame
} from './protocol.js'
import { sourceKey } from './address.js'
import { ByteBudget, OfflineQueues, heldSize } from './queue.js'
import type { ConnId, DropReason, RemoteMessage, RendezvousAction, RendezvousStats } from './core-types.js'
import { verifyRendezvousToken } from './token.js'

/** A delivered message kept for replay; `json` is its data as JSON text, `size` its heldSize. */
interface Delivered { readonly n: number, readonly from: string, readonly json: string, readonly seq?: number, readonly size: number, readonly at: number }

interface Session {
  readonly key: string
  readonly peerId: string
  conn: Conn | undefined
  /** When the id registered on this connection: the newest registration of an id wins across nodes. */
  registeredAt: number
  disconnectedAt: number
  readonly watches: Set<string>
  replay: Delivered[]
  replayBytes: number
  nextN: number
  /** seq → whether it was queued, for the last few accepted sends (retransmissions are acked, not re-delivered). */
  readonly seen: Map<number, boolean>
  readonly messages: TokenBucket | undefined
  readonly bytes: TokenBucket | undefined
}

interface Conn {
  readonly id: ConnId
  readonly observed: ObservedAddress
  /** sourceKey(observed.address): what maxPendingPerIp counts under. */
  readonly source: string
  readonly openedAt: number
  session: Session | undefined
  frames: number
  closing: boolean
  /** Counted in `pending` (and in pendingBySource): not registered, not closing. */
  pending: boolean
}

/** How many recent `seq`s per session are remembered to recognise retransmissions. */
const SEEN_SEQS = 1024

/** Where an id is online at another rendezvous node, and since when (that node's registration time). */
interface Elsewhere { readonly node: string, readonly at: number }

/**
 * The rendezvous server's protocol logic, sans-IO: the adapter reports connections opening (`open`), frames
 * (`handle`), connections closing (`closed`) and time (`tick`), and executes the returned actions. Never throws on
 * client input. Memory is bounded by the options: peers, pending connections, queues, resume buffers, watches.
 */
export class RendezvousCore {
  readonly options: ResolvedRendezvousOptions
  private readonly conns = new Map<ConnId, Conn>()
  private pending = 0
  private readonly pendingBySource = new Map<string, number>()
  private pendingRefused = 0
  private readonly peers = new Map<string, Session>()
  private readonly sessions = new Map<string, Session>()
  private readonly watchers = new Map<string, Set<Session>>()
  private readonly budget: ByteBudget
  private readonly queues: OfflineQueues
  private relayed = 0
  private forwarded = 0
  /** Ids online at other rendezvous nodes (fed by the adapter from its RendezvousRemote): id → where. */
  private readonly elsewhere = new Map<string, Elsewhere>()
  private queuedTotal = 0
  private online = 0
  private readonly dropped: Record<DropReason, number> = { invalid: 0, too_large: 0, rate_limited: 0, queue_full: 0, unknown_recipient: 0, expired: 0, replay_evicted: 0 }

  constructor (options: RendezvousCoreOptions) {
    this.options = resolveRendezvousOptions(options)
    this.budget = new ByteBudget(this.options.maxBufferedBytes)
    const o = this.options
    this.queues = new OfflineQueues({
      maxPerPeer: o.maxQueuedPerPeer,
      maxBytesPerPeer: o.maxQueuedBytesPerPeer,
      maxRecipients: o.maxQueuedRecipients,
      maxBytesPerSender: o.maxQueuedBytesPerSender,
      maxUnknownPerSender: o.maxUnknownQueuedPerSender,
      maxUnknownBytesPerSender: o.maxUnknownQueuedBytesPerSender
    }, this.budget)
  }

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
      this.pendingRefused++
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

  /** One frame from `conn`: text, or bytes of a binary frame (refused: the protocol is JSON text). */
  handle (connId: ConnId, frame: string | Uint8Array, now: number): RendezvousAction[] {
    const conn = this.conns.get(connId)
    if (conn === undefined || conn.closing) return []
    const out: RendezvousAction[] = []
    const session = conn.session
    conn.frames++
    if (session === undefined && conn.frames > this.options.maxPendingFrames) {
      return this.fatal(conn, 'not_registered', `send "register" first (at most ${this.options.maxPendingFrames} frames before it)`)
    }
    const size = typeof frame === 'string' ? Buffer.byteLength(frame) : frame.byteLength
    if (size > this.options.maxMessageBytes) {
      this.dropped.too_large++
      return this.error(conn, 'too_large', `frame of ${size} bytes is over the limit of ${this.options.maxMessageBytes}`)
    }
    if (typeof frame !== 'string') {
      this.dropped.invalid++
      return this.error(conn, 'bad_json', 'binary frames are not accepted: send JSON text frames')
    }
    const parsed = parseClientFrame(frame, this.options.maxWatch)
    if (!parsed.ok) {
      this.dropped.invalid++
      return this.error(conn, parsed.code, parsed.message, parsed.ref)
    }
    const f = parsed.frame
    if (session === undefined) {
      if (f.type !== 'register') return this.fatal(conn, 'not_registered', 'the first frame must be "register"')
      return this.register(conn, f, now)
    }
    if (session.messages !== undefined && session.bytes !== undefined) {
      if (!session.messages.peek(1, now) || !session.bytes.take(size, now)) {
        this.dropped.rate_limited++
        return this.error(conn, 'rate_limited', 'too many frames or bytes per second; the frame was dropped', 'seq' in f ? f.seq : undefined)
      }
      session.messages.take(1, now)
    }
    switch (f.type) {
      case 'register':
        return this.error(conn, 'already_registered', `this connection is registered as ${JSON.stringify(session.peerId)}`)
      case 'send':
        return this.send(conn, session, f, now)
      case 'watch': {
        const fresh = new Set(f.ids.filter(id => !session.watches.has(id)))
        if (session.watches.size + fresh.size > this.options.maxWatch) {
          return this.error(conn, 'limit_exceeded', `at most ${this.options.maxWatch} ids may be watched`)
        }
        for (const id of fresh) {
          session.watches.add(id)
          let set = this.watchers.get(id)
          if (set === undefined) { set = new Set(); this.watchers.set(id, set) }
          set.add(session)
        }
        for (const id of new Set(f.ids)) out.push(this.frame(conn, { type: 'presence', id, online: this.isOnline(id) }))
        return out
      }
      case 'unwatch':
        for (const id of f.ids) this.unwatch(session, id)
        return out
      case 'ping':
        return [this.frame(conn, { type: 'pong', t: f.t, serverTime: now })]
    }
  }

  /** `conn` has gone (closed by either side). Its peer goes offline; its session stays resumable for sessionTtlMs. */
  closed (connId: ConnId, now: number): RendezvousAction[] {
    const conn = this.conns.get(connId)
    if (conn === undefined) return []
    this.conns.delete(connId)
    this.settle(conn)
    const session = conn.session
    if (session === undefined) return []
    if (session.conn !== conn) return []
    return this.detach(session, now)
  }

  /** Expire pending connections, dropped sessions, queued messages and resume buffers. Call about once a second. */
  tick (now: number): RendezvousAction[] {
    const out: RendezvousAction[] = []
    for (const conn of this.conns.values()) {
      if (conn.session === undefined && !conn.closing && now - conn.openedAt >= this.options.registerTimeoutMs) {
        out.push(...this.fatal(conn, 'register_timeout', `no "register" within ${this.options.registerTimeoutMs} ms`))
      }
    }
    for (const session of this.sessions.values()) {
      if (session.conn === undefined && now - session.disconnectedAt >= this.options.sessionTtlMs) this.forget(session)
      else this.trimReplay(session, now)
    }
    this.dropped.expired += this.queues.sweep(now)
    // Messages queued here for an id that is online at another node (a hand-over failed, or arrived after the id
    // moved) go on to that node, in order.
    for (const id of this.queues.ids()) {
      const where = this.elsewhere.get(id)
      if (where !== undefined) out.push(...this.flushTo(id, where.node, now))
    }
    return out
  }

  /** Tell every connection the server is going away and close them; forget all state. */
  shutdown (now: number): RendezvousAction[] {
    const out: RendezvousAction[] = []
    for (const conn of this.conns.values()) {
      if (conn.closing) continue
      out.push(...this.fatal(conn, 'shutting_down', 'the server is closing'))
      if (conn.session?.conn === conn) out.push(...this.detach(conn.session, now))
    }
    for (const s of [...this.sessions.values()]) this.forget(s)
    this.queues.clear()
    return out
  }

  /** Counters and gauges. */
  stats (): RendezvousStats {
    return {
      peersOnline: this.online,
      sessions: this.sessions.size,
      pendingConnections: this.pending,
      pendingRefused: this.pendingRefused,
      messagesRelayed: this.relayed,
      messagesForwarded: this.forwarded,
      peersElsewhere: this.elsewhere.size,
      messagesQueued: this.queuedTotal,
      queuedNow: this.queues.size,
      queuedForUnknownNow: this.queues.unknownSize,
      bufferedBytes: this.budget.used,
      dropped: { ...this.dropped }
    }
  }

  /** Whether `id` is registered with a live connection, here or (as last announced) at another rendezvous node. */
  isOnline (id: string): boolean { return this.peers.get(id)?.conn !== undefined || this.elsewhere.has(id) }

  // ---- several rendezvous nodes (RendezvousRemote): what the other nodes announce, and messages they hand over ----

  /** The ids online here, with their registration times: what this node announces to the others. */
  roster (): Array<{ id: string, at: number }> {
    const out: Array<{ id: string, at: number }> = []
    for (const s of this.peers.values()) if (s.conn !== undefined) out.push({ id: s.peerId, at: s.registeredAt })
    return out
  }

  /**
   * Node `node` says `id` registered there at `at`. The newest registration of an id wins, as on one node: if `id` is
   * online here since before `at`, its connection here is closed with `replaced` (ties go to the greater node name).
   * Messages queued here for `id` go to `node`, in order; watchers here see `id` come online.
   */
  remoteOnline (node: string, id: string, at: number, now: number): RendezvousAction[] {
    const out: RendezvousAction[] = []
    const local = this.peers.get(id)
    if (local?.conn !== undefined) {
      if (local.registeredAt > at || (local.registeredAt === at && this.options.node > node)) return out // ours is newer
      out.push(...this.replace(local.conn))
      this.forget(local)
    }
    const wasOnline = local?.conn !== undefined || this.elsewhere.has(id)
    this.elsewhere.set(id, { node, at })
    if (!wasOnline) out.push(...this.presence(id, true))
    out.push(...this.flushTo(id, node, now))
    return out
  }

  /** Node `node` says `id` went offline there (a later registration elsewhere is not affected). */
  remoteOffline (node: string, id: string): RendezvousAction[] {
    if (this.elsewhere.get(id)?.node !== node) return []
    this.elsewhere.delete(id)
    return this.isOnline(id) ? [] : this.presence(id, false)
  }

  /** Node `node` lists every id online there (after a (re)connect): ids of it not listed went offline. */
  remoteRoster (node: string, entries: ReadonlyArray<{ id: string, at: number }>, now: number): RendezvousAction[] {
    const listed = new Set(entries.map(e => e.id))
    const out: RendezvousAction[] = []
    for (const [id, where] of [...this.elsewhere]) if (where.node === node && !listed.has(id)) out.push(...this.remoteOffline(node, id))
    for (const e of entries) out.push(...this.remoteOnline(node, e.id, e.at, now))
    return out
  }

  /** Node `node` is gone (killed, partitioned: it stopped announcing itself): its ids are offline. */
  remoteNodeGone (node: string): RendezvousAction[] {
    const out: RendezvousAction[] = []
    for (const [id, where] of [...this.elsewhere]) if (where.node === node) out.push(...this.remoteOffline(node, id))
    return out
  }

  /**
   * A message another node handed over for an id that it saw online here. Delivered if the id is online here; else
   * queued under the same bounds as a local send (it goes on at the next tick if the id is online elsewhere now).
   * A message that fits no queue is dropped and counted: its sender's node has acknowledged it already.
   */
  receiveRemote (m: RemoteMessage, now: number): RendezvousAction[] {
    if (m.expiresAt <= now) { this.dropped.expired++; return [] }
    const target = this.peers.get(m.to)
    if (target?.conn !== undefined) {
      let data: unknown
      try { data = JSON.parse(m.json) } catch { this.dropped.invalid++; return [] }
      return [this.deliver(target, m.from, data, m.json, m.seq, now)]
    }
    const refusal = this.queues.push(m.to, { from: m.from, json: m.json, seq: m.seq, size: heldSize(m.from, m.json), expiresAt: m.expiresAt, unknownRecipient: target === undefined && !this.elsewhere.has(m.to) }, now)
    if (refusal === 'unknown-per-sender') this.dropped.unknown_recipient++
    else if (refusal !== undefined) this.dropped.queue_full++
    else this.queuedTotal++
    return []
  }

  /**
   * A `forward` action could not be handed over (the node did not take it, or the transport is down): the message is
   * queued here, as for an offline peer, and goes on in order once the node is reachable. `ack` as in the action.
   */
  forwardFailed (m: RemoteMessage, ack: { conn: ConnId, seq: number } | undefined, now: number): RendezvousAction[] {
    this.forwarded--
    const conn = ack === undefined ? undefined : this.conns.get(ack.conn)
    const refusal = this.queues.push(m.to, { from: m.from, json: m.json, seq: m.seq, size: heldSize(m.from, m.json), expiresAt: m.expiresAt, unknownRecipient: false }, now)
    if (refusal !== undefined) this.dropped.queue_full++
    else this.queuedTotal++
    if (conn === undefined || ack === undefined) return []
    const queued = refusal === undefined
    if (conn.session !== undefined) conn.session.seen.set(ack.seq, queued)
    if (queued) return [this.frame(conn, { type: 'ack', seq: ack.seq, queued: true })]
    if (conn.session !== undefined) conn.session.seen.delete(ack.seq)
    return this.error(conn, 'queue_full', `${JSON.stringify(m.to)} is at another node that cannot be reached now, and its queue here is full (${refusal})`, ack.seq)
  }

  /** Hand every message queued here for `id` to `node`, oldest first. */
  private flushTo (id: string, node: string, now: number): RendezvousAction[] {
    const { messages, expired } = this.queues.take(id, now)
    this.dropped.expired += expired
    this.forwarded += messages.length
    return messages.map(m => ({ type: 'forward', node, message: remoteMessage(id, m.from, m.json, m.seq, m.expiresAt) }))
  }

  private register (conn: Conn, f: RegisterFrame, now: number): RendezvousAction[] {
    const out: RendezvousAction[] = []
    // 1. Authenticate: the token must carry a valid MAC for this id, must not have expired, and must not expire
    //    further ahead than maxTokenAheadS (a long-lived token that leaks is refused).
    if (!this.options.open) {
      const o = this.options
      const v = verifyRendezvousToken(o.secrets, f.id, f.token, { now, skewS: o.tokenSkewS, maxAheadS: o.maxTokenAheadS })
      if (!v.ok) {
        out.push({ type: 'event', event: { type: 'auth-failure', id: f.id, reason: v.reason, observed: conn.observed } })
        const why = v.reason === 'expired'
          ? 'the token has expired'
          : v.reason === 'too_far_ahead' ? `the token expires more than ${o.maxTokenAheadS} s ahead` : 'the token does not verify for this id'
        out.push(...this.fatal(conn, v.reason === 'expired' ? 'expired' : 'unauthorized', why))
        return out
      }
    }
    // 2. Find the session: the one named by `resume` (same id), else a new one replacing any session of the id.
    //    A live connection of the id is closed with `replaced` either way; the id stays online throughout.
    const existing = this.peers.get(f.id)
    const wasOnline = existing?.conn !== undefined || this.elsewhere.has(f.id)
    const resumed = f.resume !== undefined && existing !== undefined && existing.key === f.resume
    if (existing === undefined && this.peers.size >= this.options.maxPeers) {
      return this.fatal(conn, 'server_full', `the server has ${this.options.maxPeers} peers`)
    }
    if (existing?.conn !== undefined) out.push(...this.replace(existing.conn))
    let session: Session
    if (resumed && existing !== undefined) {
      session = existing
    } else {
      if (existing !== undefined) this.forget(existing)
      session = this.newSession(f.id, existing, now)
    }
    // 3. Attach, answer `registered`, replay what an abrupt drop may have lost, then deliver the queue in order.
    this.setConn(session, conn)
    this.settle(conn)
    // The newest registration wins: a connection of this id at another node is replaced when that node hears of it.
    session.registeredAt = now
    this.elsewhere.delete(f.id)
    out.push(this.frame(conn, { type: 'registered', id: f.id, session: session.key, resumed, observed: conn.observed, serverTime: now }))
    if (resumed) {
      const received = f.received
      if (received !== undefined) {
        for (const d of session.replay) {
          if (d.n > received) out.push(this.frame(conn, messageFrame(d.from, JSON.parse(d.json), d.seq, d.n)))
        }
      }
      for (const id of session.watches) out.push(this.frame(conn, { type: 'presence', id, online: this.isOnline(id) }))
    }
    const { messages, expired } = this.queues.take(f.id, now)
    this.dropped.expired += expired
    for (const m of messages) out.push(this.deliver(session, m.from, JSON.parse(m.json) as unknown, m.json, m.seq, now))
    out.push({ type: 'event', event: { type: 'online', id: f.id, session: session.key, observed: conn.observed, resumed, at: now } })
    if (!wasOnline) out.push(...this.presence(f.id, true))
    return out
  }

  private newSession (peerId: string, previous: Session | undefined, now: number): Session {
    const rl = this.options.rateLimit
    const session: Session = {
      key: randomBytes(18).toString('base64url'),
      peerId,
      conn: undefined,
      registeredAt: now,
      disconnectedAt: now,
      watches: new Set(),
      replay: [],
      replayBytes: 0,
      nextN: 1,
      seen: new Map(),
      // A replacement inherits the rate-limit state: reconnecting must not refill the buckets.
      messages: rl === false ? undefined : previous?.messages ?? new TokenBucket(rl.messagesPerSecond, rl.messageBurst, now),
      bytes: rl === false ? undefined : previous?.bytes ?? new TokenBucket(rl.bytesPerSecond, rl.byteBurst, now)
    }
    this.peers.set(peerId, session)
    this.sessions.set(session.key, session)
    return session
  }

  private send (conn: Conn, session: Session, f: SendFrame, now: number): RendezvousAction[] {
    const ack = (queued: boolean): RendezvousAction[] => f.seq === undefined ? [] : [this.frame(conn, { type: 'ack', seq: f.seq, queued })]
    if (f.seq !== undefined) {
      const queued = session.seen.get(f.seq)
      if (queued !== undefined) return ack(queued) // a retransmission after a reconnect: already delivered or queued
    }
    const target = this.peers.get(f.to)
    let queued: boolean
    const out: RendezvousAction[] = []
    const where = target?.conn === undefined ? this.elsewhere.get(f.to) : undefined
    if (target?.conn !== undefined) {
      out.push(this.deliver(target, session.peerId, f.data, undefined, f.seq, now))
      queued = false
    } else if (where !== undefined && this.queues.lengthFor(f.to) === 0) {
      // Online at another node: hand it over there; the ack waits for the hand-over (see the 'forward' action).
      // With messages for the id still queued here, it queues behind them instead, keeping the sender's order.
      this.forwarded++
      const message = remoteMessage(f.to, session.peerId, JSON.stringify(f.data), f.seq, now + this.options.queueTtlMs)
      out.push(f.seq === undefined ? { type: 'forward', node: where.node, message } : { type: 'forward', node: where.node, message, ack: { conn: conn.id, seq: f.seq } })
      if (f.seq !== undefined) {
        session.seen.set(f.seq, false)
        if (session.seen.size > SEEN_SEQS) session.seen.delete(session.seen.keys().next().value as number)
      }
      return out
    } else {
      // Queued as JSON text, charged at its heap size. A recipient with no session at all (never registered, or gone
      // longer than sessionTtlMs) may still be about to register, so its messages are queued too, but only up to the
      // sender's small unknown-recipient share: ids nobody will ever register cannot absorb the server's memory.
      const json = JSON.stringify(f.data)
      const held = { from: session.peerId, json, seq: f.seq, size: heldSize(session.peerId, json), expiresAt: now + this.options.queueTtlMs, unknownRecipient: target === undefined && where === undefined }
      const refusal = this.queues.push(f.to, held, now)
      if (refusal === 'unknown-per-sender') {
        this.dropped.unknown_recipient++
        const o = this.options
        return this.error(conn, 'unknown_recipient', `${JSON.stringify(f.to)} is not registered and you already have ${o.maxUnknownQueuedPerSender} messages or ${o.maxUnknownQueuedBytesPerSender} bytes queued for unregistered ids`, f.seq)
      }
      if (refusal !== undefined) {
        this.dropped.queue_full++
        return this.error(conn, 'queue_full', `${JSON.stringify(f.to)} is offline and its queue is full (${refusal})`, f.seq)
      }
      this.queuedTotal++
      queued = true
    }
    if (f.seq !== undefined) {
      session.seen.set(f.seq, queued)
      if (session.seen.size > SEEN_SEQS) session.seen.delete(session.seen.keys().next().value as number)
    }
    out.push(...ack(queued))
    return out
  }

  /**
   * Hand a message to `target`'s live connection, numbering it and keeping it in the resume buffer (as JSON text,
   * charged at its heap size; `json` when the caller already has it).
   */
  private deliver (target: Session, from: string, data: unknown, json: string | undefined, seq: number | undefined, now: number): RendezvousAction {
    const conn = target.conn as Conn
    const n = target.nextN++
    this.relayed++
    if (this.options.replayMessages > 0) {
      const text = json ?? JSON.stringify(data)
      const size = heldSize(from, text)
      if (size <= this.options.replayBytes) {
        target.replay.push(seq === undefined ? { n, from, json: text, size, at: now } : { n, from, json: text, seq, size, at: now })
        target.replayBytes += size
        this.budget.used += size
        this.trimReplay(target, now)
      }
    }
    return this.frame(conn, messageFrame(from, data, seq, n))
  }

  private trimReplay (s: Session, now: number): void {
    let drop = 0
    const o = this.options
    while (drop < s.replay.length) {
      const d = s.replay[drop]
      const over = s.replay.length - drop > o.replayMessages || s.replayBytes > o.replayBytes || this.budget.used > this.budget.limit
      if (!over && now - d.at < o.queueTtlMs) break
      if (over) this.dropped.replay_evicted++
      s.replayBytes -= d.size
      this.budget.used -= d.size
      drop++
    }
    if (drop > 0) s.replay = s.replay.slice(drop)
  }

  /** Set or clear a session's live connection, keeping the online count. */
  private setConn (session: Session, conn: Conn | undefined): void {
    if (session.conn === undefined && conn !== undefined) this.online++
    if (session.conn !== undefined && conn === undefined) this.online--
    session.conn = conn
    if (conn !== undefined) conn.session = session
  }

  private detach (session: Session, now: number): RendezvousAction[] {
    this.setConn(session, undefined)
    session.disconnectedAt = now
    return [{ type: 'event', event: { type: 'offline', id: session.peerId, session: session.key } }, ...this.presence(session.peerId, false)]
  }

  /** Remove a session and everything it holds. */
  private forget (s: Session): void {
    this.setConn(s, undefined)
    for (const id of s.watches) this.unwatch(s, id)
    this.budget.used -= s.replayBytes
    s.replay = []
    s.replayBytes = 0
    this.sessions.delete(s.key)
    if (this.peers.get(s.peerId) === s) this.peers.delete(s.peerId)
  }

  private unwatch (s: Session, id: string): void {
    s.watches.delete(id)
    const set = this.watchers.get(id)
    if (set === undefined) return
    set.delete(s)
    if (set.size === 0) this.watchers.delete(id)
  }

  private presence (id: string, online: boolean): RendezvousAction[] {
    const out: RendezvousAction[] = []
    for (const s of this.watchers.get(id) ?? []) if (s.conn !== undefined) out.push(this.frame(s.conn, { type: 'presence', id, online }))
    return out
  }

  /** Close an old connection whose id was registered again. */
  private replace (old: Conn): RendezvousAction[] {
    const out = this.fatal(old, 'replaced', 'another connection registered this id')
    old.session = undefined
    return out
  }

  private frame (conn: Conn, frame: ServerFrame): RendezvousAction {
    return { type: 'send', conn: conn.id, frame }
  }

  private error (conn: Conn, code: RendezvousErrorCode, message: string, ref?: number): RendezvousAction[] {
    if (RENDEZVOUS_FATAL_CODES.has(code)) return this.fatal(conn, code, message)
    return [this.frame(conn, ref === undefined ? { type: 'error', code, message } : { type: 'error', code, message, ref })]
  }

  /** `conn` stops counting as pending (it registered, is closing or has gone). Idempotent. */
  private settle (conn: Conn): void {
    if (!conn.pending) return
    conn.pending = false
    this.pending--
    const left = (this.pendingBySource.get(conn.source) ?? 1) - 1
    if (left <= 0) this.pendingBySource.delete(conn.source)
    else this.pendingBySource.set(conn.source, left)
  }

  /** Send an error frame and close: the connection takes no more frames from now on. */
  private fatal (conn: Conn, code: RendezvousErrorCode, message: string): RendezvousAction[] {
    this.settle(conn)
    conn.closing = true
    return [this.frame(conn, { type: 'error', code, message }), { type: 'close', conn: conn.id, code: closeCodeFor(code), reason: code }]
  }
}

/** A RemoteMessage (`seq` only when the sender gave one). */
function remoteMessage (to: string, from: string, json: string, seq: number | undefined, expiresAt: number): RemoteMessage {
  return seq === undefined ? { to, from, json, expiresAt } : { to, from, json, seq, expiresAt }
}

/** A `message` frame (`seq` only when the sender gave one). */
function messageFrame (from: string, data: unknown, seq: number | undefined, n: number): ServerFrame {
  return seq === undefined ? { type: 'message', from, data, n } : { type: 'message', from, data, seq, n }
}
