import type { ObservedAddress, ServerFrame } from './protocol.js'
import type { TokenFailure } from './token.js'

/** Inputs and outputs of RendezvousCore (the sans-IO rendezvous server). */

/** A connection handle chosen by the adapter (any number unique among open connections). */
export type ConnId = number

/** Something that happened, for the server's events. */
export type RendezvousEvent =
  | { readonly type: 'online', readonly id: string, readonly session: string, readonly observed: ObservedAddress, readonly resumed: boolean }
  | { readonly type: 'offline', readonly id: string, readonly session: string }
  | { readonly type: 'auth-failure', readonly id: string, readonly reason: TokenFailure, readonly observed: ObservedAddress }

/** What the core asks its adapter to do. */
export type RendezvousAction =
  | { readonly type: 'send', readonly conn: ConnId, readonly frame: ServerFrame }
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
