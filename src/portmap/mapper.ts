/**
 * A leased port mapping: asked of every protocol at once (the most preferred grant wins, the others' distinct grants
 * are removed),
 * renewed at half its lifetime (RFC 6886 §3.3, RFC 6887 §11.2.1), re-created when the gateway's epoch shows it
 * restarted (RFC 6887 §8.5, RFC 6886 §3.6), and removed on close or, with {@link removeOnSignals}, on SIGINT and
 * SIGTERM. If the process is killed outright, the gateway's own lease expiry removes it: keep lifetimes short.
 */
import { EventEmitter } from 'node:events'
import { InvalidArgumentError, PortMapError } from '../errors.js'
import { createLogger } from '../log.js'
import { closeOnSignals } from '../util/close-on-signals.js'
import { PORTMAP_PROTOCOLS, removeMapping, tryProtocol, type GatewayContext, type GrantedMapping, type MapRequest, type PortMapProtocol, type ProtocolOutcome } from './client.js'
import { defaultGateway, localAddressTowards } from './gateway.js'
import { pcpEpochValid } from './pcp.js'

const log = createLogger('natcheck:portmap:mapper')

/** Options of {@link PortMapper.map}. */
export interface PortMapperOptions {
  /** Gateway (default: the IPv4 default gateway) and our address towards it (default: what the kernel picks). */
  gateway?: string
  localIp?: string
  /** PCP / NAT-PMP port (default 5351). */
  port?: number
  /** Per-request deadline, ms (default 2000). */
  timeoutMs?: number
  /** Protocols to try, in order of preference when several grant (default PCP, NAT-PMP, UPnP). */
  protocols?: readonly PortMapProtocol[]
  /** Clock in ms (default `Date.now`): epochs are compared with it. */
  now?: () => number
  /**
   * Resolve with the first grant instead of waiting for every protocol (default false, which keeps the most preferred
   * grant). For callers that need a mapping quickly, e.g. an ICE agent gathering candidates: a silent UPnP search
   * would otherwise hold the answer until `timeoutMs`. Later distinct grants are removed as they arrive, and
   * {@link PortMapper.close} waits for that.
   */
  eager?: boolean
}

/** Events of a {@link PortMapper}. */
export interface PortMapperEvents {
  /** The lease was renewed; `restarted` when the gateway's epoch showed it had lost its state meanwhile. */
  renewed: [mapping: GrantedMapping, restarted: boolean]
  /** A renewal failed; the mapping may expire. Retried at the next renewal time. */
  error: [err: Error]
}

/** A port mapping held on the gateway until {@link PortMapper.close}. */
export class PortMapper extends EventEmitter<PortMapperEvents> {
  #mapping: GrantedMapping
  readonly #ctx: GatewayContext
  readonly #request: MapRequest
  readonly #now: () => number
  #epochAt: number
  #timer: NodeJS.Timeout | undefined
  #closed: Promise<void> | undefined
  /** Removal of grants that arrived after an eager winner (awaited by close). */
  #lateCleanup: Promise<void> = Promise.resolve()
  /**
   * Other protocols' grants of the same gateway entry (same transport and external port). A gateway that keeps one
   * table for all protocols (miniupnpd) gives the entry to whichever asked last, and refuses to remove or renew it for
   * another ("Unauthorized to remove PCP mapping"): when the winner's removal or renewal fails, these are tried.
   */
  readonly #aliases: GrantedMapping[] = []

  private constructor (ctx: GatewayContext, request: MapRequest, mapping: GrantedMapping, now: () => number) {
    super()
    this.#ctx = ctx
    this.#request = request
    this.#mapping = mapping
    this.#now = now
    this.#epochAt = now()
    this.#schedule()
  }

  /**
   * Ask every protocol for the mapping at once; keep the most preferred grant, remove the others.
   * @throws InvalidArgumentError for a bad request; PortMapError when no protocol granted it (with each reason).
   */
  static async map (request: MapRequest, options: PortMapperOptions = {}): Promise<PortMapper> {
    if (!Number.isInteger(request.internalPort) || request.internalPort < 1 || request.internalPort > 65535) throw new InvalidArgumentError('internalPort must be 1..65535')
    if (!Number.isInteger(request.lifetimeS) || request.lifetimeS < 1) throw new InvalidArgumentError('lifetimeS must be a positive whole number of seconds (0 would delete)')
    const gateway = options.gateway ?? await defaultGateway()
    if (gateway === undefined) throw new PortMapError('no IPv4 default gateway to ask for a port mapping', {})
    const localIp = options.localIp ?? await localAddressTowards(gateway)
    if (localIp === undefined) throw new PortMapError(`no local address reaches the gateway ${gateway}`, {})
    const ctx: GatewayContext = { gateway, localIp, timeoutMs: options.timeoutMs ?? 2000, port: options.port }
    const protocols = options.protocols ?? PORTMAP_PROTOCOLS
    const pending = protocols.map(async (p) => await tryProtocol(p, ctx, request))
    if (options.eager === true) {
      const first = await firstGrant(pending)
      if (first !== undefined) {
        const mapping = first.mapping as GrantedMapping
        log('mapped %s %d -> %s:%d by %s for %d s (first grant)', request.transport, request.internalPort, mapping.externalIp, mapping.externalPort, first.protocol, mapping.lifetimeS)
        const mapper = new PortMapper(ctx, request, mapping, options.now ?? Date.now)
        mapper.#lateCleanup = Promise.all(pending).then(async (outs) => { await mapper.#adopt(outs) })
        return mapper
      }
    }
    const outcomes = await Promise.all(pending)
    const winner = outcomes.find((o) => o.mapping !== null)
    if (winner === undefined) {
      const reasons = Object.fromEntries(outcomes.map((o) => [o.protocol, o.error ?? 'refused']))
      throw new PortMapError(`the gateway ${gateway} granted no mapping (${Object.entries(reasons).map(([p, r]) => `${p}: ${r}`).join('; ')})`, reasons)
    }
    log('mapped %s %d -> %s:%d by %s for %d s', request.transport, request.internalPort, winner.mapping?.externalIp, winner.mapping?.externalPort, winner.protocol, winner.mapping?.lifetimeS)
    const mapper = new PortMapper(ctx, request, winner.mapping as GrantedMapping, options.now ?? Date.now)
    await mapper.#adopt(outcomes)
    return mapper
  }

  /**
   * Sort the other protocols' grants: one with the winner's transport and external port is the same entry of the
   * gateway's one table (kept as an alias; removing it would remove the winner); a distinct one is removed.
   */
  async #adopt (outcomes: readonly ProtocolOutcome[]): Promise<void> {
    const winner = this.#mapping
    const others = outcomes.flatMap((o) => o.mapping === null || o.mapping === winner ? [] : [o.mapping])
    const same = (m: GrantedMapping): boolean => m.transport === winner.transport && m.externalPort === winner.externalPort
    this.#aliases.push(...others.filter(same))
    await Promise.all(others.filter((m) => !same(m)).map(async (m) => await removeMapping(this.#ctx, m)))
  }

  /** The mapping as last granted. */
  get mapping (): GrantedMapping { return this.#mapping }

  #schedule (): void {
    if (this.#closed !== undefined) return
    // Half the granted lifetime (at least 1 s): RFC 6886 §3.3; RFC 6887 §11.2.1 asks for 1/2 to 5/8.
    const ms = Math.max(1000, this.#mapping.lifetimeS * 500)
    this.#timer = setTimeout(() => { void this.renew() }, ms)
    this.#timer.unref()
  }

  /** Renew now (normally timer-driven). Emits `renewed` or `error`; never rejects. */
  async renew (): Promise<void> {
    clearTimeout(this.#timer)
    if (this.#closed !== undefined) return
    const prev = this.#mapping
    const again = async (m: GrantedMapping): Promise<ProtocolOutcome> =>
      await tryProtocol(m.protocol, this.#ctx, { ...this.#request, externalPort: m.externalPort, ...(m.nonce !== undefined ? { nonce: m.nonce } : {}) } as MapRequest)
    let o = await again(prev)
    // Refused for the winner: the entry may belong to another protocol that granted it too; renew through that one.
    for (let i = 0; o.mapping === null && i < this.#aliases.length && this.#closed === undefined; i++) {
      const alias = this.#aliases[i]
      const a = await again(alias)
      if (a.mapping !== null) {
        log('renewing via %s (the %s renewal was refused: %s)', alias.protocol, prev.protocol, o.error ?? 'refused')
        this.#aliases.splice(i, 1, prev)
        o = a
      }
    }
    if (this.#closed !== undefined) {
      if (o.mapping !== null) await removeMapping(this.#ctx, o.mapping)
      return
    }
    if (o.mapping === null) {
      this.emit('error', new PortMapError(`renewing the ${prev.protocol} mapping failed: ${o.error ?? 'refused'}`, { [prev.protocol]: o.error ?? 'refused' }))
    } else {
      const atS = this.#now() / 1000
      const restarted = prev.epoch !== null && o.mapping.epoch !== null && !pcpEpochValid({ epoch: prev.epoch, atS: this.#epochAt / 1000 }, { epoch: o.mapping.epoch, atS })
      if (restarted) log('gateway %s restarted (epoch %d -> %d): mapping re-created', this.#ctx.gateway, prev.epoch, o.mapping.epoch)
      this.#mapping = { ...o.mapping, nonce: o.mapping.nonce ?? (o.mapping.protocol === prev.protocol ? prev.nonce : undefined) }
      this.#epochAt = this.#now()
      this.emit('renewed', this.#mapping, restarted)
    }
    this.#schedule()
  }

  /** Remove the mapping from the gateway. Idempotent; bounded by the request deadline. */
  async close (): Promise<void> {
    this.#closed ??= (async () => {
      clearTimeout(this.#timer)
      await this.#lateCleanup
      let ok = await removeMapping(this.#ctx, this.#mapping)
      // The winner's removal refused: the entry belongs to another protocol that granted it too.
      for (const alias of this.#aliases) {
        if (ok) break
        ok = await removeMapping(this.#ctx, alias)
        if (ok) log('removed via %s (the %s removal was refused)', alias.protocol, this.#mapping.protocol)
      }
      if (!ok) log('removing the %s mapping %d failed; the gateway lease (%d s) will end it', this.#mapping.protocol, this.#mapping.externalPort, this.#mapping.lifetimeS)
    })()
    return await this.#closed
  }

  async [Symbol.asyncDispose] (): Promise<void> { await this.close() }
}

/** The first outcome (in time) that carries a mapping, or `undefined` once every one has answered without. */
async function firstGrant (pending: ReadonlyArray<Promise<ProtocolOutcome>>): Promise<ProtocolOutcome | undefined> {
  return await new Promise((resolve) => {
    let left = pending.length
    if (left === 0) { resolve(undefined); return }
    for (const p of pending) {
      void p.then((o) => {
        if (o.mapping !== null) resolve(o)
        else if (--left === 0) resolve(undefined)
      })
    }
  })
}

/**
 * Remove mappings when the process gets SIGINT or SIGTERM, then let the signal take its default course (the
 * handlers are removed and the signal re-raised). Returns a function that uninstalls the handlers.
 */
export function removeOnSignals (mappers: readonly PortMapper[]): () => void {
  return closeOnSignals(async () => await Promise.all(mappers.map(async (m) => { await m.close() })))
}
