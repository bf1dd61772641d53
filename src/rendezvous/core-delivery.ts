import type { ResolvedRendezvousOptions } from './core-options.js'
import { messageFrame, type Conn, type Session } from './core-session.js'
import type { DropReason, RendezvousAction } from './core-types.js'
import { heldSize, type ByteBudget } from './queue.js'

/**
 * Delivery to a live connection: numbering (`n`) and the resume buffer of the last messages delivered in each
 * session (bounded in count, bytes, age and by the shared ByteBudget), replayed after an abrupt reconnect.
 */
export class Delivery {
  /** Messages handed to a recipient's connection. */
  relayed = 0

  constructor (private readonly options: ResolvedRendezvousOptions, private readonly budget: ByteBudget, private readonly dropped: Record<DropReason, number>) {}

  /**
   * Hand a message to `target`'s live connection, numbering it and keeping it in the resume buffer (as JSON text,
   * charged at its heap size; `json` when the caller already has it).
   */
  deliver (target: Session, from: string, data: unknown, json: string | undefined, seq: number | undefined, now: number): RendezvousAction {
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
        this.trim(target, now)
      }
    }
    return { type: 'send', conn: conn.id, frame: messageFrame(from, data, seq, n) }
  }

  /** The buffered messages after `received` again, to `s`'s (new) connection. */
  replay (s: Session, received: number): RendezvousAction[] {
    const conn = s.conn as Conn
    const out: RendezvousAction[] = []
    for (const d of s.replay) {
      if (d.n > received) out.push({ type: 'send', conn: conn.id, frame: messageFrame(d.from, JSON.parse(d.json), d.seq, d.n) })
    }
    return out
  }

  /** Drop buffered messages beyond the bounds or older than queueTtlMs. */
  trim (s: Session, now: number): void {
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

  /** Let go of `s`'s whole buffer. */
  release (s: Session): void {
    this.budget.used -= s.replayBytes
    s.replay = []
    s.replayBytes = 0
  }
}
