import { resolveRendezvousOptions, type RendezvousCoreOptions, type ResolvedRendezvousOptions } from './core-options.js'
import { Connections, frame } from './core-conns.js'
import { Delivery } from './core-delivery.js'
import { RemoteDirectory } from './core-directory.js'
import { Handovers } from './core-handover.js'
import { SessionTable, rememberSeq, remoteMessage, type Conn, type Session } from './core-session.js'
import type { ConnId, DropReason, RemoteMessage, RendezvousAction, RendezvousStats, SessionHandover, SessionRequest } from './core-types.js'
import { Watches } from './core-watches.js'
import { parseClientFrame, type ObservedAddress, type RegisterFrame, type SendFrame } from './protocol.js'
import { ByteBudget, OfflineQueues, heldSize } from './queue.js'
import { verifyRendezvousToken } from './token.js'

/**
 * The rendezvous server's protocol logic, sans-IO: the adapter reports connections opening (`open`), frames
 * (`handle`), connections closing (`closed`) and time (`tick`), and executes the returned actions. Never throws on
 * client input. Memory is bounded by the options: peers, pending connections, queues, resume buffers, watches.
 *
 * The parts, one file each: connections and the pending bounds (core-conns.ts), sessions (core-session.ts),
 * delivery and resume buffers (core-delivery.ts), watches and presence (core-watches.ts), the directory of ids at
 * other nodes (core-directory.ts), sessions moving between nodes (core-handover.ts), offline queues (queue.ts).
 * This class is registration, sending and the nodes.
 */
export class RendezvousCore {
  readonly options: ResolvedRendezvousOptions
  private readonly conns: Connections
  private readonly sessions: SessionTable
  private readonly watches = new Watches()
  private readonly budget: ByteBudget
  private readonly queues: OfflineQueues
  private readonly delivery: Delivery
  private forwarded = 0
  /** Ids online at other rendezvous nodes (fed by the adapter from its RendezvousRemote). */
  private readonly elsewhere = new RemoteDirectory()
  private queuedTotal = 0
  private readonly handovers: Handovers
  private readonly dropped: Record<DropReason, number> = { invalid: 0, too_large: 0, rate_limited: 0, queue_full: 0, unknown_recipient: 0, expired: 0, replay_evicted: 0 }

  constructor (options: RendezvousCoreOptions) {
    this.options = resolveRendezvousOptions(options)
    this.budget = new ByteBudget(this.options.maxBufferedBytes)
    const o = this.options
    this.conns = new Connections(o)
    this.sessions = new SessionTable(o)
    this.delivery = new Delivery(o, this.budget, this.dropped)
    this.queues = new OfflineQueues({
      maxPerPeer: o.maxQueuedPerPeer,
      maxBytesPerPeer: o.maxQueuedBytesPerPeer,
      maxRecipients: o.maxQueuedRecipients,
      maxBytesPerSender: o.maxQueuedBytesPerSender,
      maxUnknownPerSender: o.maxUnknownQueuedPerSender,
      maxUnknownBytesPerSender: o.maxUnknownQueuedBytesPerSender
    }, this.budget)
    this.handovers = new Handovers({
      options: o,
      conns: this.conns,
      sessions: this.sessions,
      queues: this.queues,
      watches: this.watches,
      elsewhere: this.elsewhere,
      delivery: this.delivery,
      budget: this.budget,
      dropped: this.dropped,
      isOnline: (id) => this.isOnline(id),
      forget: (s) => { this.forget(s) },
      replace: (conn) => this.replace(conn),
      attach: (conn, f, now, handed) => this.attach(conn, f, now, handed)
    })
  }

  /**
   * A new WebSocket connection from `observed`. Over maxPending unregistered connections in all, or maxPendingPerIp
   * from its source (IPv4 address or IPv6 /64), it gets `server_full` and is closed at once.
   */
  open (conn: ConnId, observed: ObservedAddress, now: number): RendezvousAction[] {
    return this.conns.open(conn, observed, now)
  }

  /** One frame from `conn`: text, or bytes of a binary frame (refused: the protocol is JSON text). */
  handle (connId: ConnId, data: string | Uint8Array, now: number): RendezvousAction[] {
    const conn = this.conns.get(connId)
    if (conn === undefined || conn.closing) return []
    const out: RendezvousAction[] = []
    const session = conn.session
    conn.frames++
    if (session === undefined && conn.frames > this.options.maxPendingFrames) {
      return this.conns.fatal(conn, 'not_registered', `send "register" first (at most ${this.options.maxPendingFrames} frames before it)`)
    }
    const size = typeof data === 'string' ? Buffer.byteLength(data) : data.byteLength
    if (size > this.options.maxMessageBytes) {
      this.dropped.too_large++
      return this.conns.error(conn, 'too_large', `frame of ${size} bytes is over the limit of ${this.options.maxMessageBytes}`)
    }
    if (typeof data !== 'string') {
      this.dropped.invalid++
      return this.conns.error(conn, 'bad_json', 'binary frames are not accepted: send JSON text frames')
    }
    const parsed = parseClientFrame(data, this.options.maxWatch)
    if (!parsed.ok) {
      this.dropped.invalid++
      return this.conns.error(conn, parsed.code, parsed.message, parsed.ref)
    }
    const f = parsed.frame
    if (session === undefined) {
      if (conn.resuming !== undefined) return this.conns.error(conn, 'already_registered', 'this connection\'s register is in progress')
      if (f.type !== 'register') return this.conns.fatal(conn, 'not_registered', 'the first frame must be "register"')
      return this.register(conn, f, now)
    }
    if (session.messages !== undefined && session.bytes !== undefined) {
      if (!session.messages.peek(1, now) || !session.bytes.take(size, now)) {
        this.dropped.rate_limited++
        return this.conns.error(conn, 'rate_limited', 'too many frames or bytes per second; the frame was dropped', 'seq' in f ? f.seq : undefined)
      }
      session.messages.take(1, now)
    }
    switch (f.type) {
      case 'register':
        return this.conns.error(conn, 'already_registered', `this connection is registered as ${JSON.stringify(session.peerId)}`)
      case 'send':
        return this.send(conn, session, f, now)
      case 'watch': {
        const fresh = new Set(f.ids.filter(id => !session.watches.has(id)))
        if (session.watches.size + fresh.size > this.options.maxWatch) {
          return this.conns.error(conn, 'limit_exceeded', `at most ${this.options.maxWatch} ids may be watched`)
        }
        for (const id of fresh) this.watches.add(session, id)
        for (const id of new Set(f.ids)) out.push(frame(conn, { type: 'presence', id, online: this.isOnline(id) }))
        return out
      }
      case 'unwatch':
        for (const id of f.ids) this.watches.remove(session, id)
        return out
      case 'ping':
        return [frame(conn, { type: 'pong', t: f.t, serverTime: now })]
    }
  }

  /** `conn` has gone (closed by either side). Its peer goes offline; its session stays resumable for sessionTtlMs. */
  closed (connId: ConnId, now: number): RendezvousAction[] {
    const conn = this.conns.get(connId)
    if (conn === undefined) return []
    this.conns.delete(connId)
    this.conns.settle(conn)
    this.handovers.closed(conn)
    const session = conn.session
    if (session === undefined) return []
    if (session.conn !== conn) return []
    return this.detach(session, now)
  }

  /** Expire pending connections, dropped sessions, queued messages and resume buffers. Call about once a second. */
  tick (now: number): RendezvousAction[] {
    const out: RendezvousAction[] = []
    for (const conn of this.conns.values()) {
      // A registration waiting for a handover is bounded by handoverTimeoutMs instead.
      if (conn.session === undefined && conn.resuming === undefined && !conn.closing && now - conn.openedAt >= this.options.registerTimeoutMs) {
        out.push(...this.conns.fatal(conn, 'register_timeout', `no "register" within ${this.options.registerTimeoutMs} ms`))
      }
    }
    out.push(...this.handovers.tick(now))
    for (const session of this.sessions.byKey.values()) {
      if (session.conn === undefined && now - session.disconnectedAt >= this.options.sessionTtlMs) this.forget(session)
      else this.delivery.trim(session, now)
    }
    this.dropped.expired += this.queues.sweep(now)
    // Messages queued here for an id that is online at another node (a hand-over failed, or arrived after the id
    // moved) go on to that node, in order.
    for (const id of this.queues.ids()) {
      const where = this.elsewhere.where(id)
      if (where !== undefined) out.push(...this.flushTo(id, where.node, now))
    }
    return out
  }

  /**
   * Tell every connection the server is going away and close them; the sessions stay (resumable, and in a cluster
   * ready to be handed over to the node their clients reconnect to) until shutdown().
   */
  closeAll (now: number): RendezvousAction[] {
    const out: RendezvousAction[] = []
    for (const conn of this.conns.values()) {
      if (conn.closing) continue
      out.push(...this.conns.fatal(conn, 'shutting_down', 'the server is closing'))
      if (conn.session?.conn === conn) out.push(...this.detach(conn.session, now))
    }
    return out
  }

  /** Tell every connection the server is going away and close them; forget all state. */
  shutdown (now: number): RendezvousAction[] {
    const out = this.closeAll(now)
    for (const s of [...this.sessions.byKey.values()]) this.forget(s)
    this.handovers.clear()
    this.queues.clear()
    return out
  }

  /** Counters and gauges. */
  stats (): RendezvousStats {
    return {
      peersOnline: this.sessions.online,
      sessions: this.sessions.byKey.size,
      pendingConnections: this.conns.pending,
      pendingRefused: this.conns.refused,
      messagesRelayed: this.delivery.relayed,
      messagesForwarded: this.forwarded,
      peersElsewhere: this.elsewhere.size,
      sessionsHandedOver: this.handovers.handedOver,
      sessionsTakenOver: this.handovers.takenOver,
      messagesQueued: this.queuedTotal,
      queuedNow: this.queues.size,
      queuedForUnknownNow: this.queues.unknownSize,
      bufferedBytes: this.budget.used,
      dropped: { ...this.dropped }
    }
  }

  /** Whether `id` is registered with a live connection, here or (as last announced) at another rendezvous node. */
  isOnline (id: string): boolean { return this.sessions.byId.get(id)?.conn !== undefined || this.elsewhere.has(id) }

  // ---- several rendezvous nodes (RendezvousRemote): what the other nodes announce, and messages they hand over ----

  /** The ids online here, with their registration times: what this node announces to the others. */
  roster (): Array<{ id: string, at: number }> { return this.sessions.roster() }

  /**
   * Node `node` says `id` registered there at `at`. The newest registration of an id wins, as on one node: if `id` is
   * online here since before `at`, its connection here is closed with `replaced` (ties go to the greater node name).
   * Messages queued here for `id` go to `node`, in order; watchers here see `id` come online.
   */
  remoteOnline (node: string, id: string, at: number, now: number): RendezvousAction[] {
    const out: RendezvousAction[] = []
    const local = this.sessions.byId.get(id)
    if (local?.conn !== undefined) {
      if (local.registeredAt > at || (local.registeredAt === at && this.options.node > node)) return out // ours is newer
      out.push(...this.replace(local.conn))
      this.forget(local)
    }
    const wasOnline = local?.conn !== undefined || this.elsewhere.has(id)
    this.elsewhere.set(id, node, at)
    if (!wasOnline) out.push(...this.watches.presence(id, true))
    out.push(...this.flushTo(id, node, now))
    return out
  }

  /** Node `node` says `id` went offline there (a later registration elsewhere is not affected). */
  remoteOffline (node: string, id: string): RendezvousAction[] {
    if (this.elsewhere.where(id)?.node !== node) return []
    this.elsewhere.delete(id)
    return this.isOnline(id) ? [] : this.watches.presence(id, false)
  }

  /** Node `node` lists every id online there (after a (re)connect): ids of it not listed went offline. */
  remoteRoster (node: string, entries: ReadonlyArray<{ id: string, at: number }>, now: number): RendezvousAction[] {
    const listed = new Set(entries.map(e => e.id))
    const out: RendezvousAction[] = []
    for (const id of this.elsewhere.idsAt(node)) if (!listed.has(id)) out.push(...this.remoteOffline(node, id))
    for (const e of entries) out.push(...this.remoteOnline(node, e.id, e.at, now))
    return out
  }

  /** Node `node` is gone (killed, partitioned: it stopped announcing itself): its ids are offline. */
  remoteNodeGone (node: string): RendezvousAction[] {
    const out: RendezvousAction[] = []
    for (const id of this.elsewhere.idsAt(node)) out.push(...this.remoteOffline(node, id))
    return out
  }

  /**
   * A message another node handed over for an id that it saw online here. Delivered if the id is online here; else
   * queued under the same bounds as a local send (it goes on at the next tick if the id is online elsewhere now).
   * A message that fits no queue is dropped and counted: its sender's node has acknowledged it already.
   */
  receiveRemote (m: RemoteMessage, now: number): RendezvousAction[] {
    if (m.expiresAt <= now) { this.dropped.expired++; return [] }
    const target = this.sessions.byId.get(m.to)
    if (target?.conn !== undefined) {
      let data: unknown
      try { data = JSON.parse(m.json) } catch { this.dropped.invalid++; return [] }
      return [this.delivery.deliver(target, m.from, data, m.json, m.seq, now)]
    }
    // The id's session moved on from here a moment ago (a handover): a message that crossed the move goes on to the
    // new node at once, behind the handover on this node's channel to it, so the sender's order holds.
    const moved = this.handovers.movedNode(m.to)
    if (target === undefined && moved !== undefined && this.queues.lengthFor(m.to) === 0) {
      this.forwarded++
      return [{ type: 'forward', node: moved, message: m }]
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
    if (queued) return [frame(conn, { type: 'ack', seq: ack.seq, queued: true })]
    if (conn.session !== undefined) conn.session.seen.delete(ack.seq)
    return this.conns.error(conn, 'queue_full', `${JSON.stringify(m.to)} is at another node that cannot be reached now, and its queue here is full (${refusal})`, ack.seq)
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
        out.push(...this.conns.fatal(conn, v.reason === 'expired' ? 'expired' : 'unauthorized', why))
        return out
      }
    }
    // 2. A `resume` of a session no session here has (for any id): in a cluster another node may hold it. Ask them,
    //    and finish the registration when it is handed over (takeOver) or when no node answered in time.
    if (this.options.cluster && f.resume !== undefined && !this.sessions.byKey.has(f.resume)) return this.handovers.ask(conn, { ...f, resume: f.resume }, now)
    return this.attach(conn, f, now)
  }

  /**
   * Register `conn` as `f.id`: continue the session `f.resume` names if it is this id's here, else start a new one
   * (replacing any session of the id). `handed` is what another node handed over for it (queued messages, delivered
   * after the replay and before what is queued here).
   */
  private attach (conn: Conn, f: RegisterFrame, now: number, handed: readonly RemoteMessage[] = []): RendezvousAction[] {
    const out: RendezvousAction[] = []
    // 2. Find the session: the one named by `resume` (same id), else a new one replacing any session of the id.
    //    A live connection of the id is closed with `replaced` either way; the id stays online throughout.
    const existing = this.sessions.byId.get(f.id)
    const wasOnline = existing?.conn !== undefined || this.elsewhere.has(f.id)
    const resumed = f.resume !== undefined && existing !== undefined && existing.key === f.resume
    if (existing === undefined && this.sessions.byId.size >= this.options.maxPeers) {
      return this.conns.fatal(conn, 'server_full', `the server has ${this.options.maxPeers} peers`)
    }
    if (existing?.conn !== undefined) out.push(...this.replace(existing.conn))
    let session: Session
    if (resumed && existing !== undefined) {
      session = existing
    } else {
      if (existing !== undefined) this.forget(existing)
      session = this.sessions.create(f.id, existing, now)
    }
    // 3. Attach, answer `registered`, replay what an abrupt drop may have lost, then deliver the queue in order.
    this.sessions.setConn(session, conn)
    this.conns.settle(conn)
    // The newest registration wins: a connection of this id at another node is replaced when that node hears of it.
    session.registeredAt = now
    this.elsewhere.delete(f.id)
    this.handovers.registered(f.id)
    out.push(frame(conn, { type: 'registered', id: f.id, session: session.key, resumed, observed: conn.observed, serverTime: now }))
    if (resumed) {
      if (f.received !== undefined) out.push(...this.delivery.replay(session, f.received))
      for (const id of session.watches) out.push(frame(conn, { type: 'presence', id, online: this.isOnline(id) }))
    }
    const { messages, expired } = this.queues.take(f.id, now)
    this.dropped.expired += expired
    for (const m of [...handed, ...messages]) {
      if (m.expiresAt <= now) { this.dropped.expired++; continue }
      out.push(this.delivery.deliver(session, m.from, JSON.parse(m.json) as unknown, m.json, m.seq, now))
    }
    out.push({ type: 'event', event: { type: 'online', id: f.id, session: session.key, observed: conn.observed, resumed, at: now } })
    if (!wasOnline) out.push(...this.watches.presence(f.id, true))
    return out
  }

  // ---- sessions moving between nodes (a client resumed at another node than the one holding its session) ----

  /**
   * No node handed over the session `ref` asked for within handoverTimeoutMs (the adapter's timer, or tick): the
   * registration goes on with a fresh session, `resumed: false`, as when a session has expired.
   */
  resumeTimedOut (ref: string, now: number): RendezvousAction[] { return this.handovers.timedOut(ref, now) }

  /**
   * Node `node` asks for session `request.session` of `request.id`. If this node holds that session for that id
   * (a key alone is not enough: the asking node has checked the id's token, and the session must be that id's), it
   * hands it over and forgets it: its connection here, if the drop has not been noticed yet, is closed with
   * `replaced`; the resume buffer after `received`, the messages queued here for the id, its watches and seqs go to
   * `node`. Until the new node announces the id, it counts as online there (no presence change for watchers here),
   * and messages for it that still arrive here go on to it. Otherwise nothing (other nodes may hold it).
   */
  sessionRequest (node: string, request: SessionRequest, now: number): RendezvousAction[] { return this.handovers.request(node, request, now) }

  /**
   * A session another node handed over. If its registration here still waits, it resumes it: `registered` with
   * `resumed: true`, the replay after `received`, presence of its watches, the messages the old node had queued,
   * then those queued here, numbered on from where the old node stopped. If the registration stopped waiting (timed
   * out, or its connection went), nothing is lost: the messages go to the id's session here, or the session is kept
   * here to be resumed.
   */
  takeOver (handover: SessionHandover, now: number): RendezvousAction[] { return this.handovers.takeOver(handover, now) }

  /**
   * A session-handover action could not be handed over (the asking node is gone, or the transport is down): the
   * session is kept here again, disconnected and resumable, with its queued messages.
   */
  handOverFailed (node: string, handover: SessionHandover, now: number): RendezvousAction[] { return this.handovers.failed(node, handover, now) }

  private send (conn: Conn, session: Session, f: SendFrame, now: number): RendezvousAction[] {
    const ack = (queued: boolean): RendezvousAction[] => f.seq === undefined ? [] : [frame(conn, { type: 'ack', seq: f.seq, queued })]
    if (f.seq !== undefined) {
      const queued = session.seen.get(f.seq)
      if (queued !== undefined) return ack(queued) // a retransmission after a reconnect: already delivered or queued
    }
    const target = this.sessions.byId.get(f.to)
    let queued: boolean
    const out: RendezvousAction[] = []
    const where = target?.conn === undefined ? this.elsewhere.where(f.to) : undefined
    if (target?.conn !== undefined) {
      out.push(this.delivery.deliver(target, session.peerId, f.data, undefined, f.seq, now))
      queued = false
    } else if (where !== undefined && this.queues.lengthFor(f.to) === 0) {
      // Online at another node: hand it over there; the ack waits for the hand-over (see the 'forward' action).
      // With messages for the id still queued here, it queues behind them instead, keeping the sender's order.
      this.forwarded++
      const message = remoteMessage(f.to, session.peerId, JSON.stringify(f.data), f.seq, now + this.options.queueTtlMs)
      out.push(f.seq === undefined ? { type: 'forward', node: where.node, message } : { type: 'forward', node: where.node, message, ack: { conn: conn.id, seq: f.seq } })
      if (f.seq !== undefined) rememberSeq(session, f.seq, false)
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
        return this.conns.error(conn, 'unknown_recipient', `${JSON.stringify(f.to)} is not registered and you already have ${o.maxUnknownQueuedPerSender} messages or ${o.maxUnknownQueuedBytesPerSender} bytes queued for unregistered ids`, f.seq)
      }
      if (refusal !== undefined) {
        this.dropped.queue_full++
        return this.conns.error(conn, 'queue_full', `${JSON.stringify(f.to)} is offline and its queue is full (${refusal})`, f.seq)
      }
      this.queuedTotal++
      queued = true
    }
    if (f.seq !== undefined) rememberSeq(session, f.seq, queued)
    out.push(...ack(queued))
    return out
  }

  private detach (session: Session, now: number): RendezvousAction[] {
    this.sessions.setConn(session, undefined)
    session.disconnectedAt = now
    return [{ type: 'event', event: { type: 'offline', id: session.peerId, session: session.key } }, ...this.watches.presence(session.peerId, false)]
  }

  /** Remove a session and everything it holds. */
  private forget (s: Session): void {
    this.sessions.setConn(s, undefined)
    this.watches.removeAll(s)
    this.delivery.release(s)
    this.sessions.remove(s)
  }

  /** Close an old connection whose id was registered again. */
  private replace (old: Conn): RendezvousAction[] {
    const out = this.conns.fatal(old, 'replaced', 'another connection registered this id')
    old.session = undefined
    return out
  }
}
