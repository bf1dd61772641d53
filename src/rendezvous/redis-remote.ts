import { randomBytes } from 'node:crypto'
import { createClient } from 'redis'
import { InvalidArgumentError, TransportError } from '../errors.js'
import { createLogger } from '../log.js'
import type { HandedOverDelivery, RemoteMessage, SessionHandover, SessionRequest } from './core-types.js'
import { isValidPeerId } from './protocol.js'
import type { RendezvousRemote, RendezvousRemoteHandlers } from './remote.js'

const log = createLogger('natcheck:rendezvous:redis')

/** Options for RedisRendezvousRemote.start. */
export interface RedisRendezvousRemoteOptions {
  /** redis://HOST:PORT[/DB] */
  readonly url: string
  /** Nodes share peers within one namespace (the relay uses its realm). */
  readonly namespace: string
  /** This node's name (default: random; a restarted process is a new node). */
  readonly node?: string
  /** Heartbeat interval (default 1000 ms); a node not heard for 5 intervals is gone. */
  readonly intervalMs?: number
  /** Called when Redis becomes unreachable (with why) and reachable again. */
  readonly onHealth?: (ok: boolean, error?: string) => void
}

type Entry = { id: string, at: number }

/** How many heartbeat intervals without a word before a node counts as gone. */
const GONE_AFTER_INTERVALS = 5

/**
 * RendezvousRemote over Redis pub/sub: rendezvous servers (one per relay node) that share a Redis find each other's
 * peers. Channels, under `natkit/rendezvous/<namespace>/`:
 *
 * - `all`: heartbeats (`hello`), `online` / `offline` of ids, `sync` (send me your roster), `session?` (who holds
 *   this session? a client resumed it here);
 * - `node/<node>`: messages handed over to that node (`msg`), rosters sent to it (`roster`) and sessions handed over
 *   to it (`session`).
 *
 * Every node publishes on one connection and Redis delivers a publisher's messages in order, so messages from one
 * node to another arrive in the order they were forwarded. A message is handed over when PUBLISH reports a
 * subscriber on the node's channel; else (the node is gone, Redis is down) forward resolves false and the server
 * queues it. A session is handed over the same way, on the node's channel, so it arrives after the messages this node
 * forwarded there before it and before those it forwards after it. Pub/sub does not store: what is announced while a node is disconnected is recovered by asking for the
 * rosters when it is back (`sync`), and a node heard from again after it counted as gone is asked for its roster.
 */
export class RedisRendezvousRemote implements RendezvousRemote {
  readonly node: string
  private handlers: RendezvousRemoteHandlers | undefined
  private readonly seen = new Map<string, number>()
  private timer: NodeJS.Timeout | undefined
  private closed = false
  private healthy = true
  private readonly prefix: string

  private constructor (private readonly options: RedisRendezvousRemoteOptions, private readonly pub: ReturnType<typeof createClient>, private readonly sub: ReturnType<typeof createClient>, node: string) {
    this.node = node
    this.prefix = `natkit/rendezvous/${options.namespace}/`
  }

  /** Connect (two connections: publishing and subscribing). Rejects with TransportError when Redis cannot be reached. */
  static async start (options: RedisRendezvousRemoteOptions): Promise<RedisRendezvousRemote> {
    if (options.namespace === '') throw new InvalidArgumentError('RedisRendezvousRemote needs a namespace (e.g. the realm)')
    let connected = false
    const socket = { connectTimeout: 2000, reconnectStrategy: (retries: number, cause: Error) => connected ? Math.min(100 * (retries + 1), 2000) : cause }
    const pub = createClient({ url: options.url, disableOfflineQueue: true, socket })
    const sub = pub.duplicate()
    pub.on('error', (err: Error) => { log.trace('redis (publish): %s', err.message) })
    sub.on('error', (err: Error) => { log.trace('redis (subscribe): %s', err.message) })
    try {
      await pub.connect()
      await sub.connect()
      connected = true
    } catch (err) {
      await pub.disconnect().catch(() => {})
      await sub.disconnect().catch(() => {})
      throw new TransportError(`cannot reach Redis at ${options.url}: ${(err as Error).message}`, { cause: err })
    }
    return new RedisRendezvousRemote(options, pub, sub, options.node ?? randomBytes(9).toString('base64url'))
  }

  start (handlers: RendezvousRemoteHandlers): void {
    if (this.handlers !== undefined) return
    this.handlers = handlers
    const channels = [`${this.prefix}all`, `${this.prefix}node/${this.node}`]
    // After a reconnect the subscriptions are restored by the client; what was missed meanwhile is asked for again.
    this.sub.on('ready', () => { this.publish('all', { t: 'sync' }) })
    this.sub.subscribe(channels, (text: string) => { this.receive(text) })
      .then(() => { this.publish('all', { t: 'sync' }); this.publish('all', { t: 'hello' }) })
      .catch((err: Error) => { log('subscribing failed: %s', err.message) })
    const interval = this.options.intervalMs ?? 1000
    this.timer = setInterval(() => { this.tick(interval) }, interval)
    this.timer.unref()
  }

  async forward (node: string, message: RemoteMessage): Promise<boolean> {
    return await this.toNode(node, { t: 'msg', m: message })
  }

  requestSession (request: SessionRequest): void {
    this.publish('all', { t: 'session?', r: request })
  }

  async handOver (node: string, handover: SessionHandover): Promise<boolean> {
    return await this.toNode(node, { t: 'session', h: handover })
  }

  /** Publish `body` on `node`'s own channel: true once a subscriber there has it, false if none or Redis failed. */
  private async toNode (node: string, body: Record<string, unknown>): Promise<boolean> {
    if (this.closed) return false
    try {
      const receivers = await this.pub.publish(`${this.prefix}node/${node}`, JSON.stringify({ v: 1, t: body.t, node: this.node, ...body }))
      this.health(true)
      return receivers > 0
    } catch (err) {
      this.health(false, (err as Error).message)
      return false
    }
  }

  announce (event: { readonly type: 'online', readonly id: string, readonly at: number } | { readonly type: 'offline', readonly id: string }): void {
    if (event.type === 'online') this.publish('all', { t: 'online', id: event.id, at: event.at })
    else this.publish('all', { t: 'offline', id: event.id })
  }

  async close (): Promise<void> {
    if (this.closed) return
    this.closed = true
    if (this.timer !== undefined) clearInterval(this.timer)
    // QUIT after what is queued (the offline announcements of a shutdown); a dead connection is just dropped.
    await this.pub.quit().catch(async () => { await this.pub.disconnect().catch(() => {}) })
    await this.sub.disconnect().catch(() => {})
  }

  private tick (interval: number): void {
    if (this.closed) return
    this.publish('all', { t: 'hello' })
    const deadline = Date.now() - GONE_AFTER_INTERVALS * interval
    for (const [node, at] of [...this.seen]) {
      if (at >= deadline) continue
      this.seen.delete(node)
      log('rendezvous node %s is gone (silent for %d ms)', node, Date.now() - at)
      this.handlers?.nodeGone(node)
    }
  }

  private publish (where: string, body: Record<string, unknown>): void {
    if (this.closed) return
    this.pub.publish(`${this.prefix}${where}`, JSON.stringify({ v: 1, node: this.node, ...body }))
      .then(() => { this.health(true) }, (err: Error) => { this.health(false, err.message) })
  }

  private health (ok: boolean, error?: string): void {
    if (ok === this.healthy) return
    this.healthy = ok
    if (ok) log('Redis reachable again: rendezvous across nodes resumes')
    else log('Redis unreachable (%s): peers here are served, messages for other nodes are queued', error)
    this.options.onHealth?.(ok, error)
  }

  /** One pub/sub message; anything malformed or foreign is ignored. */
  private receive (text: string): void {
    const h = this.handlers
    if (h === undefined || this.closed) return
    let o: Record<string, unknown>
    try {
      const v = JSON.parse(text) as unknown
      if (typeof v !== 'object' || v === null || Array.isArray(v)) return
      o = v as Record<string, unknown>
    } catch { return }
    const node = o.node
    if (o.v !== 1 || typeof node !== 'string' || node === '' || node === this.node) return
    const known = this.seen.has(node)
    this.seen.set(node, Date.now())
    // A node never heard of, or heard again after it counted as gone: ask it for its roster.
    if (!known && o.t !== 'roster') this.publish(`node/${node}`, { t: 'sync' })
    switch (o.t) {
      case 'hello':
        return
      case 'sync':
        this.publish(`node/${node}`, { t: 'roster', entries: h.localRoster() })
        return
      case 'online':
        if (isValidPeerId(o.id) && typeof o.at === 'number') h.online(node, o.id, o.at)
        return
      case 'offline':
        if (isValidPeerId(o.id)) h.offline(node, o.id)
        return
      case 'roster': {
        if (!Array.isArray(o.entries)) return
        const entries: Entry[] = []
        for (const e of o.entries as unknown[]) {
          const r = e as Partial<Entry> | null
          if (r !== null && typeof r === 'object' && isValidPeerId(r.id) && typeof r.at === 'number') entries.push({ id: r.id, at: r.at })
        }
        h.roster(node, entries)
        return
      }
      case 'msg': {
        const m = parseRemoteMessage(o.m)
        if (m !== undefined) h.message(m)
        return
      }
      case 'session?': {
        const r = o.r as Partial<SessionRequest> | null
        if (r === null || typeof r !== 'object' || !isKey(r.ref) || !isValidPeerId(r.id) || !isKey(r.session)) return
        if (r.received !== undefined && !isCount(r.received)) return
        h.sessionRequest(node, r.received === undefined ? { ref: r.ref, id: r.id, session: r.session } : { ref: r.ref, id: r.id, session: r.session, received: r.received })
        return
      }
      case 'session': {
        const handover = parseHandover(o.h)
        if (handover !== undefined) h.sessionHandover(node, handover)
      }
    }
  }
}

/** Most entries of each list in a handed-over session (far above what a node keeps: 64 replayed, 1024 seqs, 256 queued). */
const MAX_HANDOVER_ITEMS = 4096

const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0
/** A session key or request ref: what a `resume` may be (protocol.ts: a string of at most 64 characters). */
const isKey = (v: unknown): v is string => typeof v === 'string' && v !== '' && v.length <= 64
const isList = (v: unknown): v is unknown[] => Array.isArray(v) && v.length <= MAX_HANDOVER_ITEMS

/** A RemoteMessage from another node, or undefined if malformed. */
function parseRemoteMessage (v: unknown): RemoteMessage | undefined {
  const m = v as Partial<RemoteMessage> | null
  if (m === null || typeof m !== 'object' || !isValidPeerId(m.to) || !isValidPeerId(m.from) || typeof m.json !== 'string' || typeof m.expiresAt !== 'number') return undefined
  if (m.seq !== undefined && !isCount(m.seq)) return undefined
  return m.seq === undefined ? { to: m.to, from: m.from, json: m.json, expiresAt: m.expiresAt } : { to: m.to, from: m.from, json: m.json, seq: m.seq, expiresAt: m.expiresAt }
}

/** A SessionHandover from another node, or undefined if anything in it is malformed. */
function parseHandover (v: unknown): SessionHandover | undefined {
  const h = v as Partial<SessionHandover> | null
  if (h === null || typeof h !== 'object' || !isKey(h.ref) || !isValidPeerId(h.id) || !isKey(h.session) || !isCount(h.nextN)) return undefined
  if (!isList(h.replay) || !isList(h.queued) || !isList(h.watches) || !isList(h.seen)) return undefined
  const replay: HandedOverDelivery[] = []
  for (const e of h.replay) {
    const d = e as Partial<HandedOverDelivery> | null
    if (d === null || typeof d !== 'object' || !isCount(d.n) || !isValidPeerId(d.from) || typeof d.json !== 'string' || typeof d.at !== 'number') return undefined
    if (d.seq !== undefined && !isCount(d.seq)) return undefined
    replay.push(d.seq === undefined ? { n: d.n, from: d.from, json: d.json, at: d.at } : { n: d.n, from: d.from, json: d.json, seq: d.seq, at: d.at })
  }
  const queued: RemoteMessage[] = []
  for (const e of h.queued) {
    const m = parseRemoteMessage(e)
    if (m === undefined || m.to !== h.id) return undefined
    queued.push(m)
  }
  if (!h.watches.every(isValidPeerId)) return undefined
  const seen: Array<[number, boolean]> = []
  for (const e of h.seen) {
    if (!Array.isArray(e) || e.length !== 2 || !isCount(e[0]) || typeof e[1] !== 'boolean') return undefined
    seen.push([e[0], e[1]])
  }
  return { ref: h.ref, id: h.id, session: h.session, nextN: h.nextN, replay, queued, watches: [...h.watches], seen }
}
