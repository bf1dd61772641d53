import { createClient } from 'redis'
import { TransportError } from '../errors.js'
import { createLogger } from '../log.js'
import { formatEndpoint, parseEndpoint, type Endpoint } from '../net/endpoint.js'
import type { TurnServer } from './turn-server.js'

const log = createLogger('natcheck:relay:registry')

/** A published state expires after this many publish intervals (a node that stops publishing drops out). */
const EXPIRY_INTERVALS = 5

/**
 * A registry of relay nodes in Redis, for several relays that share one realm (`natcheck relay --redis`): each
 * process publishes its state (allocations in total and per user, capacity, draining) under
 * `natkit/relay/<realm>/node/<address>/<worker>` with a short expiry, and reads the others'. From that:
 *
 * - quotas across nodes: TurnServerCore.quotaElsewhere adds the other nodes' allocations (eventually consistent:
 *   states are a publish interval old, so a burst can pass a quota by what arrives within one interval);
 * - 300 Try Alternate: a draining or full node names the least-loaded healthy node (TurnServerCore.alternate), and
 *   clients that follow ALTERNATE-SERVER (natkit's TurnClient, browsers) allocate there.
 *
 * A node whose state has expired (killed, partitioned) drops out. When Redis is unreachable nothing is published and
 * the last states read count as long as they would have lived in Redis (5 intervals from the last read); after that
 * this node's quotas count its own allocations only, so a node that died meanwhile holds no quota forever.
 */
export interface RedisNodeRegistryOptions {
  readonly url: string
  readonly realm: string
  /** This node's client-facing address, as other nodes should send clients to it. */
  readonly node: Endpoint
  /** This process's worker number on the node (0 without workers). */
  readonly worker?: number
  /** Publish and read every intervalMs (default 1000); states expire after 5 intervals. */
  readonly intervalMs?: number
}

/** One process's published state. */
export interface RelayNodeState {
  readonly node: string
  readonly worker: number
  readonly allocations: number
  readonly capacity: number
  readonly draining: boolean
  readonly users: Readonly<Record<string, number>>
}

/** Relay nodes in Redis (see the file comment). */
export class RedisNodeRegistry {
  private others: RelayNodeState[] = []
  /** When `others` was last read from Redis (ms); they are dropped EXPIRY_INTERVALS intervals later. */
  private readAt = 0
  private readonly users = new Map<string, number>()
  private readonly userOf = new Map<number, string>()
  private allocations = 0
  private timer: NodeJS.Timeout | undefined
  private busy = false
  private closed = false
  private server: TurnServer | undefined
  private key: string
  private current: Endpoint
  private readonly prefix: string

  private constructor (private readonly options: RedisNodeRegistryOptions, private readonly client: ReturnType<typeof createClient>) {
    this.prefix = `natkit/relay/${options.realm}/node/`
    this.current = options.node
    this.key = this.keyOf(options.node)
  }

  private keyOf (node: Endpoint): string {
    return `${this.prefix}${formatEndpoint(node)}/${this.options.worker ?? 0}`
  }

  /** The client-facing address this node publishes. */
  get node (): Endpoint { return this.current }

  /**
   * This node's client-facing address changed (a reload moved its listeners or its external IP): publish under the
   * new address from now on — other nodes send clients there — and remove the entry under the old one at once
   * (best effort; it would expire anyway).
   */
  async moveTo (node: Endpoint): Promise<void> {
    if (formatEndpoint(node) === formatEndpoint(this.current) || this.closed) return
    const old = this.key
    this.current = node
    this.key = this.keyOf(node)
    log('node address now %s (was %s)', formatEndpoint(node), old)
    try { await this.client.del(old) } catch { /* Redis away: the old entry expires */ }
    await this.tick()
  }

  /** Connect; rejects with TransportError when Redis cannot be reached. */
  static async start (options: RedisNodeRegistryOptions): Promise<RedisNodeRegistry> {
    let connected = false
    const client = createClient({
      url: options.url,
      disableOfflineQueue: true,
      socket: { connectTimeout: 2000, reconnectStrategy: (retries: number, cause: Error) => connected ? Math.min(100 * (retries + 1), 2000) : cause }
    })
    client.once('ready', () => { connected = true })
    client.on('error', (err: Error) => { log.trace('redis: %s', err.message) })
    try {
      await client.connect()
    } catch (err) {
      throw new TransportError(`cannot reach Redis at ${options.url}: ${(err as Error).message}`, { cause: err })
    }
    return new RedisNodeRegistry(options, client)
  }

  /** Follow a server: count its allocations, publish its state, and give its core quotas and alternates across nodes. */
  attach (server: TurnServer): void {
    this.server = server
    server.on('allocation', (e) => {
      this.userOf.set(e.id, e.username); this.allocations++
      this.users.set(e.username, (this.users.get(e.username) ?? 0) + 1)
    })
    server.on('deallocation', (e) => {
      const u = this.userOf.get(e.id)
      if (u === undefined) return
      this.userOf.delete(e.id); this.allocations--
      const n = (this.users.get(u) ?? 1) - 1
      if (n <= 0) this.users.delete(u); else this.users.set(u, n)
    })
    const local = server.core.quotaElsewhere // other workers of this node, if any
    server.core.quotaElsewhere = {
      user: (name) => (local?.user(name) ?? 0) + this.sum(s => s.users[name] ?? 0),
      total: () => (local?.total() ?? 0) + this.sum(s => s.allocations)
    }
    server.core.alternate = () => this.alternate()
    const interval = this.options.intervalMs ?? 1000
    this.timer = setInterval(() => { void this.tick() }, interval)
    this.timer.unref()
    void this.tick()
  }

  /** The other nodes' states last read, while they would still live in Redis. */
  get nodes (): readonly RelayNodeState[] {
    if (this.others.length > 0 && Date.now() - this.readAt > EXPIRY_INTERVALS * (this.options.intervalMs ?? 1000)) {
      log('the other nodes\' states are %d ms old (Redis unreachable): quotas count this node only', Date.now() - this.readAt)
      this.others = []
    }
    return this.others
  }

  private sum (f: (s: RelayNodeState) => number): number {
    let n = 0
    for (const s of this.nodes) n += f(s)
    return n
  }

  /** The least-loaded other node that is not draining and below its capacity. */
  alternate (): Endpoint | undefined {
    const byNode = new Map<string, { allocations: number, capacity: number, draining: boolean }>()
    for (const s of this.nodes) {
      const n = byNode.get(s.node) ?? { allocations: 0, capacity: 0, draining: false }
      // Workers of one node each publish the node's total quota: the node's capacity is that, not their sum.
      byNode.set(s.node, { allocations: n.allocations + s.allocations, capacity: Math.max(n.capacity, s.capacity), draining: n.draining || s.draining })
    }
    let best: { node: string, load: number } | undefined
    for (const [node, n] of byNode) {
      if (n.draining || n.allocations >= n.capacity) continue
      const load = n.allocations / n.capacity
      if (best === undefined || load < best.load) best = { node, load }
    }
    return best === undefined ? undefined : parseEndpoint(best.node, 3478)
  }

  /** Publish this process's state and read the others' (bounded: one at a time). */
  async tick (): Promise<void> {
    if (this.busy || this.closed || this.server === undefined) return
    this.busy = true
    try {
      const core = this.server.core
      const key = this.key
      const state: RelayNodeState = {
        node: formatEndpoint(this.current),
        worker: this.options.worker ?? 0,
        allocations: this.allocations,
        capacity: core.options.totalQuota,
        draining: core.draining,
        users: Object.fromEntries(this.users)
      }
      await this.client.set(key, JSON.stringify(state), { PX: EXPIRY_INTERVALS * (this.options.intervalMs ?? 1000) })
      // moveTo ran meanwhile: the entry just written is under the old address.
      if (key !== this.key) await this.client.del(key)
      const keys: string[] = []
      for await (const k of this.client.scanIterator({ MATCH: `${this.prefix.replace(/[*?[\]\\]/g, (c) => `\\${c}`)}*`, COUNT: 1000 })) keys.push(k)
      const values = keys.length === 0 ? [] : await this.client.mGet(keys)
      const others: RelayNodeState[] = []
      for (const v of values) {
        if (v === null) continue
        try {
          const s = JSON.parse(v) as RelayNodeState
          if (s.node !== state.node && typeof s.allocations === 'number' && typeof s.capacity === 'number') others.push(s)
        } catch { /* a foreign or broken entry: skip */ }
      }
      this.others = others
      this.readAt = Date.now()
    } catch (err) {
      log('registry tick failed: %s', (err as Error).message)
    } finally {
      this.busy = false
    }
  }

  /** Stop publishing, remove this process's entry (best effort), disconnect; idempotent. */
  async close (): Promise<void> {
    if (this.closed) return
    this.closed = true
    if (this.timer !== undefined) clearInterval(this.timer)
    try { await this.client.del(this.key) } catch { /* Redis away: the entry expires */ }
    try { await this.client.disconnect() } catch { /* already closed */ }
  }
}
