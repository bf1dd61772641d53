/**
 * Store-and-forward for offline peers: one FIFO per recipient id, bounded in count and bytes per recipient, in
 * recipients, and (with the resume buffers) in total bytes through a shared ByteBudget; entries expire after a TTL.
 * Sans-IO: time is passed in.
 */

/** A message held for later delivery. `size` is the byte size charged for it. */
export interface HeldMessage {
  readonly from: string
  readonly data: unknown
  readonly seq?: number
  readonly size: number
  readonly expiresAt: number
}

/** A shared count of bytes held by queues and resume buffers, with a ceiling. */
export class ByteBudget {
  used = 0
  constructor (readonly limit: number) {}
  /** Whether `n` more bytes fit. */
  fits (n: number): boolean { return this.used + n <= this.limit }
}

/** Why a message could not be queued. */
export type QueueRefusal = 'per-peer-count' | 'per-peer-bytes' | 'total-bytes' | 'recipients'

interface Fifo { items: HeldMessage[], head: number, bytes: number }

/** Limits of OfflineQueues. */
export interface OfflineQueueLimits {
  readonly maxPerPeer: number
  readonly maxBytesPerPeer: number
  readonly maxRecipients: number
}

/** Per-recipient FIFOs of messages for offline peers. */
export class OfflineQueues {
  private readonly queues = new Map<string, Fifo>()
  private count = 0

  constructor (private readonly limits: OfflineQueueLimits, private readonly budget: ByteBudget) {}

  /** Messages held now, in all queues. */
  get size (): number { return this.count }
  /** Recipients with a queue. */
  get recipients (): number { return this.queues.size }

  /** Messages held for `id` (expired ones included until the next sweep). */
  lengthFor (id: string): number {
    const q = this.queues.get(id)
    return q === undefined ? 0 : q.items.length - q.head
  }

  /** Queue `m` for `id`; returns why not when a bound would be exceeded (nothing is queued then). */
  push (id: string, m: HeldMessage, now: number): QueueRefusal | undefined {
    let q = this.queues.get(id)
    if (q !== undefined) this.expire(id, q, now)
    q = this.queues.get(id)
    if (q === undefined && this.queues.size >= this.limits.maxRecipients) return 'recipients'
    const length = q === undefined ? 0 : q.items.length - q.head
    if (length >= this.limits.maxPerPeer) return 'per-peer-count'
    if ((q?.bytes ?? 0) + m.size > this.limits.maxBytesPerPeer) return 'per-peer-bytes'
    if (!this.budget.fits(m.size)) return 'total-bytes'
    if (q === undefined) {
      q = { items: [], head: 0, bytes: 0 }
      this.queues.set(id, q)
    }
    q.items.push(m)
    q.bytes += m.size
    this.budget.used += m.size
    this.count++
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
    this.count = 0
  }

  private expire (id: string, q: Fifo, now: number): number {
    let dropped = 0
    // Entries are in arrival order with one TTL, so expired ones are a prefix.
    while (q.head < q.items.length && q.items[q.head].expiresAt <= now) {
      q.bytes -= q.items[q.head].size
      this.budget.used -= q.items[q.head].size
      q.head++
      dropped++
    }
    this.count -= dropped
    if (q.head >= q.items.length) this.queues.delete(id)
    else if (q.head > 64 && q.head * 2 > q.items.length) { q.items = q.items.slice(q.head); q.head = 0 }
    return dropped
  }
}
