import type { ResolvedRendezvousOptions } from './core-options.js'
import type { Delivery } from './core-delivery.js'
import { SEEN_SEQS, rememberSeq, remoteMessage, type Session } from './core-session.js'
import type { HandedOverDelivery, SessionHandover } from './core-types.js'
import type { Watches } from './core-watches.js'
import { heldSize, type ByteBudget, type HeldMessage } from './queue.js'

/**
 * Sessions moving between rendezvous nodes (a client that resumes at another node than the one holding its
 * session): what the holder sends, and how the taker rebuilds the session from it. The protocol steps are in
 * RendezvousCore (sessionRequest, takeOver, handOverFailed); docs/rendezvous.md, "Several servers".
 */

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
