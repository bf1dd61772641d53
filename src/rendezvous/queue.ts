/**
 * Store-and-forward for offline peers: one FIFO per recipient id, bounded in count and bytes per recipient, in
 * recipients, in bytes per sender (and, for recipients the server does not know, in messages and bytes per sender),
 * and (with the resume buffers) in total bytes through a shared ByteBudget; entries expire after a TTL.
 * Bytes are heap bytes as the server holds them (heldSize), not wire bytes. Sans-IO: time is passed in.
 */

/**
 * Bytes charged per held message on top of its strings: the entry object (about ten 8-byte slots), the string
 * headers, the expiry as a heap number and the array slot, rounded up. Measured V8 costs are below this.
 */
export const HELD_ENTRY_OVERHEAD = 128

/**
 * What the server's heap holds for one queued or replayable message, conservatively: the message's JSON text and
 * the sender id at 2 bytes a character (V8 stores a string with any non-Latin-1 character as UTF-16), plus
 * HELD_ENTRY_OVERHEAD. Queues keep `data` as that JSON text, never as the parsed value, whose heap size can be tens
 * of times its wire size (`[{},{},…]`: 3 wire bytes, ~50 heap bytes per element).
 */
export function heldSize (from: string, json: string): number {
  return 2 * (json.length + from.length) + HELD_ENTRY_OVERHEAD
}

/** A message held for later delivery. `json` is its `data` as JSON text; `size` is heldSize(from, json). */
export interface HeldMessage {
  readonly from: string
  readonly json: string
  readonly seq?: number
  readonly size: number
  readonly expiresAt: number
  /** The recipient had no session when this was queued: counted against the sender's unknown-recipient bounds. */
  readonly unknownRecipient: boolean
}

/** A shared count of bytes held by queues and resume buffers, with a ceiling. */
export class ByteBudget {
  used = 0
  constructor (readonly limit: number) {}
  /** Whether `n` more bytes fit. */
  fits (n: number): boolean { return this.used + n <= this.limit }
}

/** Why a message could not be queued. `unknown-per-sender` maps to the wire code `unknown_recipient`. */
export type QueueRefusal = 'per-peer-count' | 'per-peer-bytes' | 'per-sender-bytes' | 'unknown-per-sender' | 'total-bytes' | 'recipients'

interface Fifo { items: HeldMessage[], head: number, bytes: number }

interface SenderTally { bytes: number, unknown: number, unknownBytes: number }

/** Limits of OfflineQueues. */
export interface OfflineQueueLimits {
  readonly maxPerPeer: number
  readonly maxBytesPerPeer: number
  readonly maxRecipients: number
  /** Bytes one sender may hold in all queues (default: unlimited). */
  readonly maxBytesPerSender?: number
  /** Messages one sender may hold for recipients without a session (default: unlimited). */
  readonly maxUnknownPerSender?: number
  /** Bytes one sender may hold for recipients without a session (default: unlimited). */
  readonly maxUnknownBytesPerSender?: number
}

/** Per-recipient FIFOs of messages for offline peers. */
export class OfflineQueues {
  private readonly queues = new Map<string, Fifo>()
  private readonly senders = new Map<string, SenderTally>()
  private count = 0
  private unknownCount = 0

  constructor (private readonly limits: OfflineQueueLimits, private readonly budget: ByteBudget) {}

  /** Messages held now, in all queues. */
  get size (): number { return this.count }
  /** Messages held now that were queued for a recipient without a session. */
  get unknownSize (): number { return this.unknownCount }
  /** Recipients with a queue. */
  get recipients (): number { return this.queues.size }

  /** The recipients with a queue now. */
  ids (): string[] { return [...this.queues.keys()] }

  /** Messages held for `id` (expired ones included until the next sweep). */
  lengthFor (id: string): number {
    const q = this.queues.get(id)
    return q === undefined ? 0 : q.items.length - q.head
  }

  /** What `from` holds in the queues now: bytes in all, and messages and bytes for unknown recipients. */
  heldBy (from: string): { bytes: number, unknown: number, unknownBytes: number } {
    const t = this.senders.get(from)
    return t === undefined ? { bytes: 0, unknown: 0, unknownBytes: 0 } : { ...t }
  }

  /** Queue `m` for `id`; returns why not when a bound would be exceeded (nothing is queued then). */
  push (id: string, m: HeldMessage, now: number): QueueRefusal | undefined {
    let q = this.queues.get(id)
    if (q !== undefined) this.expire(id, q, now)
    q = this.queues.get(id)
    const l = this.limits
    const t = this.senders.get(m.from)
    if (m.unknownRecipient) {
      if ((t?.unknown ?? 0) + 1 > (l.maxUnknownPerSender ?? Infinity)) return 'unknown-per-sender'
      if ((t?.unknownBytes ?? 0) + m.size > (l.maxUnknownBytesPerSender ?? Infinity)) return 'unknown-per-sender'
    }
    if (q === undefined && this.queues.size >= l.maxRecipients) return 'recipients'
    const length = q === undefined ? 0 : q.items.length - q.head
    if (length >= l.maxPerPeer) return 'per-peer-count'
    if ((q?.bytes ?? 0) + m.size > l.maxBytesPerPeer) return 'per-peer-bytes'
    if ((t?.bytes ?? 0) + m.size > (l.maxBytesPerSender ?? Infinity)) return 'per-sender-bytes'
    if (!this.budget.fits(m.size)) return 'total-bytes'
    if (q === undefined) {
      q = { items: [], head: 0, bytes: 0 }
      this.queues.set(id, q)
    }
    q.items.push(m)
    q.bytes += m.size
    this.budget.used += m.size
    this.count++
    const tally = t ?? { bytes: 0, unknown: 0, unknownBytes: 0 }
    tally.bytes += m.size
    if (m.unknownRecipient) { tally.unknown++; tally.unknownBytes += m.size; this.unknownCount++ }
    if (t === undefined) this.senders.set(m.from, tally)
    return undefined
  }

  /** Remove and return every unexpired message for `id`, oldest first; `expired` counts the ones dropped. */
  take (id: string, now: number): { messages: HeldMessage[], expired: number } {
    const q = this.queues.get(id)
    if (q === undefined) return { messages: [], expired: 0 }
    this.queues.delete(id)
    const all = q.items.slice(q.head)
    this.count -= all.length
    this.budget.used -= q.bytes
    for (const m of all) this.release(m)
    const messages = all.filter(m => m.expiresAt > now)
    return { messages, expired: all.length - messages.length }
  }

  /** Drop expired messages everywhere; returns how many. */
  sweep (now: number): number {
    let dropped = 0
    for (const [id, q] of this.queues) dropped += this.expire(id, q, now)
    return dropped
  }

  /** Drop everything. */
  clear (): void {
    for (const q of this.queues.values()) this.budget.used -= q.bytes
    this.queues.clear()
    this.senders.clear()
    this.count = 0
    this.unknownCount = 0
  }

  /** Take a message that leaves the queues off its sender's tally. */
  private release (m: HeldMessage): void {
    const t = this.senders.get(m.from)
    if (t === undefined) return
    t.bytes -= m.size
    if (m.unknownRecipient) { t.unknown--; t.unknownBytes -= m.size; this.unknownCount-- }
    if (t.bytes <= 0 && t.unknown <= 0) this.senders.delete(m.from)
  }

  private expire (id: string, q: Fifo, now: number): number {
    let dropped = 0
    // Entries are in arrival order with one TTL, so expired ones are a prefix.
    while (q.head < q.items.length && q.items[q.head].expiresAt <= now) {
      const m = q.items[q.head]
      q.bytes -= m.size
      this.budget.used -= m.size
      this.release(m)
      q.head++
      dropped++
    }
    this.count -= dropped
    if (q.head >= q.items.length) this.queues.delete(id)
    // Let go of the expired entries at once (at most maxPerPeer are copied): they must not stay reachable.
    else if (q.head > 0) { q.items = q.items.slice(q.head); q.head = 0 }
    return dropped
  }
}
