import type { RemoteMessage, SessionHandover, SessionRequest } from './core-types.js'

/**
 * The seam between one rendezvous server and the other rendezvous nodes it shares peers with (several relay nodes
 * behind one name, `natcheck relay --redis`). The core never talks to them itself: it keeps a directory of the ids
 * online elsewhere (fed through the handlers below) and returns `forward` actions; the server executes those with
 * `forward` here. RedisRendezvousRemote implements it over Redis pub/sub; tests can link two servers in memory.
 *
 * What an implementation must keep: messages from one node to another arrive in the order they were forwarded
 * (the per-sender order of the rendezvous), and every node hears every announcement at least once while it is
 * connected (after a reconnect it asks for the rosters again: `roster` handlers).
 *
 * Sessions move between nodes when a remote implements `requestSession` and `handOver` (both or neither): a client
 * that resumes at another node continues its session there. A handover to a node must arrive after every message
 * this node forwarded to that node before it, and before every message it forwards there after it (one ordered
 * channel per pair of nodes, as for `forward`).
 */
export interface RendezvousRemote {
  /** This node's name among the nodes (unique; announced with everything it sends). */
  readonly node: string
  /** Start: from now on the handlers are called with what the other nodes send. Called once. */
  start (handlers: RendezvousRemoteHandlers): void
  /** Hand `message` to node `node`. Resolves true once that node has it, false if it could not be handed over. Never rejects. */
  forward (node: string, message: RemoteMessage): Promise<boolean>
  /** Tell the other nodes that `id` registered here at `at`, or went offline here. Best effort, never throws. */
  announce (event: { readonly type: 'online', readonly id: string, readonly at: number } | { readonly type: 'offline', readonly id: string }): void
  /** Ask every other node for a session a client resumed here (best effort, never throws). */
  requestSession? (request: SessionRequest): void
  /** Hand a session over to node `node`, which asked for it. Resolves true once it has it, false if not. Never rejects. */
  handOver? (node: string, handover: SessionHandover): Promise<boolean>
  /** Stop (idempotent). */
  close (): Promise<void>
}

/** What a RendezvousRemote reports to its server. */
export interface RendezvousRemoteHandlers {
  /** Another node handed over a message for an id it saw online here. */
  message (message: RemoteMessage): void
  /** `id` registered at `node` at `at` (that node's clock, ms). */
  online (node: string, id: string, at: number): void
  /** `id` went offline at `node`. */
  offline (node: string, id: string): void
  /** The complete list of ids online at `node` (sent after a (re)connect). */
  roster (node: string, entries: ReadonlyArray<{ id: string, at: number }>): void
  /** `node` stopped announcing itself: everything it had online is gone. */
  nodeGone (node: string): void
  /** Node `node` asks for a session a client resumed there. */
  sessionRequest (node: string, request: SessionRequest): void
  /** Node `node` hands over a session asked for here. */
  sessionHandover (node: string, handover: SessionHandover): void
  /** The ids online here, for a node that asks. */
  localRoster (): Array<{ id: string, at: number }>
}
