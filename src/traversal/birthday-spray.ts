/**
 * Birthday spray for a symmetric NAT with random ports (address-and-port-dependent mapping, RFC 4787 §4.1) facing an
 * endpoint-independent mapping behind a port-restricted filter (the pair no standard punching opens). The symmetric
 * side opens N sockets and sends one connectivity check from each to the cone side's public endpoint: its NAT makes N
 * mappings on random ports of its public address (the cone's filter drops those packets). The cone side, whose one
 * mapping every destination shares, sends M checks from its ICE socket to random ports of the symmetric side's public
 * address: each opens its filter for that port. When a probed port is one of the N mapped ones, the probe passes the
 * symmetric NAT into the socket that owns the mapping (or that socket's check passes the cone's filter): that socket
 * becomes an agent base and the pair an ordinary checked ICE pair (RFC 8445 §7.2), so path selection, nomination and
 * consent (RFC 7675) apply unchanged.
 *
 * The odds are those of the birthday problem: with R ports in the symmetric NAT's range,
 * P = 1 − (1 − N/R)^M (probes with repetition; natkit probes distinct ports, which is slightly better). N = 256,
 * M = 2048, R = 64512 gives 99.97 %; the expected number of probes before the hit is about R/N = 252.
 *
 * Coordination: each side measures its own mapping (the port-prediction measurement of port-prediction.ts, shared when
 * both are on) and announces it with its caps in a `natkit/spray` signalling message; `planSpray` (spray-plan.ts,
 * pure) gives each side its role from the two announcements. Both sides must opt in. Bounded: sockets, probes,
 * packets per second and time are capped; every spray socket that did not win is closed when the spray ends.
 */
import { createLogger } from '../log.js'
import { formatEndpoint, type Endpoint } from '../net/endpoint.js'
import { bindDatagramSocket } from '../net/native.js'
import type { DatagramSocket } from '../net/udp.js'
import type { StunTransactions } from '../stun/index.js'
import type { GatherAttempt } from './gather.js'
import { measurePortAllocation, predictPorts, type PortPrediction } from './port-prediction.js'
import {
  parseSprayAnnouncement, planSpray, resolveSprayOptions, samplePorts, sprayMappingOf, type BirthdaySprayOptions, type SprayAnnouncement,
  type SprayPlan, type SprayReason, type SprayRole
} from './spray-plan.js'

const log = createLogger('natcheck:traversal:spray')

/** After its last packet a side waits this long for a late hit (a probe still in flight, the check it triggers). */
const LATE_HIT_MS = 1000
/** The sockets side holds its mappings at most this long. */
const MAX_HOLD_MS = 20_000
const TICK_MS = 10

/** The live state and outcome of a spray (the agent's `birthdaySpray.report`). */
export interface BirthdaySprayReport {
  /** `waiting` until both announcements are in, `running` while it sprays, then the reason code. */
  readonly state: 'waiting' | 'running' | SprayReason
  readonly role: SprayRole | null
  readonly detail: string
  /** The success probability computed beforehand. */
  readonly probability: number | null
  /** N and M of the plan. */
  readonly plannedSockets: number | null
  readonly plannedProbes: number | null
  /** Sockets this side opened. */
  readonly socketsOpened: number
  /** Distinct ports of the peer's address this side probed. */
  readonly portsProbed: number
  /** Spray packets this side sent (checks from the spray sockets, or probes). */
  readonly packets: number
  /** sockets: the winning socket's local port; probes: the peer's public port that answered. */
  readonly hitPort: number | null
  /** From the spray's start to its end (the hit, exhaustion, …). */
  readonly ms: number | null
  readonly self: SprayAnnouncement | null
}

/** What the spray needs from the agent. */
export interface SprayHost {
  /** The agent's ICE socket (the probes side sends from it: its one mapping is the one the peer targets). */
  readonly socket: DatagramSocket
  /** An authentic connectivity check with the agent's credentials, or undefined while the peer's are unknown. */
  check (): Buffer | undefined
  /** The remote end of the agent's direct path, if one works. */
  direct (): Endpoint | undefined
  /** The peer's candidates the agent knows, signalled or learnt from its checks (peer-reflexive). */
  remotes (): readonly Endpoint[]
  /** Make `socket` an agent base paired with `remote`; `first` is the datagram that hit (handled as if received there). */
  adopt (socket: DatagramSocket, remote: Endpoint, first: Buffer): void
  /** The outcome, for the connect report. */
  report (attempt: GatherAttempt): void
}

/** The percentage with two decimals, for report lines. */
function pct (p: number): string { return `${(Math.round(p * 10_000) / 100).toString()}%` }

/**
 * One agent's birthday spray: announce (after the measurement), plan (when the peer's announcement arrives), spray
 * (when checks start), stop at the first hit or at the caps. Owned by the agent, closed with it.
 */
export class BirthdaySpray {
  private readonly o: ReturnType<typeof resolveSprayOptions>
  private self: SprayAnnouncement | undefined
  private peer: SprayAnnouncement | undefined
  private announceTo: ((a: SprayAnnouncement) => void) | undefined
  private started = false
  private startedAt = 0
  private sprayStartedAt = 0
  private timer: NodeJS.Timeout | undefined
  private plan: SprayPlan | undefined
  private readonly sockets: DatagramSocket[] = []
  private adopted: DatagramSocket | undefined
  private ports: number[] = []
  private readonly probed = new Set<number>()
  private finished = false
  private closed = false
  private binding: Promise<void> | undefined
  private state: BirthdaySprayReport['state'] = 'waiting'
  private detail = 'waiting for both sides\' announcements'
  private packets = 0
  private hitPort: number | null = null
  private endedMs: number | null = null

  constructor (options: BirthdaySprayOptions, private readonly host: SprayHost, private readonly bindAddress: string) {
    this.o = resolveSprayOptions(options)
  }

  /** The live report. */
  get report (): BirthdaySprayReport {
    const p = this.plan?.applicable === true ? this.plan : undefined
    return {
      state: this.state,
      role: p?.role ?? null,
      detail: this.detail,
      probability: p?.probability ?? null,
      plannedSockets: p?.sockets ?? null,
      plannedProbes: p?.probes ?? null,
      socketsOpened: this.sockets.length + (this.adopted !== undefined && !this.sockets.includes(this.adopted) ? 1 : 0),
      portsProbed: this.probed.size,
      packets: this.packets,
      hitPort: this.finalHitPort(p),
      ms: this.endedMs,
      self: this.self ?? null
    }
  }

  /**
   * The probes side may hear from several probed ports (every spray socket whose port it probed sends it a check), and
   * the peer keeps only the first socket that was reached: once the direct path works, its port is the hit.
   */
  private finalHitPort (p: Extract<SprayPlan, { applicable: true }> | undefined): number | null {
    if (p?.role !== 'probes' || this.state !== 'spray-hit') return this.hitPort
    const d = this.host.direct()
    return d !== undefined && d.address === p.target.address && this.probed.has(d.port) ? d.port : this.hitPort
  }

  /**
   * Measure this side's mapping through the STUN servers (the port-prediction measurement), or take the port
   * prediction's own when it runs (`shared`: measuring twice would move a sequential NAT's ports). Never throws.
   */
  async measure (tx: StunTransactions, servers: readonly string[], budgetMs: number, signal?: AbortSignal, shared?: Promise<PortPrediction | undefined>): Promise<void> {
    let p: PortPrediction | undefined
    try {
      p = shared !== undefined ? await shared : predictPorts(await measurePortAllocation(tx, servers, budgetMs, signal), 1)
    } catch (err) { log('measurement failed: %s', (err as Error).message) }
    this.measured(p)
  }

  /** This side's own measurement is in (the port-prediction outcome of the agent's socket). */
  measured (p: PortPrediction | undefined): void {
    if (this.self !== undefined || this.closed) return
    const mapping = p === undefined ? 'unknown' : sprayMappingOf(p)
    this.self = {
      mapping,
      address: p?.address ?? null,
      port: mapping === 'endpoint-independent' ? p?.samples[0] ?? null : null,
      sockets: this.o.sockets,
      probes: this.o.probes,
      rate: this.o.rate,
      portRange: this.o.portRange
    }
    log('measured: %s mapping at %s', mapping, this.self.address ?? '?')
    this.announceTo?.(this.self)
    this.maybeRun()
  }

  /** Where to send this side's announcement (the session's signalling); called at once if it is ready. */
  onAnnounce (send: (a: SprayAnnouncement) => void): void {
    this.announceTo = send
    if (this.self !== undefined) send(this.self)
  }

  /** The peer's announcement (malformed ones are ignored). */
  setPeer (raw: unknown): void {
    const a = parseSprayAnnouncement(raw)
    if (a === undefined) { log('ignored a malformed spray announcement'); return }
    if (this.peer !== undefined) return
    this.peer = a
    this.maybeRun()
  }

  /** Checks have started: spray as soon as both announcements are in, or give up after `waitMs`. */
  start (): void {
    if (this.started || this.closed) return
    this.started = true
    this.startedAt = performance.now()
    this.maybeRun()
    if (this.plan === undefined) {
      const t = setTimeout(() => {
        if (this.plan !== undefined || this.finished) return
        this.finish('spray-not-applicable', this.self === undefined
          ? `this side's mapping was not measured within ${this.o.waitMs} ms`
          : `the peer announced no spray within ${this.o.waitMs} ms (is birthdaySpray on at both ends?)`)
      }, this.o.waitMs)
      t.unref()
      this.timer = t
    }
  }

  private maybeRun (): void {
    if (!this.started || this.finished || this.closed || this.plan !== undefined || this.self === undefined || this.peer === undefined) return
    clearTimeout(this.timer)
    const plan = this.plan = planSpray(this.self, this.peer)
    if (!plan.applicable) { this.finish('spray-not-applicable', plan.why); return }
    this.state = 'running'
    this.sprayStartedAt = performance.now()
    const R = plan.portRange[1] - plan.portRange[0] + 1
    this.detail = `${plan.role === 'sockets' ? `opening ${plan.sockets} sockets towards ${formatEndpoint(plan.target)}` : `probing ${plan.probes} ports of ${plan.target.address}`}: P = 1 − (1 − ${plan.sockets}/${R})^${plan.probes} = ${pct(plan.probability)}`
    log('%s', this.detail)
    if (plan.role === 'sockets') this.binding = this.runSockets(plan)
    else this.runProbes(plan)
  }

  /**
   * Whether the address the peer announced is one of its signalled candidates' (a spray goes nowhere else: a peer must
   * not turn this side's sockets or probes on a third party). False for `waitMs` at most, then the spray ends.
   */
  private targetConfirmed (plan: Extract<SprayPlan, { applicable: true }>): boolean {
    if (this.host.remotes().some(r => r.address === plan.target.address)) return true
    if (performance.now() - this.sprayStartedAt > this.o.waitMs) this.finish('spray-not-applicable', `the peer announced ${plan.target.address}, which none of its candidates has`)
    return false
  }

  private async runSockets (plan: Extract<SprayPlan, { applicable: true }>): Promise<void> {
    const bind = this.o.bind ?? (async () => await bindDatagramSocket({ address: this.bindAddress }))
    // Bind in small batches: the kernel is quick, and the first checks leave while later sockets are still binding.
    let next = 0
    let since: number | undefined
    const holdMs = Math.min(MAX_HOLD_MS, Math.ceil(plan.sockets / plan.rate * 1000) + Math.ceil(plan.peerProbes / plan.peerRate * 1000) + LATE_HIT_MS)
    this.timer = setInterval(() => {
      if (this.finished) return
      const direct = this.host.direct()
      if (direct !== undefined) { this.finish('spray-superseded', `a direct path to ${formatEndpoint(direct)} worked first; spray stopped`); return }
      if (since === undefined) { if (!this.targetConfirmed(plan)) return; since = performance.now() }
      const budget = Math.floor((performance.now() - since) * plan.rate / 1000) - this.packets
      for (let k = 0; k < budget && next < this.sockets.length; k++) {
        const check = this.host.check()
        if (check === undefined) break
        this.sockets[next++].send(check, plan.target)
        this.packets++
      }
      if (performance.now() > since + holdMs) {
        this.finish('spray-exhausted', `${this.packets} checks from ${this.sockets.length} sockets, no probe of the peer reached one within ${holdMs} ms (P was ${pct(plan.probability)})`)
      }
    }, TICK_MS)
    this.timer.unref()
    for (let i = 0; i < plan.sockets && !this.finished; i += 16) {
      const batch = await Promise.allSettled(Array.from({ length: Math.min(16, plan.sockets - i) }, async () => await bind()))
      for (const r of batch) {
        if (r.status === 'rejected') { log('a spray socket did not bind: %s', (r.reason as Error).message); continue }
        const s = r.value
        if (this.finished) { void s.close(); continue }
        this.sockets.push(s)
        s.onMessage((data, from) => { this.onSocketData(s, data, from, plan.target) })
      }
    }
  }

  /** A datagram on a spray socket: from the cone's endpoint it is the hit. */
  private onSocketData (s: DatagramSocket, data: Buffer, from: Endpoint, target: Endpoint): void {
    if (this.finished || from.address !== target.address || from.port !== target.port) return
    this.adopted = s
    this.hitPort = s.local.port
    this.finish('spray-hit', `socket ${this.sockets.indexOf(s) + 1} of ${this.sockets.length} (local port ${s.local.port}) got through to ${formatEndpoint(from)} after ${this.packets} checks; checking the pair`)
    try { this.host.adopt(s, from, data) } catch (err) { log.error('adopting the spray socket failed: %O', err) }
  }

  private runProbes (plan: Extract<SprayPlan, { applicable: true }>): void {
    this.ports = samplePorts(plan.portRange, plan.probes)
    let lastSentAt = 0
    let since: number | undefined
    this.timer = setInterval(() => {
      if (this.finished) return
      // A check from a probed port (the peer's winning socket, learnt as peer-reflexive) ends the spray a round trip
      // before the pair is proven: the agent's checks take it from there.
      const reached = this.host.remotes().find(r => r.address === plan.target.address && this.probed.has(r.port))
      if (reached !== undefined) {
        this.hitPort = reached.port
        this.finish('spray-hit', `a check came from probed port ${reached.port} of ${plan.target.address} after ${this.probed.size} probes`)
        return
      }
      const direct = this.host.direct()
      if (direct !== undefined) {
        if (direct.address === plan.target.address && this.probed.has(direct.port)) {
          this.hitPort = direct.port
          this.finish('spray-hit', `port ${direct.port} of ${plan.target.address} answered after ${this.probed.size} probes`)
        } else this.finish('spray-superseded', `a direct path to ${formatEndpoint(direct)} worked first; spray stopped`)
        return
      }
      if (since === undefined) { if (!this.targetConfirmed(plan)) return; since = performance.now() }
      const budget = Math.floor((performance.now() - since) * plan.rate / 1000) - this.packets
      for (let k = 0; k < budget && this.probed.size < this.ports.length; k++) {
        const check = this.host.check()
        if (check === undefined) break
        const port = this.ports[this.probed.size]
        this.host.socket.send(check, { address: plan.target.address, port })
        this.probed.add(port)
        this.packets++
        lastSentAt = performance.now()
      }
      if (this.probed.size >= this.ports.length && performance.now() - lastSentAt > LATE_HIT_MS) {
        this.finish('spray-exhausted', `${this.probed.size} ports of ${plan.target.address} probed without a hit (P was ${pct(plan.probability)})`)
      }
    }, TICK_MS)
    this.timer.unref()
  }

  private finish (reason: SprayReason, detail: string): void {
    if (this.finished) return
    this.finished = true
    clearInterval(this.timer)
    clearTimeout(this.timer)
    this.state = reason
    this.detail = detail
    this.endedMs = this.sprayStartedAt > 0 ? Math.round(performance.now() - this.sprayStartedAt) : null
    for (const s of this.sockets) if (s !== this.adopted) void s.close()
    log('%s: %s', reason, detail)
    const p = this.plan?.applicable === true ? this.plan : undefined
    this.host.report({
      kind: 'spray',
      server: p === undefined ? '' : p.role === 'sockets' ? formatEndpoint(p.target) : p.target.address,
      ok: reason === 'spray-hit',
      ms: Math.round(performance.now() - (this.startedAt > 0 ? this.startedAt : performance.now())),
      reason,
      ...(p !== undefined ? { probability: p.probability } : {}),
      detail: `${reason}: ${detail}${p !== undefined ? `; ${this.packets} packets, ${p.role === 'sockets' ? `${this.sockets.length} sockets` : `${this.probed.size} ports`}` : ''}`
    })
  }

  /** Stop spraying and close every spray socket the agent did not adopt. Idempotent. */
  async close (): Promise<void> {
    if (this.closed) return
    this.closed = true
    if (!this.finished && this.state === 'running') this.finish('spray-aborted', 'the agent closed')
    this.finished = true
    clearInterval(this.timer)
    clearTimeout(this.timer)
    await this.binding
    await Promise.all(this.sockets.filter(s => s !== this.adopted).map(async s => { await s.close() }))
  }
}
