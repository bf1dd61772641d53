/**
 * A token bucket (the classic traffic-shaping meter): `rate` tokens are added per second up to `burst`; an operation
 * costing `n` tokens passes when that many are present. Used for per-allocation bandwidth caps and for the
 * failed-authentication rate limit. Time is injected (milliseconds), so it is sans-IO.
 */
export class TokenBucket {
  private tokens: number
  private last: number

  /**
   * @param rate tokens per second (must be > 0)
   * @param burst bucket size (the most that can pass at once after an idle period)
   * @param now the current time in milliseconds
   */
  constructor (readonly rate: number, readonly burst: number, now: number) {
    this.tokens = burst
    this.last = now
  }

  private refill (now: number): void {
    if (now > this.last) {
      this.tokens = Math.min(this.burst, this.tokens + (now - this.last) * this.rate / 1000)
      this.last = now
    }
  }

  /** Take `n` tokens if available; false (and nothing taken) otherwise. */
  take (n: number, now: number): boolean {
    this.refill(now)
    if (this.tokens < n) return false
    this.tokens -= n
    return true
  }

  /** Whether at least `n` tokens are available, without taking them. */
  peek (n: number, now: number): boolean {
    this.refill(now)
    return this.tokens >= n
  }

  /** Whether the bucket has refilled completely (an idle entry that can be forgotten). */
  isFull (now: number): boolean {
    this.refill(now)
    return this.tokens >= this.burst
  }
}

/**
 * Token buckets keyed by a string (a source IP), with a cap on how many keys are remembered: when full, the
 * oldest entry is forgotten (a forgotten key starts again with a full bucket). `sweep()` drops full buckets.
 */
export class KeyedTokenBuckets {
  private readonly buckets = new Map<string, TokenBucket>()

  constructor (readonly rate: number, readonly burst: number, readonly maxKeys: number) {}

  /** Take `n` tokens from `key`'s bucket; false when it is empty. */
  take (key: string, n: number, now: number): boolean {
    return this.bucket(key, now).take(n, now)
  }

  /** Whether `key` still has `n` tokens, without taking them. */
  peek (key: string, n: number, now: number): boolean {
    const b = this.buckets.get(key)
    return b === undefined ? n <= this.burst : b.peek(n, now)
  }

  private bucket (key: string, now: number): TokenBucket {
    let b = this.buckets.get(key)
    if (b === undefined) {
      if (this.buckets.size >= this.maxKeys) {
        const oldest = this.buckets.keys().next().value
        if (oldest !== undefined) this.buckets.delete(oldest)
      }
      b = new TokenBucket(this.rate, this.burst, now)
      this.buckets.set(key, b)
    }
    return b
  }

  /** Forget buckets that have refilled (nothing to remember about those keys). */
  sweep (now: number): void {
    for (const [key, b] of this.buckets) if (b.isFull(now)) this.buckets.delete(key)
  }

  /** How many keys are remembered. */
  get size (): number { return this.buckets.size }
}
