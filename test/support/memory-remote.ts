import type { RemoteMessage, SessionHandover, SessionRequest } from '../../src/rendezvous/core-types.js'
import type { RendezvousRemote, RendezvousRemoteHandlers } from '../../src/rendezvous/remote.js'

/**
 * Rendezvous nodes linked in memory (a RendezvousRemote for tests, beside the Redis one): whatever a node sends
 * arrives at the others on a later turn of the event loop, in the order it was sent (one FIFO for the whole hub, so
 * each pair of nodes is an ordered channel, as Redis pub/sub over one connection per node is). `drop` silences a
 * node: nothing reaches it and nothing leaves it (a node that died).
 */
export class MemoryRendezvousHub {
  private readonly nodes = new Map<string, MemoryRendezvousRemote>()
  /** Nodes that neither hear nor speak. */
  readonly dropped = new Set<string>()

  /** A remote for node `node` of this hub. */
  remote (node: string): MemoryRendezvousRemote {
    const r = new MemoryRendezvousRemote(this, node)
    this.nodes.set(node, r)
    return r
  }

  /** Carry `deliver` to node `to` on a later turn; whether `to` is there to take it. */
  send (from: string, to: string, deliver: (h: RendezvousRemoteHandlers) => void): boolean {
    const target = this.nodes.get(to)
    if (target?.handlers === undefined || target.closed || this.dropped.has(to) || this.dropped.has(from)) return false
    setImmediate(() => { if (target.handlers !== undefined && !target.closed && !this.dropped.has(to)) deliver(target.handlers) })
    return true
  }

  /** Carry `deliver` to every other node. */
  broadcast (from: string, deliver: (h: RendezvousRemoteHandlers) => void): void {
    for (const node of this.nodes.keys()) if (node !== from) this.send(from, node, deliver)
  }
}

/** One node's end of a MemoryRendezvousHub. */
export class MemoryRendezvousRemote implements RendezvousRemote {
  handlers: RendezvousRemoteHandlers | undefined
  closed = false

  constructor (private readonly hub: MemoryRendezvousHub, readonly node: string) {}

  /** Start taking what the other nodes send (start the nodes before their peers register: no rosters here). */
  start (handlers: RendezvousRemoteHandlers): void {
    this.handlers = handlers
  }

  async forward (node: string, message: RemoteMessage): Promise<boolean> {
    return this.hub.send(this.node, node, (h) => { h.message(message) })
  }

  announce (event: { readonly type: 'online', readonly id: string, readonly at: number } | { readonly type: 'offline', readonly id: string }): void {
    this.hub.broadcast(this.node, (h) => {
      if (event.type === 'online') h.online(this.node, event.id, event.at)
      else h.offline(this.node, event.id)
    })
  }

  requestSession (request: SessionRequest): void {
    this.hub.broadcast(this.node, (h) => { h.sessionRequest(this.node, request) })
  }

  async handOver (node: string, handover: SessionHandover): Promise<boolean> {
    return this.hub.send(this.node, node, (h) => { h.sessionHandover(this.node, handover) })
  }

  async close (): Promise<void> { this.closed = true }
}
