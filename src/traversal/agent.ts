import { EventEmitter } from 'node:events'
import { createLogger } from '../log.js'
import { formatEndpoint, ipFamily, sameTransportAddress, type Endpoint } from '../net/endpoint.js'
import { bindDatagramSocket } from '../net/native.js'
import type { DatagramSocket } from '../net/udp.js'
import type { TurnClient } from '../relay/turn-client.js'
import { StunTransactions, type RetransmitOptions } from '../stun/index.js'
import type { AgentEvents, AgentOptions, MdnsResolution, PathInfo } from './agent-options.js'
import { gatherCandidates, gatherComponent, type AgentBase, type GatherHost, type HardNatGathering } from './agent-gather.js'
import { makeCandidate, type Candidate } from './candidate.js'
import type { GatherAttempt } from './gather.js'
import { candidateKey, isRelayed, type CandidatePair, type CheckList } from './ice-core/check-list.js'
import { IceCore } from './ice-core/ice-core.js'
import type { IceAction } from './ice-core/types.js'
import { AgentMdns } from './agent-mdns.js'
import { isMdnsName } from './mdns.js'
import { isPredictedCandidate, predictedPortCount, type PortPrediction } from './port-prediction.js'
import { BirthdaySpray, type SprayHost } from './birthday-spray.js'
import { resolveSprayOptions } from './spray-plan.js'
import { SocketMux } from './socket-mux.js'

export type { AgentEvents, AgentOptions, MdnsResolution, PathInfo } from './agent-options.js'

const log = createLogger('natcheck:traversal:agent')

/** The adapter's clock: the core gets every reading as an input. */
const clock = (): number => performance.now()

/**
 * An ICE agent (RFC 8445) for one peer connection: gathers host, server-reflexive and relayed candidates (plus TURN
 * over TCP/TLS where UDP is blocked), runs paced connectivity checks with short-term credentials, roles and
 * tie-breakers (487 conflicts), triggered checks, learns peer-reflexive candidates, nominates with USE-CANDIDATE, and
 * keeps the best working path: a relayed pair as soon as one works, a direct pair the moment one succeeds, and back
 * to the relay if the direct path loses consent (RFC 7675). One component by default; two (RTP and RTCP apart) with
 * `components: 2`.
 *
 * The protocol lives in the sans-IO `IceCore` (src/traversal/ice-core/); this class is its adapter: it owns the
 * sockets, gathering, TURN clients and one timer that calls the core's tick(now) at its next deadline.
 */
export class Agent extends EventEmitter<AgentEvents> {
  /** The sans-IO core: candidates, check list, roles, selected pairs. */
  private readonly core: IceCore
  readonly gatherAttempts: GatherAttempt[] = []
  private readonly bases = new Map<string, AgentBase>()
  /** The sockets of components 2 and up, with whether the agent bound them. */
  private readonly componentMuxes: Array<{ mux: SocketMux, owned: boolean }>
  private timer: NodeJS.Timeout | undefined
  private timerAt: number | undefined
  private readonly timers: NodeJS.Timeout[] = []
  private started = false
  private closing: Promise<void> | undefined
  private readonly startedAt = clock()
  private readonly early: Array<[Buffer, number]> = []
  /** Port mapping, port prediction and birthday spray, as gathering set them up (agent-gather.ts). */
  private readonly hardNat: HardNatGathering = {}
  /** Checks start when these have settled: the port-mapping answer, the prediction measurement (each bounded). */
  private readonly checkGates: Array<Promise<void>> = []

  private constructor (readonly mux: SocketMux, private readonly ownsSocket: boolean, private readonly options: AgentOptions, extra: Array<{ mux: SocketMux, owned: boolean }>) {
    super()
    this.componentMuxes = extra
    this.mdns = new AgentMdns(options, clock)
    this.core = new IceCore({
      now: this.startedAt,
      role: options.role,
      lite: options.lite,
      components: 1 + extra.length,
      checkIntervalMs: options.checkIntervalMs,
      initialBurst: options.initialBurst,
      checkRetransmit: options.checkRetransmit,
      keepaliveMs: options.keepaliveMs,
      consentIntervalMs: options.consentIntervalMs,
      consentTimeoutMs: options.consentTimeoutMs
    })
    ;(this as EventEmitter).on('newListener', (event: string | symbol) => {
      if (event === 'message' && this.early.length > 0) queueMicrotask(() => { for (const [d, c] of this.early.splice(0)) this.emit('message', d, c) })
    })
  }

  /** Bind the socket (unless given), and one per extra component, and make an agent. */
  static async create (options: AgentOptions = {}): Promise<Agent> {
    if (typeof options.portPrediction === 'object') predictedPortCount(options.portPrediction)
    if (typeof options.birthdaySpray === 'object') resolveSprayOptions(options.birthdaySpray)
    const components = options.rtcpMux === true ? 1 : options.components ?? 1
    const socket = options.socket ?? await bindDatagramSocket({ address: options.bindAddress ?? '0.0.0.0' })
    const extra: Array<{ mux: SocketMux, owned: boolean }> = []
    for (let c = 2; c <= components; c++) {
      const given = options.componentSockets?.[c - 2]
      extra.push({ mux: new SocketMux(given ?? await bindDatagramSocket({ address: options.bindAddress ?? '0.0.0.0' })), owned: given === undefined })
    }
    return new Agent(new SocketMux(socket), options.socket === undefined, options, extra)
  }

  /** This agent's ICE username fragment (RFC 8445 §5.3). */
  get ufrag (): string { return this.core.credentials.ufrag }
  /** This agent's ICE password. */
  get pwd (): string { return this.core.credentials.pwd }
  /** The ICE-CONTROLLING/-CONTROLLED tie-breaker. */
  get tiebreaker (): bigint { return this.core.tiebreaker }
  get role (): 'controlling' | 'controlled' { return this.core.role }
  /** The current check list (a new one after an ICE restart). */
  get checks (): CheckList { return this.core.checks }
  get local (): Candidate[] { return this.core.local }
  get remote (): Candidate[] { return this.core.remote }
  /** How many components the agent runs (1, or 2 for RTP and RTCP apart). */
  get components (): number { return this.core.o.components }

  /** Whether an ICE restart is under way (the old path carries data until a new pair works). */
  get restarting (): boolean { return this.core.restarting }
  /** The current port-mapped candidate, if the gateway granted one. */
  get portMappedCandidate (): Candidate | undefined { return this.hardNat.portMappedCandidate }
  /** What port prediction concluded (when it was asked for and has finished). */
  get portPrediction (): PortPrediction | undefined { return this.hardNat.portPrediction }
  /** The birthday spray, when asked for (created by gather()). */
  get birthdaySpray (): BirthdaySpray | undefined { return this.hardNat.birthdaySpray }

  /**
   * ICE restart (RFC 8445 §9): new local credentials and a new check list over the same candidates. Data keeps flowing
   * on the selected pair until a pair checked with the new credentials succeeds; checks with the old credentials are
   * still answered until then. Signal the returned ufrag/pwd to the peer, and give its new ones to
   * setRemoteCredentials (the peer restarts too). Returns the new credentials.
   */
  restart (): { ufrag: string, pwd: string } {
    const c = this.core.restart()
    this.schedule()
    return { ufrag: c.ufrag, pwd: c.pwd }
  }

  /** Milliseconds since the agent was created. */
  elapsed (): number { return clock() - this.startedAt }

  /**
   * Tune check retransmission to a measured round trip (e.g. the signalling RTT, which is at least the direct path's
   * in the usual triangle): RTO = 2·RTT within 5-50 ms, and enough sends to keep trying for ~3 s. A NAT that dropped
   * the first crossing packet then gets its retry after a few round trips, not after a fixed 50 ms. Ignored when the
   * caller set checkRetransmit explicitly.
   */
  tuneToRtt (rttMs: number): void {
    if (this.options.checkRetransmit !== undefined || !(rttMs > 0)) return
    const rtoMs = Math.min(50, Math.max(5, 2 * rttMs))
    const rc = Math.min(12, Math.ceil(Math.log2(3000 / rtoMs + 1)) + 1)
    this.core.tuneChecks({ rtoMs, rc, rm: 4 } satisfies RetransmitOptions)
  }

  /** Whether checks are still running (a direct path may still be found). */
  get checking (): boolean { return this.core.checks.active }

  /** The selected pair of component 1, if any path works. */
  get path (): PathInfo | undefined { return this.pathOf(1) }

  /** The selected pair of a component, if any path works. */
  pathOf (component: number): PathInfo | undefined {
    const p = this.core.path(component)
    return p === undefined ? undefined : pathInfo(p)
  }

  private addBase (candidate: Candidate, socket: DatagramSocket, turn?: TurnClient): AgentBase {
    const base: AgentBase = {
      candidate,
      socket,
      turn,
      // Gathering's transactions (STUN, port prediction) on this base; everything else goes to the core.
      tx: new StunTransactions(socket, { onOther: (data, from) => { this.feed(base, data, from) } })
    }
    this.bases.set(candidateKey(candidate), base)
    this.core.addBase(candidate, false)
    return base
  }

  /** When (performance.now()) the first application datagram from the peer arrived. */
  firstMessageAt: number | undefined
  /** Whether gathering has finished: every STUN and TURN attempt answered, failed or was skipped. */
  gatheringComplete = false
  /** Whether the peer signalled end-of-candidates (RFC 8838 §8.2). */
  get remoteGatheringComplete (): boolean { return this.core.remoteGatheringComplete }

  /**
   * Gather candidates (RFC 8445 §5.1.1) for every component: see `gatherCandidates` (agent-gather.ts). Extra components (RTP and
   * RTCP apart) get host, server-reflexive and relayed candidates from their own sockets. With `trickle` (RFC 8838 §4) this
   * resolves with the host candidates at once; later ones are `candidate` events, then `gathering-complete`.
   */
  async gather (options: { trickle?: boolean } = {}): Promise<Candidate[]> {
    let pending = 1 + this.componentMuxes.length
    const done = (later: boolean): void => {
      if (--pending > 0) return
      this.gatheringComplete = true
      this.run(this.core.setLocalGatheringComplete())
      if (later) queueMicrotask(() => { this.emit('gathering-complete') }); else this.emit('gathering-complete')
    }
    let announce = options.trickle === true
    const budget = new Promise<void>(resolve => { const t = setTimeout(resolve, this.options.gatherTimeoutMs ?? 1500); t.unref(); this.timers.push(t) })
    const first = gatherCandidates(this.gatherHost(this.mux, done), options)
    const extra = this.componentMuxes.map(({ mux }, i) => gatherComponent(this.gatherHost(mux, () => {}), i + 2, () => announce))
    for (const e of extra) void e.then(() => { done(false) })
    await first
    // Without trickle, the extra components get the same budget as the first; what they find later is emitted.
    if (!announce) await Promise.race([Promise.all(extra), budget])
    announce = true
    return this.local.map(c => this.mdns.signalled(c))
  }

  private gatherHost (mux: SocketMux, complete: (later: boolean) => void): GatherHost {
    return {
      mux,
      options: this.options,
      gatherAttempts: this.gatherAttempts,
      local: this.local,
      hardNat: this.hardNat,
      remotes: () => this.remote,
      rawCheck: () => this.closing === undefined ? this.core.rawCheck() : undefined,
      sprayHost: (hostBase, primary) => this.sprayHost(hostBase, primary),
      closed: () => this.closing !== undefined,
      addBase: (c, socket, turn) => this.addBase(c, socket, turn),
      addLocal: (c) => this.addLocal(c),
      announce: (c) => { this.emit('candidate', this.mdns.signalled(c)) },
      complete,
      gateChecks: (p, maxMs) => { this.gateChecks(p, maxMs) },
      delay: async (ms) => await new Promise<void>(resolve => { const t = setTimeout(resolve, ms); t.unref(); this.timers.push(t) }),
      relayMoved: (base, relayed, mapped, server) => { this.relayMoved(base, relayed, mapped, server) }
    }
  }

  private addLocal (c: Candidate): boolean {
    const added = this.core.addLocal(c)
    if (added) this.schedule()
    return added
  }

  /** Whether the peer said `a=ice-lite`. */
  get remoteLite (): boolean { return this.core.remoteLite }

  /**
   * The peer is an ICE-lite agent (RFC 8445 §6.1.1): this full agent takes the controlling role, checks and nominates.
   * Two lite agents cannot run ICE: throws InvalidArgumentError when this agent is lite too.
   */
  setRemoteLite (): void { this.core.setRemoteLite() }

  /** The peer has no more candidates (RFC 8838 §8.2: end-of-candidates). */
  setRemoteGatheringComplete (): void { this.run(this.core.setRemoteGatheringComplete()) }

  /** The peer's ICE credentials (from signalling). */
  setRemoteCredentials (ufrag: string, pwd: string): void {
    this.core.setRemoteCredentials(ufrag, pwd)
    this.schedule()
  }

  private readonly mdns: AgentMdns
  /** mDNS names among the remote candidates, and what each resolved to (filled as resolutions finish). */
  get mdnsResolutions (): MdnsResolution[] { return this.mdns.resolutions }

  /**
   * Add remote candidates (at once or trickled); new pairs join the check list. A host candidate named by an mDNS
   * `.local` name is resolved first (draft-ietf-mmusic-mdns-ice-candidates §3.2.2, bounded by `mdnsTimeoutMs`) and
   * joins with the address it resolved to; one that does not resolve is dropped, and the peer's checks from its real
   * address make it a peer-reflexive candidate instead (RFC 8445 §7.3.1.3). A signalled candidate already learnt as
   * peer-reflexive replaces the learnt one, so pairs and reports carry its real type and priority.
   */
  addRemoteCandidates (candidates: Candidate[]): void {
    for (const c of candidates.filter(c => isMdnsName(c.address))) void this.resolveRemote(c)
    this.core.addRemoteCandidates(candidates.filter(c => !isMdnsName(c.address)))
    this.schedule()
  }

  private async resolveRemote (c: Candidate): Promise<void> {
    const resolved = await this.mdns.resolve(c)
    if (resolved !== undefined && this.closing === undefined) this.addRemoteCandidates([resolved])
  }

  /**
   * The peer says one of its candidates is gone (its relay moved): pairs with it fail at once, instead of when consent
   * runs out (RFC 7675), and it is not paired again. Not in RFC 8445/8838, which cannot remove a candidate.
   */
  removeRemoteCandidate (c: Endpoint): void { this.run(this.core.removeRemoteCandidate(c, clock())) }

  /**
   * A relayed base's allocation moved (TurnClient failover, or a new address after the server lost it): the old
   * relayed candidate is gone (its pairs fail, `candidate-removed` tells the peer) and the new address is a new
   * candidate, paired and trickled (`candidate`), so checks find the path through the new relay.
   */
  private relayMoved (base: AgentBase, relayed: Endpoint, mapped: Endpoint, server: Endpoint): void {
    const old = base.candidate
    if (this.closing !== undefined || sameTransportAddress(old, relayed)) return
    const c = makeCandidate({ type: 'relay', address: relayed.address, port: relayed.port, server: formatEndpoint(server), related: mapped, localPreference: (old.priority >> 8) & 0xffff, component: old.component })
    this.bases.delete(candidateKey(old))
    base.candidate = c
    this.bases.set(candidateKey(c), base)
    const out: IceAction[] = []
    const fresh = this.core.moveBase(old, c, clock(), out)
    this.run(out)
    this.emit('candidate-removed', this.mdns.signalled(old))
    if (fresh) this.emit('candidate', this.mdns.signalled(c))
  }

  /** Start the paced checks (RFC 8445 §6.1.4.2), consent and keepalives, once the check gates have settled. */
  start (): void {
    if (this.started) return
    this.started = true
    // A lite agent only answers (RFC 8445 §2.5): no checks, consent requests or keepalives of its own.
    if (this.options.lite === true) return
    const begin = (): void => {
      if (this.closing !== undefined) return
      this.hardNat.predictionBurst?.()
      this.run(this.core.start(clock()))
    }
    // Predicting at both ends: the burst goes to the peer's predicted ports, so wait (bounded) until they are known.
    if (this.hardNat.predictionBurst !== undefined) this.gateChecks(this.peerPredictionKnown(), 1000)
    if (this.checkGates.length === 0) begin(); else void Promise.all(this.checkGates).then(begin)
    this.hardNat.birthdaySpray?.start()
  }

  /**
   * Hold the checks until `p` settles, at most `maxMs`: with port mapping, so they leave through the mapping (a NAT
   * keeps the port of a flow it already has); with prediction, so they do not take the ports being measured.
   */
  private gateChecks (p: Promise<void>, maxMs: number): void {
    this.checkGates.push(Promise.race([p, new Promise<void>(resolve => { const t = setTimeout(resolve, maxMs); t.unref(); this.timers.push(t) })]))
  }

  /** A datagram on a base that gathering's transactions did not claim: the core's. */
  private feed (base: AgentBase, data: Buffer, from: Endpoint): void {
    if (this.closing !== undefined) return
    this.run(this.core.handle(candidateKey(base.candidate), data, from, clock()))
  }

  /** Carry out the core's actions, then re-arm the timer for its next deadline. */
  private run (actions: readonly IceAction[]): void {
    for (const a of actions) {
      switch (a.type) {
        case 'send': this.bases.get(a.base)?.socket.send(a.data, a.to); break
        case 'data': this.deliver(a.data, a.component); break
        case 'pair': this.emit('pair', a.pair); break
        case 'state': log('state: %s', a.state); break
        case 'path': {
          const relay = this.bases.get(candidateKey(a.pair.local))?.turn
          const remote = a.pair.remote
          if (relay !== undefined) void relay.bindChannel(remote).catch((err: Error) => { log('channel bind to %s failed (Send indications go on): %s', formatEndpoint(remote), err.message) })
          this.emit('path', pathInfo(a.pair), a.previous === undefined ? undefined : pathInfo(a.previous))
          break
        }
      }
    }
    this.schedule()
  }

  private deliver (message: Buffer, component: number): void {
    this.firstMessageAt ??= clock()
    // The peer may start sending before the application (or the session object) listens: keep up to 256.
    if (this.listenerCount('message') > 0) this.emit('message', message, component)
    else if (this.early.length < 256) this.early.push([message, component])
  }

  /** One timer for the core: it fires at the core's next deadline and calls tick(now). */
  private schedule (): void {
    if (this.closing !== undefined) return
    const at = this.core.nextDeadline()
    if (at === this.timerAt && this.timer !== undefined) return
    clearTimeout(this.timer)
    this.timer = undefined
    this.timerAt = at
    if (at === undefined) return
    this.timer = setTimeout(() => {
      this.timer = undefined
      this.timerAt = undefined
      if (this.closing === undefined) this.run(this.core.tick(clock()))
    }, Math.max(0, Math.ceil(at - clock())))
    // Checks in flight hold the process open; consent and keepalives alone do not.
    if (this.core.tx.size === 0 && !this.core.checks.active) this.timer.unref()
  }

  /** Send an application datagram on a component's selected path. Returns false when it has no path yet. */
  send (data: Uint8Array, component = 1): boolean {
    if (this.closing !== undefined) return false
    // Raw: the app's bytes are the datagram (RFC 7983 demultiplexing keeps them apart from STUN at the peer). Sent
    // from a copy, so the app may reuse its buffer at once whatever the socket does underneath.
    const a = this.core.send(data, component)
    if (a?.type !== 'send') return false
    const base = this.bases.get(a.base)
    if (base === undefined) return false
    base.socket.send(a.data, a.to)
    return true
  }

  /** Every pair with its outcome (for the connect report). */
  attempts (): CandidatePair[] { return [...this.core.checks.pairs] }

  /** Stop checks and timers, release TURN allocations and the port mapping, close the sockets the agent bound. Idempotent. */
  close (): Promise<void> {
    this.closing ??= (async () => {
      clearTimeout(this.timer)
      this.core.close()
      for (const t of this.timers) clearTimeout(t)
      await this.hardNat.birthdaySpray?.close()
      for (const b of this.bases.values()) b.tx.close()
      await Promise.all([...this.bases.values()].map(async b => { await b.socket.close(); await b.turn?.close() }))
      await this.hardNat.portMapAttempt
      await this.hardNat.portMapper?.close()
      await this.mdns.close()
      if (this.ownsSocket) await this.mux.socket.close()
      for (const m of this.componentMuxes) if (m.owned) await m.mux.socket.close()
      this.emit('closed')
    })()
    return this.closing
  }

  async [Symbol.asyncDispose] (): Promise<void> { await this.close() }

  /** Resolves when this side's prediction is in and, if it predicted, the peer's predicted candidates (or its end-of-candidates) are too. */
  private async peerPredictionKnown (): Promise<void> {
    // Bounded like the gate that waits for it; trickled predicted candidates come together, so one more poll takes them all.
    let seen = false
    for (const until = clock() + 1000; this.closing === undefined && clock() < until;) {
      const own = this.hardNat.portPrediction
      if (own !== undefined && (own.reason !== 'predicted' || this.remoteGatheringComplete || seen)) return
      seen = this.remote.some(isPredictedCandidate)
      await new Promise(resolve => { const t = setTimeout(resolve, 5); t.unref() })
    }
  }

  /**
   * The birthday spray's view of this agent: its ICE socket, checks with its credentials, its direct path, and the
   * adoption of the spray socket that got through: a new base (a host candidate on that port, never signalled: the
   * peer learns it as peer-reflexive), paired with the peer's endpoint and checked at once (RFC 8445 §7.3.1.4).
   */
  private sprayHost (hostBase: AgentBase, primary: string): SprayHost {
    return {
      socket: hostBase.socket,
      check: () => this.closing === undefined ? this.core.rawCheck() : undefined,
      direct: () => { const p = this.path; return p?.type === 'direct' ? p.remote : undefined },
      remotes: () => this.remote,
      adopt: (socket, from, first) => {
        if (this.closing !== undefined) { void socket.close(); return }
        const c = makeCandidate({ type: 'host', address: primary, port: socket.local.port, server: 'birthday-spray', localPreference: 0 })
        const base = this.addBase(c, socket)
        this.core.checkPair(c, from)
        this.feed(base, first, from)
      },
      report: (attempt) => { this.gatherAttempts.push(attempt) }
    }
  }
}

function pathInfo (p: CandidatePair): PathInfo {
  return { type: isRelayed(p) ? 'relay' : 'direct', local: p.local, remote: p.remote, rttMs: p.rttMs ?? null, component: p.component }
}
