import { randomInt } from 'node:crypto'

/**
 * Relay port bookkeeping for one (address family, protocol) pair: which ports in the configured range are in use
 * by allocations, reserved by a RESERVATION-TOKEN (RFC 8656 §7.2, EVEN-PORT with R=1), or found busy by the OS.
 * Pure data: the adapter binds, and reports back when a port turned out to be taken by someone else.
 */
export class PortPool {
  private readonly used = new Set<number>()
  /** Ports some other process holds: skip them until the time given. */
  private readonly foreign = new Map<number, number>()

  constructor (readonly low: number, readonly high: number) {}

  /** How many ports the range has. */
  get capacity (): number { return this.high - this.low + 1 }
  /** How many are taken by allocations or reservations. */
  get inUse (): number { return this.used.size }

  private free (port: number, now: number): boolean {
    if (port < this.low || port > this.high || this.used.has(port)) return false
    const until = this.foreign.get(port)
    if (until === undefined) return true
    if (until <= now) { this.foreign.delete(port); return true }
    return false
  }

  /**
   * Pick and mark a port: any, or an even one (EVEN-PORT), or an even one whose successor is also free and then
   * marked too (EVEN-PORT R=1). Starts at a random place in the range (RFC 8656 §7.2 recommends unpredictable
   * relay ports) and probes linearly. Undefined when none is left.
   */
  take (now: number, want: 'any' | 'even' | 'even-pair' = 'any'): number | undefined {
    const n = this.capacity
    if (n <= 0) return undefined
    const start = randomInt(0, n)
    for (let i = 0; i < n; i++) {
      const port = this.low + ((start + i) % n)
      if (want !== 'any' && (port & 1) !== 0) continue
      if (!this.free(port, now)) continue
      if (want === 'even-pair') {
        if (!this.free(port + 1, now)) continue
        this.used.add(port + 1)
      }
      this.used.add(port)
      return port
    }
    return undefined
  }

  /** Mark a specific port (a reserved one being claimed). */
  claim (port: number): void { this.used.add(port) }

  /** Return a port to the pool. */
  release (port: number): void { this.used.delete(port) }

  /** The OS said the port is taken by someone else: release it and avoid it for `forMs`. */
  markForeign (port: number, now: number, forMs = 60_000): void {
    this.used.delete(port)
    this.foreign.set(port, now + forMs)
  }
}
