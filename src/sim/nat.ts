import { InvalidArgumentError } from '../errors.js'
import { endpointKey, type Endpoint } from '../net/endpoint.js'
import { SIM_NAT_PRESET_OPTIONS, type SimNatPreset } from './presets.js'
import type { Prng } from './prng.js'
import { createRealm, type Realm } from './realm.js'
import type { SimBehaviour, SimDropReason, SimNatOptions, SimPacketEvent, SimPortAllocation } from './types.js'

const BEHAVIOURS: readonly SimBehaviour[] = ['endpoint-independent', 'address-dependent', 'address-and-port-dependent']
const ALLOCATIONS: readonly SimPortAllocation[] = ['preserving', 'sequential', 'random']
/** Tries at a random free port before scanning linearly from the last try. */
const RANDOM_TRIES = 32

/** SimNatOptions with every default filled in. */
export interface ResolvedSimNatOptions {
  readonly mapping: SimBehaviour
  readonly filtering: SimBehaviour
  readonly hairpin: boolean
  readonly hairpinFiltering: boolean
  readonly portAllocation: SimPortAllocation
  readonly sequentialStep: number
  readonly sequentialBase: number
  readonly portRange: readonly [number, number]
  readonly mappingTimeoutMs: number
  readonly inboundRefresh: boolean
  readonly udpBlocked: boolean
}

/** Validate NAT options and fill the defaults. Throws InvalidArgumentError saying what to fix. */
export function resolveNatOptions (o: SimNatOptions): ResolvedSimNatOptions {
  if (!BEHAVIOURS.includes(o.mapping)) throw new InvalidArgumentError(`mapping must be one of ${BEHAVIOURS.join(', ')}; got ${JSON.stringify(o.mapping)}`)
  if (!BEHAVIOURS.includes(o.filtering)) throw new InvalidArgumentError(`filtering must be one of ${BEHAVIOURS.join(', ')}; got ${JSON.stringify(o.filtering)}`)
  const portAllocation = o.portAllocation ?? 'preserving'
  if (!ALLOCATIONS.includes(portAllocation)) throw new InvalidArgumentError(`portAllocation must be one of ${ALLOCATIONS.join(', ')}; got ${JSON.stringify(portAllocation)}`)
  const range = o.portRange ?? [1024, 65535]
  if (!Number.isInteger(range[0]) || !Number.isInteger(range[1]) || range[0] < 1 || range[1] > 65535 || range[0] > range[1]) {
    throw new InvalidArgumentError(`portRange must be [low, high] within 1-65535 with low <= high; got ${JSON.stringify(range)}`)
  }
  const step = o.sequentialStep ?? 1
  if (!Number.isInteger(step) || step === 0) throw new InvalidArgumentError(`sequentialStep must be a non-zero integer; got ${String(step)}`)
  const base = o.sequentialBase ?? (range[0] <= 50000 && range[1] >= 50000 ? 50000 : range[0])
  if (!Number.isInteger(base) || base < range[0] || base > range[1]) {
    throw new InvalidArgumentError(`sequentialBase must be an integer within portRange ${range[0]}-${range[1]}; got ${String(base)}`)
  }
  const timeout = o.mappingTimeoutMs ?? 120_000
  if (!(typeof timeout === 'number' && timeout > 0)) throw new InvalidArgumentError(`mappingTimeoutMs must be a positive number; got ${String(timeout)}`)
  return {
    mapping: o.mapping,
    filtering: o.filtering,
    hairpin: o.hairpin ?? false,
    hairpinFiltering: o.hairpinFiltering ?? false,
    portAllocation,
    sequentialStep: step,
    sequentialBase: base,
    portRange: [range[0], range[1]],
    mappingTimeoutMs: timeout,
    inboundRefresh: o.inboundRefresh ?? true,
    udpBlocked: o.udpBlocked ?? false
  }
}

/** A snapshot of one live NAT mapping. */
export interface SimMapping {
  readonly internal: Endpoint
  readonly external: Endpoint
  /** The destination of the packet that created the mapping. */
  readonly remote: Endpoint
  readonly createdAt: number
  /** Last packet that refreshed it (outbound, or admitted inbound when inboundRefresh). */
  readonly lastActivity: number
}

interface MappingEntry {
  readonly key: string
  readonly internal: Endpoint
  readonly external: Endpoint
  readonly remote: Endpoint
  readonly createdAt: number
  lastActivity: number
  /** Remote endpoints (endpointKey) this mapping sent to, with when: the APDF permissions. */
  readonly peers: Map<string, number>
  /** Remote IPs this mapping sent to, with when: the ADF permissions. */
  readonly peerIps: Map<string, number>
}

/** What the NAT did with a packet. */
export type NatVerdict<T> = { readonly ok: true, readonly value: T } | { readonly ok: false, readonly reason: SimDropReason, readonly detail: string }

/** What a SimNat needs from its network. Internal to the simulator. */
export interface NatContext {
  readonly now: () => number
  readonly prng: Prng
  readonly emit: (event: SimPacketEvent) => void
}

/**
 * One simulated NAT (RFC 4787): a mapping table keyed per the mapping behaviour, external ports per the allocation
 * policy, an inbound filter per the filtering behaviour, hairpinning, and mapping lifetimes. Made by
 * SimNetwork.addNat; the network calls `outbound`/`inbound` as packets cross it.
 */
export class SimNat {
  /** The options of the classic NAT types, as SIM_NAT_PRESET_OPTIONS. */
  static readonly presets: Readonly<Record<SimNatPreset, SimNatOptions>> = SIM_NAT_PRESET_OPTIONS

  readonly options: ResolvedSimNatOptions
  /** The address space behind this NAT. Internal to the simulator. */
  readonly lan: Realm
  private readonly byKey = new Map<string, MappingEntry>()
  private readonly byPort = new Map<number, MappingEntry>()
  private nextSequential: number

  constructor (
    /** A name for traces. */
    readonly name: string,
    /** The NAT's outside address (its WAN address, in the realm it is attached to). */
    readonly publicIp: string,
    options: SimNatOptions,
    /** The realm the NAT's outside is attached to (the internet, or an outer NAT's LAN). Internal. */
    readonly outer: Realm,
    private readonly ctx: NatContext
  ) {
    this.options = resolveNatOptions(options)
    this.lan = createRealm(this)
    this.nextSequential = this.options.sequentialBase
  }

  /** The live mappings (expired ones left out), in creation order. */
  mappings (): SimMapping[] {
    const now = this.ctx.now()
    return [...this.byKey.values()].filter(m => !this.expired(m.lastActivity, now)).map(m => ({
      internal: { ...m.internal }, external: { ...m.external }, remote: { ...m.remote }, createdAt: m.createdAt, lastActivity: m.lastActivity
    }))
  }

  /** Forget every mapping at once, as a NAT reboot does. */
  clearMappings (): void {
    this.byKey.clear()
    this.byPort.clear()
  }

  /**
   * A packet from `src` (in the LAN) to `dst` leaves through the NAT: find or create the mapping (RFC 4787 §4.1),
   * refresh it and record `dst` as a permitted remote (§5). Returns the external source endpoint.
   */
  outbound (src: Endpoint, dst: Endpoint): NatVerdict<Endpoint> {
    const o = this.options
    if (o.udpBlocked) return { ok: false, reason: 'udp-blocked', detail: `${this.name} blocks outbound UDP` }
    const now = this.ctx.now()
    const key = this.mappingKey(src, dst)
    let m = this.byKey.get(key)
    if (m !== undefined && this.expired(m.lastActivity, now)) { this.remove(m); m = undefined }
    if (m === undefined) {
      const port = this.allocate(src.port, now)
      if (port === undefined) return { ok: false, reason: 'no-route', detail: `${this.name} has no free external port` }
      m = {
        key,
        internal: { address: src.address, port: src.port },
        external: { address: this.publicIp, port },
        remote: { address: dst.address, port: dst.port },
        createdAt: now,
        lastActivity: now,
        peers: new Map(),
        peerIps: new Map()
      }
      this.byKey.set(key, m)
      this.byPort.set(port, m)
      this.ctx.emit({ type: 'mapping', at: now, nat: this.name, internal: { ...m.internal }, external: { ...m.external }, remote: { ...m.remote } })
    }
    // RFC 4787 REQ-6: outbound packets refresh the mapping.
    m.lastActivity = now
    m.peers.set(endpointKey(dst), now)
    m.peerIps.set(dst.address, now)
    return { ok: true, value: m.external }
  }

  /**
   * A packet from `from` arrives at the NAT's external `port`: admit it per the filtering behaviour (RFC 4787 §5) and
   * return the internal endpoint to forward it to. `hairpinned` packets come from the LAN (§6).
   */
  inbound (from: Endpoint, port: number, hairpinned: boolean): NatVerdict<Endpoint> {
    const o = this.options
    const now = this.ctx.now()
    const m = this.byPort.get(port)
    if (m === undefined) return { ok: false, reason: 'filtered', detail: `${this.name} has no mapping on port ${port}` }
    if (this.expired(m.lastActivity, now)) {
      this.remove(m)
      return { ok: false, reason: 'mapping-expired', detail: `${this.name} mapping on port ${port} expired` }
    }
    const peerKey = endpointKey(from)
    if (!hairpinned || o.hairpinFiltering) {
      let admitted: boolean
      switch (o.filtering) {
        case 'endpoint-independent': admitted = true; break
        case 'address-dependent': admitted = this.fresh(m.peerIps.get(from.address), now); break
        case 'address-and-port-dependent': admitted = this.fresh(m.peers.get(peerKey), now); break
      }
      if (!admitted) return { ok: false, reason: 'filtered', detail: `${this.name} port ${port} does not admit ${from.address}:${from.port} (${o.filtering} filtering)` }
    }
    if (o.inboundRefresh) {
      m.lastActivity = now
      if (m.peers.has(peerKey)) m.peers.set(peerKey, now)
      if (m.peerIps.has(from.address)) m.peerIps.set(from.address, now)
    }
    return { ok: true, value: m.internal }
  }

  private mappingKey (src: Endpoint, dst: Endpoint): string {
    const internal = `${src.address}|${src.port}`
    switch (this.options.mapping) {
      case 'endpoint-independent': return internal
      case 'address-dependent': return `${internal}|${dst.address}`
      case 'address-and-port-dependent': return `${internal}|${dst.address}|${dst.port}`
    }
  }

  private expired (lastActivity: number, now: number): boolean {
    return now - lastActivity >= this.options.mappingTimeoutMs
  }

  private fresh (at: number | undefined, now: number): boolean {
    return at !== undefined && !this.expired(at, now)
  }

  private remove (m: MappingEntry): void {
    if (this.byKey.get(m.key) === m) this.byKey.delete(m.key)
    if (this.byPort.get(m.external.port) === m) this.byPort.delete(m.external.port)
  }

  /** Whether an external port is free (a port held by an expired mapping is, and that mapping goes). */
  private free (port: number, now: number): boolean {
    const m = this.byPort.get(port)
    if (m === undefined) return true
    if (!this.expired(m.lastActivity, now)) return false
    this.remove(m)
    return true
  }

  /** An external port for a new mapping, per the allocation policy (RFC 4787 §4.2); undefined when none is free. */
  private allocate (internalPort: number, now: number): number | undefined {
    const [lo, hi] = this.options.portRange
    const size = hi - lo + 1
    const wrap = (p: number): number => lo + ((((p - lo) % size) + size) % size)
    const scan = (start: number): number | undefined => {
      for (let i = 0; i < size; i++) {
        const p = wrap(start + i)
        if (this.free(p, now)) return p
      }
      return undefined
    }
    switch (this.options.portAllocation) {
      case 'preserving':
        // RFC 4787 §4.2.1 port preservation: the internal port if free, else the next one up.
        if (internalPort > 0 && this.free(internalPort, now)) return internalPort
        return scan(internalPort + 1)
      case 'sequential':
        for (let i = 0; i < size; i++) {
          const p = wrap(this.nextSequential)
          this.nextSequential = wrap(p + this.options.sequentialStep)
          if (this.free(p, now)) return p
        }
        return undefined
      case 'random': {
        let p = lo
        for (let i = 0; i < RANDOM_TRIES; i++) {
          p = lo + Math.floor(this.ctx.prng() * size)
          if (this.free(p, now)) return p
        }
        return scan(p)
      }
    }
  }
}
