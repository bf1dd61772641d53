import { InvalidArgumentError } from '../../errors.js'
import { createLogger } from '../../log.js'
import { formatEndpoint, sameTransportAddress, type Endpoint } from '../../net/endpoint.js'
import { AttrType, MessageClass, Method, StunMessage, shortTermKey, type RetransmitOptions } from '../../stun/index.js'
import { candidatePriority, makeCandidate, type Candidate } from '../candidate.js'
import { receiveData, sendData } from './app-data.js'
import { isStunDatagram } from './app-demux.js'
import { CheckList, candidateKey, type CandidatePair } from './check-list.js'
import { buildCheckRequest, type IceRole } from './check-messages.js'
import { answerCheck, nextPacedCheck, onCheckResponse, onCheckTimeout, paceChecks, switchRole } from './checks.js'
import { consentTick, keepaliveTick, nextConsentInterval, onConsentResponse } from './consent.js'
import { newCredentials, newTiebreaker } from './credentials.js'
import { fail, select, updateState } from './nomination.js'
import { CHECK_RETRANSMIT } from './send-check.js'
import { CheckTransactions } from './transactions.js'
import type { IceAction, IceCoreOptions, IceCoreState, IceCredentials, IceState } from './types.js'

const log = createLogger('natcheck:traversal:ice-core')

/**
 * The sans-IO ICE agent core (RFC 8445 full or lite agent, RFC 7675 consent): it holds candidates, the check list,
 * roles and selected pairs, takes datagrams and time as inputs — handle(base, datagram, from, now), tick(now) — and
 * returns actions (send these bytes from that base to that address, deliver app data, the path changed). No
 * sockets, timers or clocks inside: the adapter (Agent) owns those and calls tick(now) at nextDeadline().
 */
export class IceCore implements IceState {
  readonly o: IceState['o']
  readonly epoch: number
  credentials: IceCredentials
  previousCredentials: IceCredentials | undefined
  remoteUfrag: string | undefined
  remoteKey: Buffer | undefined
  awaitingRemoteCredentials = false
  remoteLite = false
  remoteGatheringComplete = false
  localGatheringComplete = false
  role: IceRole
  readonly tiebreaker: bigint
  checks = new CheckList()
  readonly local: Candidate[] = []
  readonly remote: Candidate[] = []
  readonly bases = new Map<string, Candidate>()
  readonly selected = new Map<number, CandidatePair>()
  readonly proven = new Set<string>()
  readonly tx = new CheckTransactions()
  checkTiming: RetransmitOptions = {}
  state: IceCoreState = 'new'
  nextCheckAt: number | undefined
  nextConsentAt: number | undefined
  nextKeepaliveAt: number | undefined

  constructor (options: IceCoreOptions) {
    const components = options.components ?? 1
    if (!Number.isInteger(components) || components < 1 || components > 256) throw new InvalidArgumentError(`components must be 1-256, got ${components}`)
    this.o = {
      now: options.now,
      lite: options.lite === true,
      components,
      checkIntervalMs: options.checkIntervalMs ?? 10,
      initialBurst: Math.max(1, options.initialBurst ?? 8),
      checkRetransmit: options.checkRetransmit ?? CHECK_RETRANSMIT,
      keepaliveMs: options.keepaliveMs ?? 15_000,
      consentIntervalMs: options.consentIntervalMs ?? 5000,
      consentTimeoutMs: options.consentTimeoutMs ?? 30_000,
      random: options.random ?? Math.random
    }
    this.epoch = options.now
    this.credentials = options.credentials ?? newCredentials()
    this.tiebreaker = options.tiebreaker ?? newTiebreaker()
    this.role = this.o.lite ? 'controlled' : options.role ?? 'controlling'
  }

  get controlling (): boolean { return this.role === 'controlling' }

  /** Whether an ICE restart is under way (the old path carries data until a new pair works). */
  get restarting (): boolean { return this.previousCredentials !== undefined }

  /** A local base (host socket or relayed allocation): its candidate is offered unless `offer` is false. */
  addBase (c: Candidate, offer = true): void {
    this.bases.set(candidateKey(c), c)
    if (offer) this.addLocal(c)
  }

  /** Add a local candidate and pair it (if it is a base) with the remote ones; false when it was already known. */
  addLocal (c: Candidate): boolean {
    if (this.local.some(l => candidateKey(l) === candidateKey(c))) return false
    this.local.push(c)
    if (this.remote.length > 0 && this.bases.has(candidateKey(c))) this.checks.addPairs([c], this.remote, this.controlling)
    return true
  }

  /**
   * A base's candidate changed (a relayed allocation moved): the old candidate's pairs fail, the new one is paired.
   * Returns whether the new candidate is new to the local list (to be trickled).
   */
  moveBase (old: Candidate, c: Candidate, now: number, out: IceAction[]): boolean {
    const oldKey = candidateKey(old)
    this.bases.delete(oldKey)
    this.bases.set(candidateKey(c), c)
    const i = this.local.findIndex(l => candidateKey(l) === oldKey)
    if (i >= 0) this.local.splice(i, 1)
    this.tx.cancel(t => t.base === oldKey)
    for (const p of this.checks.pairs) {
      if (candidateKey(p.local) === oldKey && p.state !== 'failed') fail(this, p, 'cancelled', `the relayed address moved to ${formatEndpoint(c)}`, now, out)
    }
    return this.addLocal(c)
  }

  /** The peer's ICE credentials (from signalling). */
  setRemoteCredentials (ufrag: string, pwd: string): void {
    this.remoteUfrag = ufrag
    this.remoteKey = shortTermKey(pwd)
    this.awaitingRemoteCredentials = false
  }

  /** The peer is ICE-lite (RFC 8445 §6.1.1): this full agent controls. */
  setRemoteLite (): void {
    if (this.o.lite) throw new InvalidArgumentError('both agents are ICE-lite: one must be a full agent (RFC 8445 §6.1.1)')
    this.remoteLite = true
    if (this.role !== 'controlling') switchRole(this)
  }

  /**
   * Add remote candidates; new pairs join the check list. A signalled candidate already learnt as peer-reflexive
   * replaces the learnt one (in the remote list and its pairs) with its real type and priority.
   */
  addRemoteCandidates (candidates: readonly Candidate[]): void {
    for (const c of candidates) {
      if (c.type === 'prflx') continue
      const i = this.remote.findIndex(r => r.type === 'prflx' && r.address === c.address && r.port === c.port && r.transport === c.transport && r.component === c.component)
      if (i < 0) continue
      const learnt = this.remote[i]
      this.remote[i] = c
      this.checks.replaceRemote(learnt, c, this.controlling)
    }
    const fresh = candidates.filter(c => !this.remote.some(r => r.address === c.address && r.port === c.port && r.component === c.component))
    this.remote.push(...fresh)
    this.checks.addPairs(this.local.filter(l => this.bases.has(candidateKey(l))), fresh, this.controlling)
  }

  /** The peer removed a candidate: pairs with it fail at once and it is not paired again. */
  removeRemoteCandidate (c: Endpoint, now: number): IceAction[] {
    const out: IceAction[] = []
    const i = this.remote.findIndex(r => sameTransportAddress(r, c))
    if (i < 0) return out
    this.remote.splice(i, 1)
    this.tx.cancel(t => sameTransportAddress(t.to, c))
    for (const p of this.checks.pairs) if (sameTransportAddress(p.remote, c) && p.state !== 'failed') fail(this, p, 'cancelled', 'the peer removed this candidate', now, out)
    return out
  }

  setRemoteGatheringComplete (): IceAction[] { this.remoteGatheringComplete = true; const out: IceAction[] = []; updateState(this, out); return out }
  setLocalGatheringComplete (): IceAction[] { this.localGatheringComplete = true; const out: IceAction[] = []; updateState(this, out); return out }

  /**
   * ICE restart (RFC 8445 §9): new local credentials and a new check list over the same candidates; checks wait for
   * the peer's new credentials; the old path carries data and old-generation checks are answered until a new pair
   * succeeds.
   */
  restart (credentials: IceCredentials = newCredentials()): IceCredentials {
    this.previousCredentials ??= this.credentials
    this.credentials = credentials
    this.checks = new CheckList()
    this.awaitingRemoteCredentials = true
    this.tx.cancel(t => t.kind === 'check')
    this.checks.addPairs(this.local.filter(l => this.bases.has(candidateKey(l))), this.remote, this.controlling)
    log('ICE restart: new ufrag %s', credentials.ufrag)
    return credentials
  }

  /**
   * Pair one local base with one remote endpoint and queue that check first (RFC 8445 §7.3.1.4), for a base opened
   * after gathering (the birthday spray's socket that got through): the base joins the local list (never signalled:
   * the peer learns it as peer-reflexive), an unknown remote becomes a peer-reflexive candidate. Returns the pair, or
   * undefined when `local` is not a base. The check goes out at the next tick once checks have started.
   */
  checkPair (local: Candidate, remote: Endpoint): CandidatePair | undefined {
    const key = candidateKey(local)
    if (!this.bases.has(key)) return undefined
    if (!this.local.some(l => candidateKey(l) === key)) this.local.push(local)
    let r = this.remote.find(c => sameTransportAddress(c, remote) && c.component === local.component)
    if (r === undefined) {
      r = makeCandidate({ type: 'prflx', address: remote.address, port: remote.port, component: local.component })
      this.remote.push(r)
    }
    this.checks.addPairs([local], [r], this.controlling)
    const pair = this.checks.find(key, remote)
    if (pair !== undefined) this.checks.trigger(pair)
    return pair
  }

  /**
   * A connectivity check request with the current credentials, role and tie-breaker (RFC 8445 §7.2.2), outside any
   * transaction: its answer is not awaited (the peer's triggered check proves the pair). For packets the adapter
   * sends on its own (the birthday spray, the prediction burst). Undefined while the peer's credentials are unknown.
   */
  rawCheck (component = 1): Buffer | undefined {
    if (this.remoteKey === undefined || this.awaitingRemoteCredentials) return undefined
    return buildCheckRequest({
      localUfrag: this.credentials.ufrag,
      remoteUfrag: this.remoteUfrag ?? '',
      remoteKey: this.remoteKey,
      priority: candidatePriority('prflx', 65534, component),
      role: this.role,
      tiebreaker: this.tiebreaker,
      nominate: false
    })
  }

  /** Retransmission of checks tuned to a measured path (over checkRetransmit). */
  tuneChecks (timing: RetransmitOptions): void { this.checkTiming = timing }

  /** Start checking (RFC 8445 §6.1.4.2) with the initial burst, and schedule consent and keepalives. Lite: nothing. */
  start (now: number): IceAction[] {
    const out: IceAction[] = []
    if (this.o.lite || this.nextCheckAt !== undefined) return out
    this.nextCheckAt = now
    this.nextConsentAt = now + nextConsentInterval(this)
    this.nextKeepaliveAt = now + this.o.keepaliveMs
    this.state = 'checking'
    out.push({ type: 'state', state: 'checking' })
    for (let i = 0; i < this.o.initialBurst; i++) {
      this.nextCheckAt = now
      paceChecks(this, now, out)
    }
    return out
  }

  /**
   * A datagram arrived on base `base` from `from` that is not for the adapter's own transactions (gathering): a
   * response to a check, a check request, an indication, or application data. Never throws.
   */
  handle (base: string, data: Buffer, from: Endpoint, now: number): IceAction[] {
    const out: IceAction[] = []
    if (!this.bases.has(base) || data.length === 0) return out
    try {
      this.dispatch(base, data, from, now, out)
    } catch (err) {
      // An attribute that does not decode (attributes decode lazily): the datagram is dropped, nothing else changes.
      log.trace('dropped a datagram from %s: %s', formatEndpoint(from), (err as Error).message)
    }
    return out
  }

  private dispatch (base: string, data: Buffer, from: Endpoint, now: number, out: IceAction[]): void {
    if (!isStunDatagram(data)) { receiveData(this, base, data, from, out); return }
    const m = StunMessage.decode(data)
    if (m.method !== Method.Binding) return
    if (m.cls === MessageClass.Request) { answerCheck(this, base, m, from, now, out); return }
    if (m.cls !== MessageClass.SuccessResponse && m.cls !== MessageClass.ErrorResponse) return
    // RFC 8489 §7.3: a response whose FINGERPRINT is wrong is not STUN: discard it, the transaction goes on.
    if (m.has(AttrType.Fingerprint) && !m.verifyFingerprint()) return
    const t = this.tx.peek(data)
    if (t === undefined) return
    // RFC 8489 §9.1.4: a success response without a valid MESSAGE-INTEGRITY is handled as if none had come (so a
    // forged one cannot end the check); error responses (a 401 cannot carry it) end the transaction.
    if (m.cls === MessageClass.SuccessResponse && !m.verifyIntegrity(t.key)) return
    this.tx.take(data)
    if (t.kind === 'consent') onConsentResponse(t, m, now)
    else if (t.pair.state !== 'failed' || t.recheck) onCheckResponse(this, t, m, from, now, out)
  }

  /** Time passed: retransmissions and timeouts of checks, the next paced check, consent and keepalives. */
  tick (now: number): IceAction[] {
    const out: IceAction[] = []
    for (const t of this.tx.due(now, out)) if (t.kind === 'check') onCheckTimeout(this, t, now, out)
    paceChecks(this, now, out)
    consentTick(this, now, out)
    keepaliveTick(this, now, out)
    updateState(this, out)
    return out
  }

  /** The earliest time tick() has something to do, or undefined. */
  nextDeadline (): number | undefined {
    const times = [this.tx.nextDeadline(), nextPacedCheck(this), this.selected.size > 0 ? this.nextConsentAt : undefined, this.selected.size > 0 ? this.nextKeepaliveAt : undefined]
    const defined = times.filter((t): t is number => t !== undefined)
    return defined.length === 0 ? undefined : Math.min(...defined)
  }

  /** Send an application datagram on a component's selected pair: the action, or undefined without a path. */
  send (data: Uint8Array, component = 1): IceAction | undefined { return sendData(this, data, component) }

  /** The selected pair of a component. */
  path (component = 1): CandidatePair | undefined { return this.selected.get(component) }

  /** Stop: pending transactions end silently, nothing more is scheduled. */
  close (): void {
    this.tx.clear()
    this.nextCheckAt = undefined
    this.nextConsentAt = undefined
    this.nextKeepaliveAt = undefined
  }

  /** Re-run selection (after the app changed something the selection depends on). */
  reselect (now: number): IceAction[] {
    const out: IceAction[] = []
    for (let c = 1; c <= this.o.components; c++) select(this, c, now, out)
    return out
  }
}
