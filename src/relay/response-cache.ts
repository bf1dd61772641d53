/**
 * Recent responses by 5-tuple and transaction id, so a retransmitted request gets the same answer (RFC 8489 §6.3.1:
 * "the server [...] can store the response [...] and resend it"; RFC 8656 §7.2 relies on it for Allocate, which
 * is not idempotent). Bounded in size and age; oldest entries go first.
 */
export class ResponseCache {
  private readonly entries = new Map<string, { data: Buffer | 'pending', expiresAt: number }>()

  constructor (private readonly ttlMs: number, private readonly maxEntries: number) {}

  /** The cached answer ('pending' while the request is still being processed), or undefined. */
  get (key: string, now: number): Buffer | 'pending' | undefined {
    const e = this.entries.get(key)
    if (e === undefined) return undefined
    if (e.expiresAt <= now) { this.entries.delete(key); return undefined }
    return e.data
  }

  /** Remember an answer (or mark the request pending). */
  set (key: string, data: Buffer | 'pending', now: number): void {
    this.entries.delete(key)
    if (this.entries.size >= this.maxEntries) {
      const oldest = this.entries.keys().next().value
      if (oldest !== undefined) this.entries.delete(oldest)
    }
    this.entries.set(key, { data, expiresAt: now + this.ttlMs })
  }

  /** Forget an entry (a pending request that failed before answering). */
  delete (key: string): void { this.entries.delete(key) }

  /** Drop expired entries. Entries are in insertion order with one TTL, so stop at the first live one. */
  sweep (now: number): void {
    for (const [key, e] of this.entries) {
      if (e.expiresAt > now) break
      this.entries.delete(key)
    }
  }

  get size (): number { return this.entries.size }
}
