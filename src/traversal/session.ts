import { randomBytes } from 'node:crypto'
import { EventEmitter } from 'node:events'
import { AbortError, ERROR_CODES, InvalidArgumentError, NatError, NoPathError, SignallingTimeoutError } from '../errors.js'
import { createLogger } from '../log.js'
import { Agent, type AgentOptions, type PathInfo } from './agent.js'
import { candidateFromSdp, candidateToSdp, type Candidate } from './candidate.js'
import type { CandidatePair, CheckOutcome } from './ice-core/check-list.js'
import type { GatherAttempt } from './gather.js'
import type { SignalChannel, SignalMessage } from './signal-channel.js'
import { TcpPunchLink, resolveTcpPunchOptions, type TcpPunchReport, type TcpSimultaneousOpenOptions } from './tcp-punch-link.js'

const log = createLogger('natcheck:traversal:session')

/** The connection could not be made: no candidate pair worked within the time allowed. */
export class ConnectError extends NatError {
  constructor (message: string, readonly report: ConnectReport) {
    super(message, ERROR_CODES.CONNECT)
  }
}

/** One candidate pair that was checked, with its outcome and timing. */
export interface ConnectAttempt {
  readonly local: { type: string, address: string, port: number }
  readonly remote: { type: string, address: string, port: number }
  readonly state: string
  readonly outcome: CheckOutcome | null
  readonly detail: string | null
  readonly checksSent: number
  readonly startedMs: number | null
  readonly endedMs: number | null
  readonly rttMs: number | null
  readonly nominated: boolean
}

/** What happened during connect. */
export interface ConnectReport {
  readonly role: 'controlling' | 'controlled'
  readonly path: PathInfo | null
  readonly timings: {
    /** Gathering took this long. */
    readonly gatherMs: number | null
    /** From the start to both peers having each other's candidates and starting checks together. */
    readonly signalledMs: number | null
    /** Round trip to the peer through signalling, used to start both sides' checks at the same moment. */
    readonly signallingRttMs: number | null
    /** From the checks' start to the first working path (data can flow). */
    readonly firstDatagramMs: number | null
    /** From the checks' start to a direct path, if one was found. */
    readonly directMs: number | null
    /** Wall clock from connect() being called (gathering and signalling included) to the first working path. */
    readonly firstPathFromStartMs: number | null
    /** Wall clock from connect() being called to the first application datagram from the peer. */
    readonly firstMessageFromStartMs: number | null
    /** Wall clock from connect() being called to a direct path. */
    readonly directFromStartMs: number | null
  }
  readonly gathering: GatherAttempt[]
  readonly localCandidates: Candidate[]
  readonly remoteCandidates: Candidate[]
  readonly attempts: ConnectAttempt[]
  /** The TCP simultaneous open (when `tcpSimultaneousOpen` was on): mapping, each attempt with its reason code. */
  readonly tcpPunch: TcpPunchReport | null
}

/** Options for connect(). */
export interface ConnectOptions extends AgentOptions {
  /** Signalling to the peer. */
  readonly channel: SignalChannel
  /** Who runs the checks' nomination (RFC 8445 §6.1.1); both sides must choose differently (e.g. by comparing ids). */
  readonly role: 'controlling' | 'controlled'
  /**
   * The ICE role, when it must differ from the signalling role (default: the same). Setting both sides to
   * 'controlling' exercises the RFC 8445 §7.3.1.1 role-conflict repair.
   */
  readonly iceRole?: 'controlling' | 'controlled'
  /** Give up when no path works after this long (default 15 s). */
  readonly timeoutMs?: number
  /** After the first path works, keep checking for a direct one (default true: relay first, then upgrade). */
  readonly upgrade?: boolean
  /**
   * TCP simultaneous open (opt-in; RFC 6544 `tcptype so` candidates, RFC 9293 §3.5), for networks that drop UDP but
   * let TCP out: learn the public TCP endpoint over STUN/TCP (the STUN servers, then the TURN servers), offer it, and
   * connect() to the peer's from the same port at the moment the checks start, retried at freshly timed moments. A
   * connected stream is authenticated with an ICE check and carries datagrams framed per RFC 4571. It runs beside the
   * UDP checks and the relay: a direct UDP path is preferred, then the TCP path, then the relay. Both peers must ask.
   * The offer/answer waits for the TCP mapping, at most `mappingTimeoutMs` (1.5 s) when STUN over TCP is silent.
   */
  readonly tcpSimultaneousOpen?: boolean | TcpSimultaneousOpenOptions
}

/** Events of PeerSession. */
export interface PeerSessionEvents {
  message: [data: Buffer]
  /** The path changed (e.g. relay → direct, or back to the relay when the direct path died). */
  path: [path: PathInfo, previous: PathInfo | undefined]
  closed: []
}

/**
 * A datagram session with one peer across NATs. Data goes over whatever path works — the relay as soon as it does,
 * a direct path as soon as one is proven, the relay again if the direct path dies — without the application noticing
 * beyond `path` events. Datagram semantics: messages may be lost or reordered, never merged.
 */
export class PeerSession extends EventEmitter<PeerSessionEvents> {
  private closing: Promise<void> | undefined
  private lastPath: PathInfo | undefined
  /** @internal */
  constructor (readonly agent: Agent, private readonly reportFn: () => ConnectReport, private readonly unsubscribe: () => void, private readonly sendBye: () => void, private readonly tcp?: TcpPunchLink) {
    super()
    // The agent keeps datagrams that arrive before anyone listens; the session passes them on once the app listens.
    ;(this as EventEmitter).on('newListener', (event: string | symbol) => {
      if (event === 'message' && this.listenerCount('message') === 0) {
        agent.on('message', (d) => { this.emit('message', d) })
        tcp?.on('message', (d) => { this.emit('message', d) })
      }
    })
    this.lastPath = this.currentPath()
    const changed = (): void => {
      const p = this.currentPath()
      const prev = this.lastPath
      if (p === undefined || p === prev) return
      this.lastPath = p
      this.emit('path', p, prev)
    }
    agent.on('path', changed)
    tcp?.on('up', changed)
    tcp?.on('down', changed)
  }

  /** Path preference: a direct UDP path, then the direct TCP path (tcpSimultaneousOpen), then the agent's relay. */
  private currentPath (): PathInfo | undefined {
    const p = preferredPath(this.agent, this.tcp)
    // The same TCP path keeps its identity, so `path` fires only on a change.
    const last = this.lastPath
    return p !== undefined && last !== undefined && p.local.transport === 'tcp' && last.local === p.local && last.remote === p.remote ? last : p
  }

  /** The current path. */
  get path (): PathInfo {
    const p = this.currentPath()
    if (p === undefined) throw new NoPathError()
    return p
  }

  /**
   * Wait until checking is over — a direct path found, or every pair decided — or `timeoutMs` passes. Data flows
   * meanwhile; this is for callers that want the final path (reports, benchmarks).
   */
  async settle (timeoutMs = 3000): Promise<PathInfo | undefined> {
    const deadline = performance.now() + timeoutMs
    while (performance.now() < deadline && this.currentPath()?.type !== 'direct' && (this.agent.checking || this.tcp?.pending === true)) {
      await new Promise(resolve => setTimeout(resolve, 10))
    }
    return this.currentPath()
  }

  /** Send one datagram to the peer. Returns false if no path works at this moment. */
  send (data: Uint8Array): boolean {
    const tcp = this.tcp?.path
    if (tcp !== undefined && this.agent.path?.type !== 'direct') return tcp.send(data)
    return this.agent.send(data)
  }

  /** Everything recorded so far: candidates, every pair checked with its outcome, timings. */
  report (): ConnectReport { return this.reportFn() }

  /** Tell the peer, stop, release relays. Idempotent. */
  close (): Promise<void> {
    this.closing ??= (async () => {
      try { this.sendBye() } catch { /* best effort */ }
      this.unsubscribe()
      this.tcp?.close()
      await this.agent.close()
      this.emit('closed')
    })()
    return this.closing
  }

  async [Symbol.asyncDispose] (): Promise<void> { await this.close() }
}

/**
 * Connect to a peer (both run this, with opposite roles): gather, exchange ICE credentials and candidates over the
 * channel, measure the signalling round trip and start checks on both sides at the same moment (the controlling side
 * waits half a round trip after telling the other to go, as libp2p DCUtR does), so the first packets open both NATs.
 * Resolves as soon as any path works; later candidates trickle; a direct path replaces the relay when found.
 */
export async function connect (options: ConnectOptions): Promise<PeerSession> {
  if (options.role !== 'controlling' && options.role !== 'controlled') throw new InvalidArgumentError('role must be controlling or controlled')
  const tcpOptions = options.tcpSimultaneousOpen !== undefined && options.tcpSimultaneousOpen !== false ? resolveTcpPunchOptions(options.tcpSimultaneousOpen) : undefined
  const t0 = performance.now()
  const ms = (): number => Math.round((performance.now() - t0) * 10) / 10
  const timings = { gatherMs: null as number | null, signalledMs: null as number | null, signallingRttMs: null as number | null, checksAt: null as number | null, firstDatagramMs: null as number | null, directMs: null as number | null, firstPathFromStartMs: null as number | null, directFromStartMs: null as number | null }
  const inbox: SignalMessage[] = []
  let wake: () => void = () => {}
  let sid = options.role === 'controlling' ? randomBytes(8).toString('hex') : ''
  // Subscribe before anything is awaited: the peer's offer may already be waiting at the rendezvous and arrive now.
  let agent: Agent | undefined
  const tcp = tcpOptions === undefined
    ? undefined
    : new TcpPunchLink(tcpOptions, options.channel, [...(options.stunServers ?? []), ...(options.turnServers ?? []).map(t => t.server)], options.bindAddress)
  const early: Array<{ sid: string, c: Candidate }> = []
  const earlyEnd = new Set<string>()
  let remoteSet = false
  const takeEarly = (): Candidate[] => early.splice(0).filter(e => e.sid === sid).map(e => e.c)
  // Trickled candidates and end-of-candidates gathered before the session id is known (the controlled side learns it
  // from the offer) wait here and go out right after the answer.
  const outbox: Array<(sid: string) => SignalMessage> = []
  const trickle = (make: (sid: string) => SignalMessage): void => { if (sid !== '') fire(options.channel, make(sid)); else outbox.push(make) }
  // The peer's birthday-spray announcement goes to the agent's spray once the session id is known.
  const peerSpray: Array<{ sid: string, spray: unknown }> = []
  const giveSpray = (): void => {
    if (sid === '' || !remoteSet) return
    for (const m of peerSpray.splice(0)) if (m.sid === sid) agent?.birthdaySpray?.setPeer(m.spray)
  }
  const unsubscribe = options.channel.subscribe((raw) => {
    const m = raw as SignalMessage
    if (typeof m !== 'object' || m === null || typeof m.t !== 'string' || !m.t.startsWith('natkit/')) return
    // Before the controlled side has taken the offer, trickled messages of any session wait (the offer names it).
    const ours = m.sid === sid || (sid === '' && typeof m.sid === 'string')
    if (m.t === 'natkit/end-of-candidates' && ours) {
      if (agent !== undefined && sid !== '' && remoteSet) agent.setRemoteGatheringComplete(); else earlyEnd.add(m.sid)
      return
    }
    if (m.t === 'natkit/candidate' && ours) {
      try {
        const c = candidateFromSdp(m.candidate)
        if (tcp !== undefined && c.transport === 'tcp') tcp.addRemote(c)
        else if (agent !== undefined && sid !== '' && remoteSet) agent.addRemoteCandidates([c]); else early.push({ sid: m.sid, c })
      } catch (err) { log('bad trickled candidate: %s', (err as Error).message) }
      return
    }
    if (m.t === 'natkit/candidate-removed' && ours) {
      try {
        const c = candidateFromSdp(m.candidate)
        if (agent !== undefined && sid !== '' && remoteSet) agent.removeRemoteCandidate(c)
      } catch (err) { log('bad removed candidate: %s', (err as Error).message) }
      return
    }
    if (m.t === 'natkit/spray' && ours) { peerSpray.push(m); giveSpray(); return }
    if (m.t === 'natkit/ping' && (sid === '' || m.sid === sid)) { fire(options.channel, { t: 'natkit/pong', sid: m.sid, n: m.n }); return }
    inbox.push(m); wake()
  })
  try {
    agent = await Agent.create({ ...options, role: options.iceRole ?? options.role })
  } catch (err) {
    unsubscribe()
    tcp?.close()
    throw err
  }
  const next = async <T extends SignalMessage['t']> (type: T, deadline: number): Promise<Extract<SignalMessage, { t: T }>> => {
    for (;;) {
      const i = inbox.findIndex(m => m.t === type && (sid === '' || m.sid === sid))
      if (i >= 0) return inbox.splice(i, 1)[0] as Extract<SignalMessage, { t: T }>
      const left = deadline - performance.now()
      if (left <= 0) throw new SignallingTimeoutError(type.slice(7))
      if (options.signal?.aborted === true) throw new AbortError()
      await new Promise<void>(resolve => { wake = resolve; setTimeout(resolve, Math.min(left, 100)).unref() })
    }
  }
  const report = (): ConnectReport => ({
    role: agent.role,
    path: preferredPath(agent, tcp) ?? null,
    timings: {
      gatherMs: timings.gatherMs, signalledMs: timings.signalledMs, signallingRttMs: timings.signallingRttMs, firstDatagramMs: timings.firstDatagramMs, directMs: timings.directMs,
      firstPathFromStartMs: timings.firstPathFromStartMs,
      firstMessageFromStartMs: agent.firstMessageAt === undefined ? null : Math.round((agent.firstMessageAt - t0) * 10) / 10,
      directFromStartMs: timings.directFromStartMs
    },
    gathering: [...agent.gatherAttempts],
    localCandidates: tcp?.candidate !== undefined ? [...agent.local, tcp.candidate] : [...agent.local],
    remoteCandidates: tcp?.remote !== undefined ? [...agent.remote, tcp.remote] : [...agent.remote],
    attempts: agent.attempts().map(attemptOf),
    tcpPunch: tcp?.report() ?? null
  })
  const deadline = performance.now() + (options.timeoutMs ?? 15_000)
  agent.on('candidate', (c) => { trickle(sid => ({ t: 'natkit/candidate', sid, candidate: candidateToSdp(c) })) })
  agent.on('candidate-removed', (c) => { trickle(sid => ({ t: 'natkit/candidate-removed', sid, candidate: candidateToSdp(c) })) })
  agent.on('gathering-complete', () => { trickle(sid => ({ t: 'natkit/end-of-candidates', sid })) })
  const recordPath = (p: { type: 'direct' | 'relay' }): void => {
    timings.firstPathFromStartMs ??= ms()
    if (p.type === 'direct') timings.directFromStartMs ??= ms()
    if (timings.checksAt === null) return
    const since = Math.round((performance.now() - t0 - timings.checksAt) * 10) / 10
    timings.firstDatagramMs ??= since
    if (p.type === 'direct') timings.directMs ??= since
  }
  agent.on('path', recordPath)
  tcp?.on('up', () => { recordPath({ type: 'direct' }) })
  // The peer's `tcptype so` candidate goes to the TCP punch (when it runs), every other one to the agent.
  const forAgent = (cs: Candidate[]): Candidate[] => tcp === undefined ? cs : cs.filter(c => { if (c.transport !== 'tcp') return true; tcp.addRemote(c); return false })
  let remoteCredentials = { ufrag: '', pwd: '' }
  try {
    // Trickle ICE (RFC 8838): the offer/answer carries the host candidates; server-reflexive and relayed ones follow as
    // they are found, and checks on the host pairs do not wait for them.
    const [localCandidates, soCandidate] = await Promise.all([agent.gather({ trickle: true }), tcp?.gather()])
    timings.gatherMs = ms()
    agent.birthdaySpray?.onAnnounce((spray) => { trickle(sid => ({ t: 'natkit/spray', sid, spray })) })
    const lines = localCandidates.map(candidateToSdp)
    if (soCandidate !== undefined) lines.push(candidateToSdp(soCandidate))
    if (options.role === 'controlling') {
      await options.channel.send({ t: 'natkit/offer', sid, ufrag: agent.ufrag, pwd: agent.pwd, candidates: lines })
      const answer = await next('natkit/answer', deadline)
      agent.setRemoteCredentials(answer.ufrag, answer.pwd)
      remoteCredentials = { ufrag: answer.ufrag, pwd: answer.pwd }
      agent.addRemoteCandidates(forAgent([...parseAll(answer.candidates), ...takeEarly()]))
      remoteSet = true
      if (earlyEnd.has(sid)) agent.setRemoteGatheringComplete()
      // Measure the signalling round trip now that both sides are ready, then start together.
      const sent = performance.now()
      await options.channel.send({ t: 'natkit/ping', sid, n: 1 })
      await next('natkit/pong', deadline)
      const rtt = performance.now() - sent
      timings.signallingRttMs = Math.round(rtt * 10) / 10
      agent.tuneToRtt(rtt)
      await options.channel.send({ t: 'natkit/go', sid, rttMs: rtt })
      timings.signalledMs = ms()
      await new Promise(resolve => setTimeout(resolve, rtt / 2))
    } else {
      const offer = await next('natkit/offer', deadline)
      sid = offer.sid
      agent.setRemoteCredentials(offer.ufrag, offer.pwd)
      remoteCredentials = { ufrag: offer.ufrag, pwd: offer.pwd }
      agent.addRemoteCandidates(forAgent([...parseAll(offer.candidates), ...takeEarly()]))
      remoteSet = true
      if (earlyEnd.has(sid)) agent.setRemoteGatheringComplete()
      await options.channel.send({ t: 'natkit/answer', sid, ufrag: agent.ufrag, pwd: agent.pwd, candidates: lines })
      for (const make of outbox.splice(0)) fire(options.channel, make(sid))
      const go = await next('natkit/go', deadline)
      timings.signallingRttMs = Math.round(go.rttMs * 10) / 10
      agent.tuneToRtt(go.rttMs)
      timings.signalledMs = ms()
    }
    timings.checksAt = performance.now() - t0
    giveSpray()
    agent.start()
    tcp?.start(sid, options.role === 'controlling', {
      localUfrag: agent.ufrag, localPwd: agent.pwd, remoteUfrag: remoteCredentials.ufrag, remotePwd: remoteCredentials.pwd, role: agent.role, tiebreaker: agent.tiebreaker
    })
    await new Promise<void>((resolve, reject) => {
      if (agent.path !== undefined || tcp?.path !== undefined) { resolve(); return }
      const onPath = (): void => { cleanup(); resolve() }
      const timer = setInterval(() => {
        if (options.signal?.aborted === true) { cleanup(); reject(new AbortError()); return }
        if (performance.now() > deadline || (!agent.checks.active && agent.checks.pairs.length > 0 && agent.gatheringComplete && tcp?.pending !== true && performance.now() - t0 > (timings.checksAt ?? 0) + 8000)) {
          cleanup(); reject(new ConnectError('no candidate pair worked: see the report\'s attempts', report()))
        }
      }, 50)
      const cleanup = (): void => { clearInterval(timer); agent.off('path', onPath); tcp?.off('up', onPath) }
      agent.on('path', onPath)
      tcp?.on('up', onPath)
    })
  } catch (err) {
    unsubscribe()
    tcp?.close()
    await agent.close()
    if (err instanceof ConnectError || err instanceof AbortError) throw err
    throw new ConnectError((err as Error).message, report())
  }
  return new PeerSession(agent, report, unsubscribe, () => { fire(options.channel, { t: 'natkit/bye', sid }) }, tcp)
}

/** Send a signalling message whose delivery nothing waits for; a failure (closed channel) is logged, not thrown. */
function fire (channel: SignalChannel, message: SignalMessage): void {
  try {
    Promise.resolve(channel.send(message)).catch((err: Error) => { log('signalling send failed: %s', err.message) })
  } catch (err) {
    log('signalling send failed: %s', (err as Error).message)
  }
}

/** A direct UDP path, else the TCP path (direct, between the two `so` candidates) while it is open, else the agent's. */
function preferredPath (agent: Agent, tcp: TcpPunchLink | undefined): PathInfo | undefined {
  const udp = agent.path
  if (udp?.type === 'direct') return udp
  const path = tcp?.path
  if (path === undefined || tcp?.candidate === undefined || tcp.remote === undefined) return udp
  return { type: 'direct', local: tcp.candidate, remote: tcp.remote, rttMs: path.rttMs, component: 1 }
}

function parseAll (lines: string[]): Candidate[] {
  const out: Candidate[] = []
  for (const l of Array.isArray(lines) ? lines : []) {
    try { out.push(candidateFromSdp(l)) } catch (err) { log('ignored a bad candidate: %s', (err as Error).message) }
  }
  return out
}

function attemptOf (p: CandidatePair): ConnectAttempt {
  return {
    local: { type: p.local.type, address: p.local.address, port: p.local.port },
    remote: { type: p.remote.type, address: p.remote.address, port: p.remote.port },
    state: p.state,
    outcome: p.outcome ?? null,
    detail: p.detail ?? null,
    checksSent: p.checksSent,
    startedMs: p.firstCheckAt === undefined ? null : Math.round(p.firstCheckAt),
    endedMs: p.endedAt === undefined ? null : Math.round(p.endedAt),
    rttMs: p.rttMs ?? null,
    nominated: p.nominated
  }
}
