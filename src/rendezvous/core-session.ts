import { randomBytes } from 'node:crypto'
import { TokenBucket } from '../util/token-bucket.js'
import type { ResolvedRendezvousOptions } from './core-options.js'
import type { ConnId, RemoteMessage } from './core-types.js'
import type { ObservedAddress, ServerFrame } from './protocol.js'

/** Sessions and connections of RendezvousCore: what it keeps per registered id and per WebSocket. */

/** A delivered message kept for replay; `json` is its data as JSON text, `size` its heldSize. */
export interface Delivered { readonly n: number, readonly from: string, readonly json: string, readonly seq?: number, readonly size: number, readonly at: number }

/** A registered id's session: it outlives its connection for sessionTtlMs, so that it can be resumed. */
export interface Session {
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

/** One WebSocket connection, registered or not. */
export interface Conn {
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
  /** The SessionRequest `ref` while this connection's `resume` waits for another node's handover. */
  resuming?: string
}

/** How many recent `seq`s per session are remembered to recognise retransmissions. */
export const SEEN_SEQS = 1024

/** Remember that `seq` was accepted (queued or delivered), forgetting the oldest beyond SEEN_SEQS. */
export function rememberSeq (session: Session, seq: number, queued: boolean): void {
  session.seen.set(seq, queued)
  if (session.seen.size > SEEN_SEQS) session.seen.delete(session.seen.keys().next().value as number)
}

/** The sessions of a core, by id and by key, and how many have a live connection. */
export class SessionTable {
  /** id → its session (one per id). */
  readonly byId = new Map<string, Session>()
  /** session key → session. */
  readonly byKey = new Map<string, Session>()
  /** Sessions with a live connection. */
  online = 0

  constructor (private readonly options: ResolvedRendezvousOptions) {}

  /** A new session for `peerId`, replacing `previous` in the tables (whose rate-limit state it inherits). */
  create (peerId: string, previous: Session | undefined, now: number, key = randomBytes(18).toString('base64url')): Session {
    const rl = this.options.rateLimit
    const session: Session = {
      key,
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
    this.byId.set(peerId, session)
    this.byKey.set(session.key, session)
    return session
  }

  /** Set or clear a session's live connection, keeping the online count. */
  setConn (session: Session, conn: Conn | undefined): void {
    if (session.conn === undefined && conn !== undefined) this.online++
    if (session.conn !== undefined && conn === undefined) this.online--
    session.conn = conn
    if (conn !== undefined) conn.session = session
  }

  /** Take `s` out of the tables (its connection cleared). */
  remove (s: Session): void {
    this.setConn(s, undefined)
    this.byKey.delete(s.key)
    if (this.byId.get(s.peerId) === s) this.byId.delete(s.peerId)
  }

  /** The ids online here, with their registration times. */
  roster (): Array<{ id: string, at: number }> {
    const out: Array<{ id: string, at: number }> = []
    for (const s of this.byId.values()) if (s.conn !== undefined) out.push({ id: s.peerId, at: s.registeredAt })
    return out
  }
}

/** A RemoteMessage (`seq` only when the sender gave one). */
export function remoteMessage (to: string, from: string, json: string, seq: number | undefined, expiresAt: number): RemoteMessage {
  return seq === undefined ? { to, from, json, expiresAt } : { to, from, json, seq, expiresAt }
}

/** A `message` frame (`seq` only when the sender gave one). */
export function messageFrame (from: string, data: unknown, seq: number | undefined, n: number): ServerFrame {
  return seq === undefined ? { type: 'message', from, data, n } : { type: 'message', from, data, seq, n }
}
