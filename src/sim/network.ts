import { InvalidArgumentError } from '../errors.js'
import { createLogger } from '../log.js'
import { formatEndpoint, ipFamily, type Endpoint } from '../net/endpoint.js'
import { SimHost, type SimHostOptions } from './host.js'
import { SimNat } from './nat.js'
import { natPreset, type SimNatPreset } from './presets.js'
import { createPrng, deriveSeed, type Prng } from './prng.js'
import { createRealm, type Realm } from './realm.js'
import type { SimSocket } from './socket.js'
import { SIM_DROP_REASONS, type SimDropReason, type SimNatOptions, type SimNetworkOptions, type SimPacketEvent, type SimStats } from './types.js'

const log = createLogger('natcheck:traversal:sim')

/** Where a NAT's outside is attached (SimNetwork.addNat). */
export interface SimNatPlacement {
  /** Put the NAT's outside on this NAT's LAN (carrier-grade / double NAT); default: on the internet. */
  readonly behind?: SimNat
}

/** A packet after the sender-side NATs, on its way to the realm where it arrives. */
interface Route {
  readonly realm: Realm
  readonly from: Endpoint
  readonly to: Endpoint
  readonly hairpinned: boolean
}

type Drop = { readonly reason: SimDropReason, readonly from: Endpoint, readonly to: Endpoint, readonly nat?: string, readonly detail?: string }

/**
 * An in-process network of simulated hosts and RFC 4787 NATs, for tests of NAT traversal that run in milliseconds
 * without root (the lab, src/lab/, does the same with real kernel NATs).
 *
 * A datagram's path: the sender-side NATs translate it at send time (creating and refreshing mappings, RFC 4787
 * §4), then after `latencyMs` (+ jitter) it arrives, where the receiver-side NATs filter it (§5) with their state at
 * arrival time — so two peers punching at once behave as they do on a wire. Hosts on one LAN reach each other
 * directly by private address; public hosts reach each other directly. Delivery is always asynchronous (an unref'ed
 * timer), never inside send().
 */
export class SimNetwork {
  /** Trace hook (see SimNetworkOptions.onPacket); may be set any time. */
  onPacket: ((event: SimPacketEvent) => void) | undefined
  /** The clock of mapping lifetimes. */
  readonly now: () => number
  private readonly latencyMs: number
  private readonly jitterMs: number
  private readonly loss: number
  private readonly seed: number
  private readonly prng: Prng
  private readonly internet = createRealm(undefined)
  private readonly nats = new Map<string, SimNat>()
  private readonly hosts: SimHost[] = []
  private readonly pending = new Set<NodeJS.Timeout>()
  private readonly cleanups: Array<() => Promise<void> | void> = []
  private idleWaiters: Array<() => void> = []
  private readonly counts = { sent: 0, delivered: 0, dropped: Object.fromEntries(SIM_DROP_REASONS.map(r => [r, 0])) as Record<SimDropReason, number> }
  private isClosed = false
  private closing: Promise<void> | undefined

  constructor (options: SimNetworkOptions = {}) {
    this.latencyMs = nonNegative('latencyMs', options.latencyMs, 1)
    this.jitterMs = nonNegative('jitterMs', options.jitterMs, 0)
    this.loss = options.loss ?? 0
    if (!(typeof this.loss === 'number' && this.loss >= 0 && this.loss <= 1)) throw new InvalidArgumentError(`loss must be a probability 0-1; got ${String(options.loss)}`)
    this.seed = options.seed ?? 1
    if (!Number.isInteger(this.seed)) throw new InvalidArgumentError(`seed must be an integer; got ${String(options.seed)}`)
    this.prng = createPrng(deriveSeed(this.seed, 'network'))
    this.now = options.now ?? Date.now
    this.onPacket = options.onPacket
  }

  /** Whether close() was called. */
  get closed (): boolean { return this.isClosed }

  /**
   * Add a NAT whose outside address is `publicIp` (on the internet, or on another NAT's LAN with `placement.behind`).
   * `options` are SimNatOptions or a preset name ('full-cone', 'symmetric', …). Throws InvalidArgumentError for a
   * duplicate name or address.
   */
  addNat (name: string, publicIp: string, options: SimNatOptions | SimNatPreset, placement: SimNatPlacement = {}): SimNat {
    if (typeof name !== 'string' || name === '') throw new InvalidArgumentError('a NAT needs a non-empty name')
    if (this.nats.has(name)) throw new InvalidArgumentError(`there is already a NAT named ${JSON.stringify(name)}`)
    const outer = this.realmBehind(placement.behind)
    this.checkFreeAddress(publicIp, outer)
    const nat = new SimNat(name, publicIp, typeof options === 'string' ? natPreset(options) : options, outer, {
      now: this.now,
      prng: createPrng(deriveSeed(this.seed, `nat:${name}`)),
      emit: (event) => { this.emit(event) }
    })
    this.nats.set(name, nat)
    outer.nats.set(publicIp, nat)
    return nat
  }

  /**
   * Add a host with address `ip`: on the internet, or on the LAN of `options.behind` (then `ip` is its private
   * address, which other LANs may reuse). Throws InvalidArgumentError for a bad or duplicate address.
   */
  addHost (ip: string, options: SimHostOptions = {}): SimHost {
    const realm = this.realmBehind(options.behind)
    this.checkFreeAddress(ip, realm)
    const host = new SimHost(this, ip, options.behind, realm, {
      isClosed: () => this.isClosed,
      transmit: (h, socket, data, to) => { this.transmit(h, socket, data, to) }
    })
    realm.hosts.set(ip, host)
    this.hosts.push(host)
    return host
  }

  /** The counters so far. */
  stats (): SimStats {
    return { sent: this.counts.sent, delivered: this.counts.delivered, dropped: { ...this.counts.dropped }, inFlight: this.pending.size }
  }

  /** Resolves once no datagram is in flight (timers of the protocol objects are not datagrams). */
  async idle (): Promise<void> {
    if (this.pending.size === 0) return
    await new Promise<void>((resolve) => { this.idleWaiters.push(resolve) })
  }

  /** Run `fn` when the network closes (the simulated servers register their own close here). */
  addCleanup (fn: () => Promise<void> | void): void {
    this.cleanups.push(fn)
  }

  /** Cancel every pending delivery, close the simulated servers and every socket. Idempotent. */
  close (): Promise<void> {
    this.closing ??= (async () => {
      this.isClosed = true
      for (const t of this.pending) clearTimeout(t)
      this.pending.clear()
      this.wakeIdle()
      for (const fn of this.cleanups.reverse()) {
        try { await fn() } catch (err) { log.error('cleanup failed: %O', err) }
      }
      await Promise.all(this.hosts.map(async h => { await h.closeAll() }))
    })()
    return this.closing
  }

  async [Symbol.asyncDispose] (): Promise<void> { await this.close() }

  // ---------------------------------------------------------------- internals

  private realmBehind (nat: SimNat | undefined): Realm {
    if (nat === undefined) return this.internet
    if (this.nats.get(nat.name) !== nat) throw new InvalidArgumentError(`NAT ${JSON.stringify(nat.name)} belongs to another SimNetwork`)
    return nat.lan
  }

  private checkFreeAddress (ip: string, realm: Realm): void {
    if (ipFamily(ip) === 0) throw new InvalidArgumentError(`${JSON.stringify(ip)} is not an IP address: give an IPv4 or IPv6 literal`)
    if (realm.hosts.has(ip) || realm.nats.has(ip) || realm.nat?.publicIp === ip) {
      throw new InvalidArgumentError(`${ip} is already in use ${realm.nat === undefined ? 'on the internet' : `behind NAT ${realm.nat.name}`}`)
    }
  }

  private emit (event: SimPacketEvent): void {
    const hook = this.onPacket
    if (hook === undefined) return
    try { hook(event) } catch (err) { log.error('onPacket hook threw: %O', err) }
  }

  private drop (d: Drop, bytes: number): void {
    this.counts.dropped[d.reason]++
    log.trace('drop %s -> %s: %s %s', formatEndpoint(d.from), formatEndpoint(d.to), d.reason, d.detail ?? '')
    if (this.onPacket !== undefined) {
      this.emit({ type: 'drop', at: this.now(), reason: d.reason, from: { ...d.from }, to: { ...d.to }, bytes, nat: d.nat, detail: d.detail })
    }
  }

  /** A socket sent a datagram: copy it, run the sender-side NATs now, and schedule the arrival. */
  private transmit (host: SimHost, socket: SimSocket, data: Uint8Array, to: Endpoint): void {
    if (this.isClosed) return
    const bytes = Buffer.from(data) // a copy: the sender may reuse its buffer
    const from = socket.local
    this.counts.sent++
    if (this.onPacket !== undefined) this.emit({ type: 'send', at: this.now(), from: { ...from }, to: { address: to.address, port: to.port }, bytes: bytes.length })
    if (typeof to?.address !== 'string' || ipFamily(to.address) === 0 || !Number.isInteger(to.port) || to.port < 1 || to.port > 65535) {
      this.drop({ reason: 'no-route', from, to, detail: 'the destination is not an IP address and port' }, bytes.length)
      return
    }
    const route = this.route(host.realm, from, { address: to.address, port: to.port })
    if ('reason' in route) { this.drop(route, bytes.length); return }
    if (this.loss > 0 && this.prng() < this.loss) {
      this.drop({ reason: 'loss', from: route.from, to: route.to }, bytes.length)
      return
    }
    const delay = this.latencyMs + (this.jitterMs > 0 ? this.prng() * this.jitterMs : 0)
    const timer = setTimeout(() => {
      this.pending.delete(timer)
      this.arrive(route, bytes)
      if (this.pending.size === 0) this.wakeIdle()
    }, delay)
    timer.unref()
    this.pending.add(timer)
  }

  /**
   * Send-time half of the path: from the sender's realm outwards through its NATs (translating the source, RFC 4787
   * §4) until a realm knows the destination address; a LAN packet to its own NAT's public address hairpins (§6).
   */
  private route (start: Realm, src: Endpoint, dst: Endpoint): Route | Drop {
    let realm = start
    let from = src
    for (;;) {
      if (realm.hosts.has(dst.address) || realm.nats.has(dst.address)) return { realm, from, to: dst, hairpinned: false }
      const nat = realm.nat
      if (nat === undefined) return { reason: 'no-route', from, to: dst, detail: `no host has ${dst.address} on the internet` }
      const toSelf = dst.address === nat.publicIp
      if (toSelf && !nat.options.hairpin && !nat.options.udpBlocked) {
        return { reason: 'hairpin-disabled', from, to: dst, nat: nat.name, detail: `${nat.name} does not hairpin` }
      }
      const out = nat.outbound(from, dst)
      if (!out.ok) return { reason: out.reason, from, to: dst, nat: nat.name, detail: out.detail }
      from = out.value
      realm = nat.outer
      if (toSelf) return { realm, from, to: dst, hairpinned: true }
    }
  }

  /** Arrival-time half: inwards through the receiver's NATs (filtering, RFC 4787 §5) to the socket. */
  private arrive (route: Route, bytes: Buffer): void {
    let realm = route.realm
    let to = route.to
    let hairpinned = route.hairpinned
    const from = route.from
    for (;;) {
      const host = realm.hosts.get(to.address)
      if (host !== undefined) {
        const socket = host.socket(to.port)
        if (socket === undefined || socket.closed) {
          this.drop({ reason: 'no-listener', from, to, detail: `nothing listens on ${formatEndpoint(to)}` }, bytes.length)
          return
        }
        this.counts.delivered++
        if (this.onPacket !== undefined) this.emit({ type: 'deliver', at: this.now(), from: { ...from }, to: { ...to }, bytes: bytes.length })
        socket.deliver(bytes, { address: from.address, port: from.port })
        return
      }
      const nat = realm.nats.get(to.address)
      if (nat === undefined) {
        this.drop({ reason: 'no-route', from, to, detail: `nothing has ${to.address} here` }, bytes.length)
        return
      }
      const verdict = nat.inbound(from, to.port, hairpinned)
      if (!verdict.ok) {
        this.drop({ reason: verdict.reason, from, to, nat: nat.name, detail: verdict.detail }, bytes.length)
        return
      }
      realm = nat.lan
      to = verdict.value
      hairpinned = false
    }
  }

  private wakeIdle (): void {
    const waiters = this.idleWaiters
    this.idleWaiters = []
    for (const w of waiters) w()
  }
}

function nonNegative (name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) throw new InvalidArgumentError(`${name} must be a non-negative number of ms; got ${String(value)}`)
  return value
}
