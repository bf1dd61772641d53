import { TupleIndex, type Allocation } from './allocation.js'
import { PortPool } from './port-pool.js'

/** A relay port held for a later Allocate with RESERVATION-TOKEN (RFC 8656 §7.2, EVEN-PORT R=1). */
export interface Reservation {
  readonly family: 4 | 6
  readonly port: number
  readonly expiresAt: number
}

/**
 * The TURN server core's tables: allocations by id, by 5-tuple (RFC 8656 §2: one allocation per 5-tuple) and by
 * relay key, the per-user counts the quotas read, the reserved ports, and the relay port pools (one per address
 * family and relay protocol). Bookkeeping only: the protocol rules live in the handlers.
 */
export class AllocationTable {
  /** Allocations by id. */
  readonly byId = new Map<number, Allocation>()
  /** Allocations by 5-tuple. */
  readonly tuples = new TupleIndex()
  /** Allocations by relay key. */
  readonly byRelay = new Map<string, Allocation>()
  /** Reserved ports by RESERVATION-TOKEN (hex). */
  readonly reservations = new Map<string, Reservation>()
  private readonly perUser = new Map<string, number>()
  private pools = new Map<string, PortPool>()

  constructor (private portRange: readonly [number, number]) {}

  /** Allocations held. */
  get size (): number { return this.byId.size }

  /** Allocations held by `username`. */
  userCount (username: string): number { return this.perUser.get(username) ?? 0 }

  /** The port pool of a family and relay protocol. */
  pool (family: 4 | 6, protocol: 'udp' | 'tcp'): PortPool {
    const k = `${family}/${protocol}`
    let p = this.pools.get(k)
    if (p === undefined) { p = new PortPool(this.portRange[0], this.portRange[1]); this.pools.set(k, p) }
    return p
  }

  /** A new port range: fresh pools, with the ports of live allocations claimed again. */
  setPortRange (range: readonly [number, number]): void {
    if (range[0] === this.portRange[0] && range[1] === this.portRange[1]) return
    this.portRange = range
    this.pools = new Map()
    for (const a of this.byId.values()) for (const r of a.relays) this.pool(r.family, a.relayProtocol).claim(r.port)
  }

  /** Enter an allocation in every index. */
  add (alloc: Allocation): void {
    this.byId.set(alloc.id, alloc)
    this.tuples.add(alloc)
    this.perUser.set(alloc.username, this.userCount(alloc.username) + 1)
    for (const r of alloc.relays) this.byRelay.set(r.key, alloc)
  }

  /** Take an allocation out of every index; false when it was not (or no longer) held. */
  delete (alloc: Allocation): boolean {
    if (this.byId.get(alloc.id) !== alloc) return false
    this.byId.delete(alloc.id)
    this.tuples.delete(alloc)
    const n = this.userCount(alloc.username) - 1
    if (n <= 0) this.perUser.delete(alloc.username); else this.perUser.set(alloc.username, n)
    for (const r of alloc.relays) this.byRelay.delete(r.key)
    return true
  }
}
