import type { ObservedAddress, ServerFrame } from './protocol.js'
import type { TokenFailure } from './token.js'

/** Inputs and outputs of RendezvousCore (the sans-IO rendezvous server). */

/** A connection handle chosen by the adapter (any number unique among open connections). */
export type ConnId = number

/** Something that happened, for the server's events. */
export type RendezvousEvent =
  | { readonly type: 'online', readonly id: string, readonly session: string, readonly observed: ObservedAddress, readonly resumed: boolean, readonly at: number }
  | { readonly type: 'offline', readonly id: string, readonly session: string }
  | { readonly type: 'auth-failure', readonly id: string, readonly reason: TokenFailure, readonly observed: ObservedAddress }

/**
 * A message on its way to the node where its recipient is online (a rendezvous spread over several servers, see
 * RendezvousRemote). `json` is the `data` as JSON text; `expiresAt` is the original queue deadline, kept across hops
 * so that a message cannot live longer by moving between nodes.
 */
export interface RemoteMessage {
  readonly to: string
  readonly from: string
  readonly json: string
  readonly seq?: number
  readonly expiresAt: number
}

/**
 * A node asks the others for session `session` of `id`: a client registered there with `resume` naming a session
 * that node does not hold. Only the node holding a session of that key *for that id* answers (with a
 * SessionHandover, matched by `ref`); the others stay silent.
 */
export interface SessionRequest {
  readonly ref: string
  readonly id: string
  readonly session: string
  /** The client's last `n` seen (its `received`), if it gave one. */
  readonly received?: number
}

/** A delivered message of a session's resume buffer, as it moves between nodes (`at`: when it was delivered). */
export interface HandedOverDelivery {
  readonly n: number
  readonly from: string
  readonly json: string
  readonly seq?: number
  readonly at: number
}

/**
 * A session moving from the node that held it to the node where its client resumed it: everything the holder kept
 * for it. The holder has forgotten it once this is sent (and takes it back if it cannot be handed over).
 */
export interface SessionHandover {
  /** The SessionRequest's `ref`. */
  readonly ref: string
  readonly id: string
  readonly session: string
  /** The `n` the next delivery in this session gets. */
  readonly nextN: number
  /** Messages delivered after the client's `received`, oldest first: the new node replays them. */
  readonly replay: readonly HandedOverDelivery[]
  /** Messages the holder had queued for the id (offline there), oldest first: delivered after the replay. */
  readonly queued: readonly RemoteMessage[]
  /** The ids the session watches. */
  readonly watches: readonly string[]
  /** The session's recently accepted `seq`s and whether each was queued (retransmissions are acked, not re-sent). */
  readonly seen: ReadonlyArray<readonly [number, boolean]>
}

/** What the core asks its adapter to do. */
export type RendezvousAction =
  | { readonly type: 'send', readonly conn: ConnId, readonly frame: ServerFrame }
  /**
   * Hand `message` to rendezvous node `node`, where its recipient is online. With `ack`, the sender waits for it:
   * the adapter sends `{ type: 'ack', seq, queued: false }` to `ack.conn` once the node has taken the message, or
   * calls RendezvousCore.forwardFailed when it could not be handed over.
   */
  | { readonly type: 'forward', readonly node: string, readonly message: RemoteMessage, readonly ack?: { readonly conn: ConnId, readonly seq: number } }
  /**
   * Ask the other nodes for a session (RendezvousRemote.requestSession). The adapter calls
   * RendezvousCore.resumeTimedOut(ref) after `timeoutMs` unless the answer came first (RendezvousCore.takeOver).
   */
  | { readonly type: 'session-request', readonly request: SessionRequest, readonly timeoutMs: number }
  /**
   * Hand a session over to node `node` (RendezvousRemote.handOver), which asked for it. If it cannot be handed over,
   * the adapter gives it back with RendezvousCore.handOverFailed.
   */
  | { readonly type: 'session-handover', readonly node: string, readonly handover: SessionHandover }
  | { readonly type: 'close', readonly conn: ConnId, readonly code: number, readonly reason: string }
  | { readonly type: 'event', readonly event: RendezvousEvent }

/** Reasons a frame or message was dropped, counted in stats(). */
export const DROP_REASONS = ['invalid', 'too_large', 'rate_limited', 'queue_full', 'unknown_recipient', 'expired', 'replay_evicted'] as const
/** A drop reason. */
export type DropReason = typeof DROP_REASONS[number]

/** Counters and gauges of a RendezvousCore. */
export interface RendezvousStats {
  /** Registered peers with a live connection. */
  readonly peersOnline: number
  /** Sessions, including dropped ones that can still be resumed. */
  readonly sessions: number
  /** Connections that have not registered yet. */
  readonly pendingConnections: number
  /** Connections refused at once because of maxPending or maxPendingPerIp. */
  readonly pendingRefused: number
  /** Messages handed to a recipient's connection (live or from its queue). */
  readonly messagesRelayed: number
  /** Messages handed to other rendezvous nodes, where their recipients were online (RendezvousRemote). */
  readonly messagesForwarded: number
  /** Peers online at other rendezvous nodes, as last announced. */
  readonly peersElsewhere: number
  /** Sessions this node handed over to another node, where their clients resumed them. */
  readonly sessionsHandedOver: number
  /** Sessions this node took over from another node (resumed here, held there). */
  readonly sessionsTakenOver: number
  /** Messages ever put in an offline queue. */
  readonly messagesQueued: number
  /** Messages waiting in offline queues now. */
  readonly queuedNow: number
  /** Of queuedNow, messages queued for ids that had no session (bounded per sender). */
  readonly queuedForUnknownNow: number
  /** Heap bytes held by queues and resume buffers now (heldSize of each message). */
  readonly bufferedBytes: number
  /** Dropped frames and messages by reason. */
  readonly dropped: Readonly<Record<DropReason, number>>
}
