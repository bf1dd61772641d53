import { randomBytes } from 'node:crypto'
import { EventEmitter } from 'node:events'
import { AbortError, InvalidArgumentError, StunErrorResponse, StunTimeoutError } from '../errors.js'
import { createLogger } from '../log.js'
import { formatEndpoint, ipFamily, sameTransportAddress, type Endpoint } from '../net/endpoint.js'
import { bindDatagramSocket } from '../net/native.js'
import type { DatagramSocket } from '../net/udp.js'
import type { TurnClient } from '../relay/turn-client.js'
import {
  ErrorCode, MessageBuilder, MessageClass, Method, Priority, StunMessage, StunTransactions, UseCandidate, XorMappedAddress,
  shortTermKey, type RetransmitOptions
} from '../stun/index.js'
import { classifyIceDatagram } from './app-demux.js'
import { candidatePriority, makeCandidate, type Candidate } from './candidate.js'
import { buildCheckRequest, buildCheckResponse, buildUnauthenticated, isAuthenticCheck, resolveRoleConflict } from './check-messages.js'
import { CheckList, candidateKey, isRelayed, type CandidatePair, type CheckOutcome } from './check-list.js'
import {
  gatherPortMapped, gatherRelay, gatherSrflx, hostAddresses, planRelayAttempts, type GatherAttempt, type PortMappingOptions, type TurnServerConfig
} from './gather.js'
import type { GrantedMapping } from '../portmap/client.js'
import type { PortMapper } from '../portmap/mapper.js'
import {
  PREDICTED_LOCAL_PREFERENCE, gatherPredicted, isPredictedCandidate, predictedBurst, predictedPortCount, type PortPrediction, type PortPredictionOptions
} from './port-prediction.js'
import { BirthdaySpray, type SprayHost } from './birthday-spray.js'
import { resolveSprayOptions, type BirthdaySprayOptions } from './spray-plan.js'
import { choosePath, needsNomination } from './path-selection.js'
import { RelaySocket } from './relay-socket.js'
import { SocketMux } from './socket-mux.js'
import { DEFAULT_MDNS_TIMEOUT_MS, isMdnsName, resolveMdns, type MdnsResolver } from './mdns.js'

const log = createLogger('natcheck:traversal:agent')

/** The path data currently takes. */
export interface PathInfo {
  readonly type: 'direct' | 'relay'
  readonly local: Candidate
  readonly remote: Candidate
  readonly rttMs: number | null
}

/** Options for Agent.create. */
export interface AgentOptions {
  /** Use this socket for host candidates (the agent does not close it). Default: a new one on `bindAddress`. */
  readonly socket?: DatagramSocket
  readonly bindAddress?: string
  /** Also offer loopback addresses as host candidates (tests on one machine). */
  readonly includeLoopback?: boolean
  readonly stunServers?: readonly string[]
  readonly turnServers?: readonly TurnServerConfig[]
  /** 'relay' offers only relayed candidates (like WebRTC's iceTransportPolicy: 'relay'). */
  readonly policy?: 'all' | 'relay'
  /** Gathering waits at most this long for STUN/TURN answers (default 1500 ms); later relayed candidates trickle. */
  readonly gatherTimeoutMs?: number
  /** TCP/TLS TURN attempts start this long after the UDP ones unless UDP allocated first (default 250 ms, RFC 8305's connection attempt delay). */
  readonly happyEyeballsDelayMs?: number
  /** Ta: time between new checks (default 10 ms; RFC 8445 §14.2 uses 50 ms for the Internet at large). */
  readonly checkIntervalMs?: number
  /**
   * Checks sent at once when checking starts, before pacing (default 8). Both peers start together, so every pair's
   * first packets cross in the first round trip and the NAT holes open at once; a handful of small datagrams is no
   * congestion risk. 1 gives plain RFC pacing.
   */
  readonly initialBurst?: number
  /** Check retransmissions (default RTO 50 ms, 8 sends, giving up after ~6.5 s): a punched hole is often open on the first retransmission. */
  readonly checkRetransmit?: RetransmitOptions
  /** Keepalive interval on the selected path (default 15 s, below every common NAT binding lifetime). */
  readonly keepaliveMs?: number
  /** Consent freshness (RFC 7675): a check every interval (default 5 s ±20 %), consent lost after timeout (default 30 s). */
  readonly consentIntervalMs?: number
  readonly consentTimeoutMs?: number
  readonly role?: 'controlling' | 'controlled'
  /**
   * Be an ICE-lite agent (RFC 8445 §2.5, §6.1.1; for a server with a public address): host candidates only, no checks
   * of its own, always controlled; a pair is used once the full peer nominates it (USE-CANDIDATE on a check).
   */
  readonly lite?: boolean
  /**
   * Ask the gateway to forward a public port to this agent's UDP socket (PCP, NAT-PMP or UPnP IGD; src/portmap) and
   * offer it as a server-reflexive candidate (RFC 8445 §5.1.1.2 lets an agent learn one by any means) with local
   * preference 65535, so it ranks above the STUN-learned ones. Off by default: it sends to the default gateway.
   * Bounded by the gathering budget; it never holds back the host candidates (it trickles), but checks wait for it up
   * to `checksWaitMs` (see {@link PortMappingOptions}). The lease is renewed while the agent lives and removed on close.
   */
  readonly portMapping?: boolean | PortMappingOptions
  /**
   * Port prediction for a NAT that gives each new destination the next port in a fixed step (opt-in): the agent
   * measures its socket's mappings towards the STUN/TURN servers (all four addresses of an RFC 5780 server), and when
   * the steps agree it offers the next ports as server-reflexive candidates (local preference below the STUN-learned
   * ones), so a peer behind a port-restricted cone opens its filter for the port the flow towards it will get. The
   * peer pays one paced check per port (see {@link PortPredictionOptions}). The outcome is a `prediction` gathering
   * attempt with a reason code.
   */
  readonly portPrediction?: boolean | PortPredictionOptions
  /**
   * Birthday spray for a symmetric NAT with random ports × an endpoint-independent mapping behind a port-restricted
   * filter (opt-in, at both ends; see birthday-spray.ts): each side measures its mapping like port prediction does and
   * announces it (`natkit/spray` through the session's signalling); the symmetric side then opens N sockets towards
   * the cone's public endpoint and the cone side probes M random ports of the symmetric side's address, paced and
   * capped (see {@link BirthdaySprayOptions}); the first socket reached becomes an ordinary checked pair. The outcome,
   * with the success probability computed beforehand, is a `spray` gathering attempt with a reason code.
   */
  readonly birthdaySpray?: boolean | BirthdaySprayOptions
  /**
   * Resolves remote host candidates given as mDNS `.local` names (what browsers send). Default: multicast DNS
   * (`resolveMdns`, RFC 6762). A seam for tests and for apps that resolve names their own way.
   */
  readonly mdnsResolver?: MdnsResolver
  /** How long an mDNS name may take to resolve before its candidate is dropped (default 1000 ms). */
  readonly mdnsTimeoutMs?: number
  readonly signal?: AbortSignal
}

/** What became of a remote candidate given as an mDNS name. */
export interface MdnsResolution {
  readonly name: string
  readonly port: number
  /** The address it resolved to, or null when it did not resolve in time (the pair is then learnt as prflx). */
  readonly address: string | null
  readonly ms: number
}

/** Events of Agent. */
export interface AgentEvents {
  /** A local candidate gathered after gather() returned (trickle it to the peer). */
  candidate: [candidate: Candidate]
  /** A local candidate stopped working (its relay moved elsewhere): tell the peer to drop it. */
  'candidate-removed': [candidate: Candidate]
  /** Every gathering attempt has finished (signal end-of-candidates to the peer). */
  'gathering-complete': []
  /** The data path changed (first path, relay → direct upgrade, direct → relay fallback). */
  path: [path: PathInfo, previous: PathInfo | undefined]
  /** An application datagram from the peer. */
  message: [data: Buffer]
  /** A check-list pair finished (for progress output). */
  pair: [pair: CandidatePair]
  closed: []
}

interface Base {
  /** Changes when a relayed base's allocation moves (relayMoved). */
  candidate: Candidate
  readonly socket: DatagramSocket
  readonly tx: StunTransactions
  readonly turn?: TurnClient
}

/**
 * An ICE-style agent (RFC 8445) for one peer connection with one component: gathers host, server-reflexive and
 * relayed candidates from one UDP socket (plus TURN over TCP/TLS where UDP is blocked), runs paced connectivity
 * checks with short-term credentials, roles and tie-breakers (487 conflicts), triggered checks, learns peer-reflexive
 * candidates, nominates with USE-CANDIDATE, and keeps the best working path: a relayed pair as soon as one works,
 * a direct pair the moment one succeeds, and back to the relay if the direct path loses consent (RFC 7675).
 */
export class Agent extends EventEmitter<AgentEvents> {
  /** ICE credentials: 8 and 24 ice-chars (RFC 8839 §5.4: A-Z a-z 0-9 + /, so plain base64 without padding). */
  private credentials = newCredentials()
  /** The credentials before an ICE restart, still accepted until a pair checked with the new ones succeeds. */
  private previousCredentials: { ufrag: string, pwd: string, key: Buffer } | undefined
  tiebreaker = randomBytes(8).readBigUInt64BE(0)
  role: 'controlling' | 'controlled'
  /** The current check list (a new one after an ICE restart). */
  checks = new CheckList()
  readonly gatherAttempts: GatherAttempt[] = []
  readonly local: Candidate[] = []
  readonly remote: Candidate[] = []
  private readonly bases = new Map<string, Base>()
  private remoteUfrag: string | undefined
  private remoteKey: Buffer | undefined
  private selected: CandidatePair | undefined
  private timers: NodeJS.Timeout[] = []
  private pacer: NodeJS.Timeout | undefined
  private started = false
  private closing: Promise<void> | undefined
  private readonly startedAt = performance.now()
  private readonly early: Buffer[] = []
  /** The port-mapping attempt while it runs (close waits for it, so a late grant is removed, not left behind). */
  private portMapAttempt: Promise<void> | undefined
  private portMapper: PortMapper | undefined
  /** The current port-mapped candidate, if the gateway granted one. */
  portMappedCandidate: Candidate | undefined
  /** What port prediction concluded (when it was asked for and has finished). */
  portPrediction: PortPrediction | undefined
  /** The birthday spray, when asked for (created by gather()). */
  birthdaySpray: BirthdaySpray | undefined
  /** Sends the first checks of a sequential × sequential pair, in order (port-prediction.ts predictedBurst). */
  private predictionBurst: (() => void) | undefined
  /** Checks start when these have settled: the port-mapping answer, the prediction measurement (each bounded). */
  private readonly checkGates: Array<Promise<void>> = []

  private constructor (readonly mux: SocketMux, private readonly ownsSocket: boolean, private readonly options: AgentOptions) {
    super()
    this.role = options.lite === true ? 'controlled' : options.role ?? 'controlling'
    ;(this as EventEmitter).on('newListener', (event: string | symbol) => {
      if (event === 'message' && this.early.length > 0) queueMicrotask(() => { for (const d of this.early.splice(0)) this.emit('message', d) })
    })
  }

  /** Bind the socket (unless given) and make an agent. */
  static async create (options: AgentOptions = {}): Promise<Agent> {
    if (typeof options.portPrediction === 'object') predictedPortCount(options.portPrediction)
    if (typeof options.birthdaySpray === 'object') resolveSprayOptions(options.birthdaySpray)
    const socket = options.socket ?? await bindDatagramSocket({ address: options.bindAddress ?? '0.0.0.0' })
    return new Agent(new SocketMux(socket), options.socket === undefined, options)
  }

  /** This agent's ICE username fragment (RFC 8445 §5.3). */
  get ufrag (): string { return this.credentials.ufrag }
  /** This agent's ICE password. */
  get pwd (): string { return this.credentials.pwd }
  private get localKey (): Buffer { return this.credentials.key }

  /** After restart(), checks wait for the peer's new credentials. */
  private awaitingRemoteCredentials = false

  /** Whether an ICE restart is under way (the old path carries data until a new pair works). */
  get restarting (): boolean { return this.previousCredentials !== undefined }

  /**
   * ICE restart (RFC 8445 §9): new local credentials and a new check list over the same candidates. Data keeps flowing
   * on the selected pair until a pair checked with the new credentials succeeds; checks with the old credentials are
   * still answered until then. Signal the returned ufrag/pwd to the peer, and give its new ones to
   * setRemoteCredentials (the peer restarts too). Returns the new credentials.
   */
  restart (): { ufrag: string, pwd: string } {
    this.previousCredentials ??= this.credentials
    this.credentials = newCredentials()
    const controlling = this.role === 'controlling'
    this.checks = new CheckList()
    this.awaitingRemoteCredentials = true
    this.checks.addPairs(this.local.filter(l => this.bases.has(candidateKey(l))), this.remote, controlling)
    log('ICE restart: new ufrag %s', this.ufrag)
    return { ufrag: this.ufrag, pwd: this.pwd }
  }

  /** Milliseconds since the agent was created. */
  elapsed (): number { return performance.now() - this.startedAt }

  /** Retransmission of checks when tuned to the path (see tuneToRtt); otherwise the base's defaults apply. */
  private checkTiming: RetransmitOptions = {}

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
    this.checkTiming = { rtoMs, rc, rm: 4 }
  }

  /** Whether checks are still running (a direct path may still be found). */
  get checking (): boolean { return this.checks.active }

  /** The selected pair, if any path works. */
  get path (): PathInfo | undefined { return this.selected === undefined ? undefined : pathOf(this.selected) }

  private addBase (candidate: Candidate, socket: DatagramSocket, turn?: TurnClient): Base {
    const base: Base = {
      candidate,
      socket,
      turn,
      tx: new StunTransactions(socket, {
        retransmit: this.options.checkRetransmit ?? { rtoMs: 50, rc: 8, rm: 4 },
        onOther: (data, from) => { this.onPacket(base, data, from) }
      })
    }
    this.bases.set(candidateKey(candidate), base)
    return base
  }

  /** Add a local candidate and pair it with the remote ones; false when it was already known. */
  private addLocal (c: Candidate): boolean {
    if (this.local.some(l => candidateKey(l) === candidateKey(c))) return false
    this.local.push(c)
    if (this.remote.length > 0) this.checks.addPairs([c], this.remote, this.role === 'controlling')
    return true
  }

  /** When (performance.now()) the first application datagram from the peer arrived. */
  firstMessageAt: number | undefined
  /** Whether gathering has finished: every STUN and TURN attempt answered, failed or was skipped. */
  gatheringComplete = false
  /** Whether the peer signalled end-of-candidates (RFC 8838 §8.2). */
  remoteGatheringComplete = false

  /**
   * Gather candidates (RFC 8445 §5.1.1): host addresses of the socket, server-reflexive from each STUN server, relayed
   * from each TURN server, all in parallel. TURN servers are tried happy-eyeballs style (`planRelayAttempts`): UDP at
   * once, TCP/TLS and the TCP fallback of `turn:` URIs without a transport `happyEyeballsDelayMs` later unless UDP
   * allocated by then.
   *
   * With `trickle` (RFC 8838 §4) this resolves with the host candidates at once and every later candidate is emitted
   * as a `candidate` event, then `gathering-complete`. Without it, it waits for server-reflexive candidates and up to
   * the gathering budget for relayed ones; relayed candidates arriving later are still emitted as `candidate` events.
   */
  async gather (options: { trickle?: boolean } = {}): Promise<Candidate[]> {
    const socket = this.mux.socket
    const hostSocket = this.mux.fallback()
    const relayOnly = this.options.policy === 'relay'
    const addrs = hostAddresses(socket.local.address, this.options.includeLoopback === true)
    // One base per address family: the kernel picks the source address, so pairs from other host candidates of the
    // same family would be the very same packets.
    const primary = addrs.find(a => ipFamily(a) === 4) ?? addrs[0]
    const hostCandidate = makeCandidate({ type: 'host', address: primary, port: socket.local.port })
    const hostBase = this.addBase(hostCandidate, hostSocket)
    this.mux.claim = (data) => hostBase.tx.owns(data)
    if (!relayOnly) {
      for (const a of addrs) this.addLocal(a === primary ? hostCandidate : makeCandidate({ type: 'host', address: a, port: socket.local.port, localPreference: 65534 - this.local.length }))
    }
    // RFC 8445 §5.2: a lite agent has host candidates only.
    if (this.options.lite === true) {
      this.gatheringComplete = true
      queueMicrotask(() => { this.emit('gathering-complete') })
      return [...this.local]
    }
    const budget = this.options.gatherTimeoutMs ?? 1500
    let announce = options.trickle === true
    const found = (c: Candidate): void => { if (this.addLocal(c) && announce) this.emit('candidate', c) }
    const srflx = (this.options.stunServers ?? []).map(async (server) => {
      const r = await gatherSrflx(hostBase.tx, server, budget, this.options.signal)
      this.gatherAttempts.push(r.attempt)
      if (r.mapped !== undefined && !relayOnly && !(r.mapped.address === primary && r.mapped.port === socket.local.port)) {
        found(makeCandidate({ type: 'srflx', address: r.mapped.address, port: r.mapped.port, base: primary, server, related: { address: primary, port: socket.local.port } }))
      }
    })
    const pm = this.options.portMapping
    const pmOptions = pm === true ? {} : pm === false || pm === undefined ? undefined : pm
    if (pmOptions !== undefined && !relayOnly && ipFamily(primary) === 4) {
      const offer = (m: GrantedMapping): void => {
        if (m.externalIp === null) { log('port mapping %d granted without an external address: no candidate', m.externalPort); return }
        const c = makeCandidate({ type: 'srflx', address: m.externalIp, port: m.externalPort, base: primary, server: `portmap:${m.protocol}`, related: { address: primary, port: socket.local.port }, localPreference: 65535 })
        this.portMappedCandidate = c
        found(c)
      }
      this.portMapAttempt = (async () => {
        const r = await gatherPortMapped(socket.local.port, pmOptions, budget)
        this.gatherAttempts.push(r.attempt)
        if (r.mapper === undefined) return
        if (this.closing !== undefined) { await r.mapper.close(); return }
        this.portMapper = r.mapper
        r.mapper.on('renewed', (m) => { if (m.externalIp !== this.portMappedCandidate?.address || m.externalPort !== this.portMappedCandidate?.port) offer(m) })
        r.mapper.on('error', (err) => { log('port mapping: %s', err.message) })
        offer(r.mapper.mapping)
      })()
      this.gateChecks(this.portMapAttempt, pmOptions.checksWaitMs ?? 500)
    }
    const pp = this.options.portPrediction
    const ppOptions = pp === true ? {} : pp === false || pp === undefined ? undefined : pp
    let prediction: Promise<void> | undefined
    if (ppOptions !== undefined && !relayOnly && ipFamily(primary) === 4) {
      const servers = [...(this.options.stunServers ?? []), ...(this.options.turnServers ?? []).filter(t => (t.transport ?? 'udp') === 'udp').map(t => t.server)]
      prediction = (async () => {
        const r = await gatherPredicted(hostBase.tx, servers, budget, predictedPortCount(ppOptions), this.options.signal)
        this.portPrediction = r.prediction
        this.gatherAttempts.push(r.attempt)
        const address = r.prediction.address
        if (address === null || this.closing !== undefined) return
        r.prediction.ports.forEach((port, k) => {
          found(makeCandidate({ type: 'srflx', address, port, base: primary, server: 'port-prediction', related: { address: primary, port: socket.local.port }, localPreference: PREDICTED_LOCAL_PREFERENCE - k }))
        })
      })()
      this.gateChecks(prediction, ppOptions.checksWaitMs ?? 500)
      this.predictionBurst = () => {
        for (const to of predictedBurst(this.portPrediction, this.remote)) { const c = this.rawCheck(); if (c !== undefined) hostBase.socket.send(c, to) }
      }
    }
    const bs = this.options.birthdaySpray
    if (bs !== undefined && bs !== false && !relayOnly && ipFamily(primary) === 4) {
      const servers = [...(this.options.stunServers ?? []), ...(this.options.turnServers ?? []).filter(t => (t.transport ?? 'udp') === 'udp').map(t => t.server)]
      this.birthdaySpray = new BirthdaySpray(bs === true ? {} : bs, this.sprayHost(hostBase, primary), socket.local.address)
      void this.birthdaySpray.measure(hostBase.tx, servers, budget, this.options.signal, prediction?.then(() => this.portPrediction))
    }
    const plan = planRelayAttempts(this.options.turnServers ?? [])
    let udpAllocated = false
    let udpPending = plan.filter(a => !a.delayed).length
    let udpSettled: () => void = () => {}
    const udpDone = new Promise<void>(resolve => { udpSettled = resolve; if (udpPending === 0) resolve() })
    const delay = this.options.happyEyeballsDelayMs ?? 250
    const relays = plan.map(async ({ config, delayed }) => {
      if (delayed) {
        await Promise.race([udpDone, new Promise(resolve => { const t = setTimeout(resolve, delay); t.unref(); this.timers.push(t) })])
        if (udpAllocated || this.closing !== undefined) {
          this.gatherAttempts.push({ kind: 'relay', server: `${config.server} over ${config.transport.toUpperCase()}`, ok: false, ms: 0, detail: 'skipped: a UDP allocation answered first' })
          return
        }
      }
      const r = await gatherRelay(this.mux, config, this.options.signal)
      this.gatherAttempts.push(r.attempt)
      if (!delayed) {
        if (r.client !== undefined) udpAllocated = true
        if (--udpPending === 0 || udpAllocated) udpSettled()
      }
      if (r.client === undefined) return
      if (this.closing !== undefined) { await r.client.close(); return }
      const a = r.client.allocation
      // The allocation's XOR-MAPPED-ADDRESS is a server-reflexive candidate too (RFC 8445 §5.1.1.2).
      if (!relayOnly && config.transport === 'udp' && !(a.mapped.address === primary && a.mapped.port === socket.local.port)) {
        found(makeCandidate({ type: 'srflx', address: a.mapped.address, port: a.mapped.port, base: primary, server: config.server, related: { address: primary, port: socket.local.port } }))
      }
      const c = makeCandidate({ type: 'relay', address: a.relayed.address, port: a.relayed.port, server: `${config.server}/${config.transport}`, related: a.mapped, localPreference: config.transport === 'udp' ? 65535 : config.transport === 'tcp' ? 32767 : 16383 })
      const base = this.addBase(c, new RelaySocket(r.client), r.client)
      r.client.on('reallocated', (alloc) => {
        log('relay reallocated at %s', formatEndpoint(alloc.relayed))
        this.relayMoved(base, alloc.relayed, alloc.mapped, alloc.server)
      })
      r.client.on('error', (err) => { log('relay: %s', err.message) })
      found(c)
    })
    const portmap = [this.portMapAttempt, prediction].filter((p): p is Promise<void> => p !== undefined)
    void Promise.all([...srflx, ...relays, ...portmap]).then(() => {
      this.gatheringComplete = true
      this.emit('gathering-complete')
    })
    if (options.trickle === true) return [...this.local]
    await Promise.all([...srflx, ...portmap])
    await Promise.race([Promise.all(relays), new Promise(resolve => { const t = setTimeout(resolve, budget); t.unref(); this.timers.push(t) })])
    announce = true
    return [...this.local]
  }

  /** Whether the peer said `a=ice-lite`. */
  remoteLite = false

  /**
   * The peer is an ICE-lite agent (RFC 8445 §6.1.1): this full agent takes the controlling role, checks and nominates.
   * Two lite agents cannot run ICE: throws InvalidArgumentError when this agent is lite too.
   */
  setRemoteLite (): void {
    if (this.options.lite === true) throw new InvalidArgumentError('both agents are ICE-lite: one must be a full agent (RFC 8445 §6.1.1)')
    this.remoteLite = true
    if (this.role !== 'controlling') this.switchRole()
  }

  /** The peer has no more candidates (RFC 8838 §8.2: end-of-candidates). */
  setRemoteGatheringComplete (): void { this.remoteGatheringComplete = true }

  /** The peer's ICE credentials (from signalling). */
  setRemoteCredentials (ufrag: string, pwd: string): void {
    this.remoteUfrag = ufrag
    this.remoteKey = shortTermKey(pwd)
    this.awaitingRemoteCredentials = false
  }

  /** mDNS names among the remote candidates, and what each resolved to (filled as resolutions finish). */
  readonly mdnsResolutions: MdnsResolution[] = []
  private readonly mdnsAbort = new AbortController()

  /**
   * Add remote candidates (at once or trickled); new pairs join the check list. A host candidate named by an mDNS
   * `.local` name is resolved first (draft-ietf-mmusic-mdns-ice-candidates §3.2.2, bounded by `mdnsTimeoutMs`) and
   * joins with the address it resolved to; one that does not resolve is dropped, and the peer's checks from its real
   * address make it a peer-reflexive candidate instead (RFC 8445 §7.3.1.3).
   */
  addRemoteCandidates (candidates: Candidate[]): void {
    const named = candidates.filter(c => isMdnsName(c.address))
    for (const c of named) void this.resolveRemote(c)
    // A signalled candidate already learnt as peer-reflexive (its checks came first, or its mDNS name resolved late)
    // replaces the learnt one, so pairs and reports carry its real type and priority (libwebrtc does the same).
    for (const c of candidates) {
      if (c.type === 'prflx' || isMdnsName(c.address)) continue
      const i = this.remote.findIndex(r => r.type === 'prflx' && r.address === c.address && r.port === c.port && r.transport === c.transport)
      if (i < 0) continue
      const learnt = this.remote[i]
      this.remote[i] = c
      this.checks.replaceRemote(learnt, c, this.role === 'controlling')
      if (this.selected?.remote === c) log('peer-reflexive %s is the signalled %s candidate', formatEndpoint(c), c.type)
    }
    const fresh = candidates.filter(c => !isMdnsName(c.address) && !this.remote.some(r => r.address === c.address && r.port === c.port))
    this.remote.push(...fresh)
    this.checks.addPairs(this.local.filter(l => this.bases.has(candidateKey(l))), fresh, this.role === 'controlling')
  }

  /** One resolution per name: a browser names its UDP and TCP host candidates alike. */
  private readonly mdnsQueries = new Map<string, Promise<string | undefined>>()

  private async resolveRemote (c: Candidate): Promise<void> {
    const started = performance.now()
    const key = c.address.toLowerCase()
    let query = this.mdnsQueries.get(key)
    if (query === undefined) {
      const resolver = this.options.mdnsResolver ?? resolveMdns
      query = resolver(c.address, { timeoutMs: this.options.mdnsTimeoutMs ?? DEFAULT_MDNS_TIMEOUT_MS, signal: this.mdnsAbort.signal })
        .catch((err: Error) => { log('mDNS resolution of %s failed: %s', c.address, err.message); return undefined })
      this.mdnsQueries.set(key, query)
    }
    const address = await query
    const family = address === undefined ? 0 : ipFamily(address)
    this.mdnsResolutions.push({ name: c.address, port: c.port, address: family === 0 ? null : address as string, ms: Math.round(performance.now() - started) })
    if (this.closing !== undefined) return
    if (family === 0) { log('mDNS name %s did not resolve: its pair can only be learnt as peer-reflexive', c.address); return }
    this.addRemoteCandidates([{ ...c, address: address as string }])
  }

  /**
   * The peer says one of its candidates is gone (its relay moved): pairs with it fail at once, instead of when consent
   * runs out (RFC 7675), and it is not paired again. Not in RFC 8445/8838, which cannot remove a candidate.
   */
  removeRemoteCandidate (c: Endpoint): void {
    const i = this.remote.findIndex(r => sameTransportAddress(r, c))
    if (i < 0) return
    this.remote.splice(i, 1)
    for (const p of this.checks.pairs) if (sameTransportAddress(p.remote, c) && p.state !== 'failed') this.fail(p, 'cancelled', 'the peer removed this candidate')
  }

  /**
   * A relayed base's allocation moved (TurnClient failover, or a new address after the server lost it): the old
   * relayed candidate is gone (its pairs fail, `candidate-removed` tells the peer) and the new address is a new
   * candidate, paired and trickled (`candidate`), so checks find the path through the new relay.
   */
  private relayMoved (base: Base, relayed: Endpoint, mapped: Endpoint, server: Endpoint): void {
    const old = base.candidate
    if (this.closing !== undefined || sameTransportAddress(old, relayed)) return
    const c = makeCandidate({ type: 'relay', address: relayed.address, port: relayed.port, server: formatEndpoint(server), related: mapped, localPreference: (old.priority >> 8) & 0xffff })
    this.bases.delete(candidateKey(old))
    base.candidate = c
    this.bases.set(candidateKey(c), base)
    const i = this.local.findIndex(l => candidateKey(l) === candidateKey(old))
    if (i >= 0) this.local.splice(i, 1)
    for (const p of this.checks.pairs) {
      if (candidateKey(p.local) === candidateKey(old) && p.state !== 'failed') this.fail(p, 'cancelled', `the relayed address moved to ${formatEndpoint(relayed)}`)
    }
    this.emit('candidate-removed', old)
    if (this.addLocal(c)) this.emit('candidate', c)
  }

  /** Start the paced checks (RFC 8445 §6.1.4.2), consent and keepalives. */
  start (): void {
    if (this.started) return
    this.started = true
    // A lite agent only answers (RFC 8445 §2.5): no checks, consent requests or keepalives of its own.
    if (this.options.lite === true) return
    const begin = (): void => {
      if (this.closing !== undefined) return
      this.predictionBurst?.()
      const ta = this.options.checkIntervalMs ?? 10
      this.pacer = setInterval(() => { this.tick() }, ta)
      for (let i = 0; i < Math.max(1, this.options.initialBurst ?? 8); i++) this.tick()
    }
    // Predicting at both ends: the burst goes to the peer's predicted ports, so wait (bounded) until they are known.
    if (this.predictionBurst !== undefined) this.gateChecks(this.peerPredictionKnown(), 1000)
    if (this.checkGates.length === 0) begin(); else void Promise.all(this.checkGates).then(begin)
    this.birthdaySpray?.start()
    const consent = this.options.consentIntervalMs ?? 5000
    const consentTimer = setInterval(() => { this.checkConsent() }, consent * (0.8 + Math.random() * 0.4))
    consentTimer.unref()
    const keepalive = setInterval(() => { this.keepalive() }, this.options.keepaliveMs ?? 15_000)
    keepalive.unref()
    this.timers.push(consentTimer, keepalive)
  }

  /**
   * Hold the checks until `p` settles, at most `maxMs`: with port mapping, so they leave through the mapping (a NAT
   * keeps the port of a flow it already has); with prediction, so they do not take the ports being measured.
   */
  private gateChecks (p: Promise<void>, maxMs: number): void {
    this.checkGates.push(Promise.race([p, new Promise<void>(resolve => { const t = setTimeout(resolve, maxMs); t.unref(); this.timers.push(t) })]))
  }

  private tick (): void {
    if (this.closing !== undefined || this.remoteKey === undefined || this.awaitingRemoteCredentials) return
    const pair = this.checks.next()
    if (pair !== undefined) void this.check(pair, this.role === 'controlling' && this.selected === pair)
  }

  private buildCheck (pair: CandidatePair, nominate: boolean): Buffer {
    return buildCheckRequest({
      localUfrag: this.ufrag,
      remoteUfrag: this.remoteUfrag ?? '',
      remoteKey: this.remoteKey as Buffer,
      priority: candidatePriority('prflx', ipFamily(pair.local.address) === 6 ? 65535 : 65534),
      role: this.role,
      tiebreaker: this.tiebreaker,
      nominate
    })
  }

  /** Run one connectivity check on a pair (RFC 8445 §7.2.4-§7.2.5). */
  private async check (pair: CandidatePair, nominate: boolean): Promise<void> {
    const base = this.bases.get(candidateKey(pair.local))
    if (base === undefined) return
    // A nomination on a pair that already works is a re-check: it must not take the pair out of the valid list,
    // and if it goes unanswered, consent freshness (not this check) decides whether the path is dead.
    const recheck = pair.state === 'succeeded'
    if (!recheck) pair.state = 'in-progress'
    pair.firstCheckAt ??= this.elapsed()
    pair.checksSent++
    const started = performance.now()
    try {
      const res = await base.tx.request(this.buildCheck(pair, nominate), pair.remote, { ...this.checkTiming, signal: this.options.signal })
      const m = res.message
      if (m.cls === MessageClass.ErrorResponse) {
        const code = m.get(ErrorCode)?.code ?? 0
        if (code === 487) {
          // §7.2.5.1: switch role, recompute priorities, retry the pair.
          this.switchRole()
          pair.state = 'waiting'
          this.checks.trigger(pair)
          return
        }
        return this.fail(pair, code === 401 ? 'auth-failed' : 'error-response', `${code} ${m.get(ErrorCode)?.reason ?? ''}`)
      }
      if (!m.verifyIntegrity(this.remoteKey as Buffer)) return this.fail(pair, 'auth-failed', 'response failed MESSAGE-INTEGRITY')
      // §7.2.5.2.1: the response must come from where the request went (symmetric), else the pair fails.
      if (!sameTransportAddress(res.from, pair.remote)) {
        return this.fail(pair, 'non-symmetric', `response came from ${formatEndpoint(res.from)}`)
      }
      pair.state = 'succeeded'
      pair.outcome = 'succeeded'
      this.checks.unfreeze(pair)
      pair.rttMs = Math.round((performance.now() - started) * 100) / 100
      pair.lastResponseAt = performance.now()
      pair.endedAt = this.elapsed()
      if (nominate) pair.nominated = true
      const mapped = m.get(XorMappedAddress)
      if (mapped !== undefined && base.candidate.type === 'host' && !this.local.some(l => l.address === mapped.address && l.port === mapped.port)) {
        this.addLocalPrflx(mapped, base)
      }
      this.emit('pair', pair)
      this.select()
    } catch (err) {
      if (err instanceof AbortError && this.closing !== undefined) return
      if (recheck) return
      if (err instanceof StunTimeoutError) return this.fail(pair, 'timeout', `no response after ${pair.checksSent} check(s)`)
      if (err instanceof StunErrorResponse) return this.fail(pair, 'relay-refused', err.message)
      this.fail(pair, 'cancelled', (err as Error).message)
    }
  }

  private addLocalPrflx (mapped: Endpoint, base: Base): void {
    // RFC 8445 §7.2.5.3.1: a peer-reflexive local candidate, learnt but not paired (its base already is).
    this.local.push(makeCandidate({ type: 'prflx', address: mapped.address, port: mapped.port, base: base.candidate.address, related: { address: base.candidate.address, port: base.candidate.port } }))
  }

  private fail (pair: CandidatePair, outcome: CheckOutcome, detail: string): void {
    pair.state = 'failed'
    pair.outcome = outcome
    pair.detail = detail
    pair.endedAt = this.elapsed()
    this.emit('pair', pair)
    if (this.selected === pair) this.select()
  }

  private switchRole (): void {
    this.role = this.role === 'controlling' ? 'controlled' : 'controlling'
    this.checks.reprioritise(this.role === 'controlling')
    log('role conflict: now %s', this.role)
  }

  /** Handle a datagram that is not a response to our transactions: a check request, an indication, or data. */
  private onPacket (base: Base, data: Buffer, from: Endpoint): void {
    const kind = classifyIceDatagram(data, this.remote.some(r => sameTransportAddress(r, from)))
    if (kind === 'ignore') return
    if (kind === 'app') {
      // Raw application data (RTP, RTCP, DTLS, anything not STUN): delivered as received, in a copy the app may keep.
      const message = Buffer.from(data)
      this.firstMessageAt ??= performance.now()
      // The peer may start sending before the application (or the session object) listens: keep up to 256.
      if (this.listenerCount('message') > 0) this.emit('message', message)
      else if (this.early.length < 256) this.early.push(message)
      return
    }
    let m: StunMessage
    try { m = StunMessage.decode(data) } catch (err) { log.trace('dropped a malformed STUN message from %s: %s', formatEndpoint(from), (err as Error).message); return }
    if (m.method !== Method.Binding || m.cls !== MessageClass.Request) return
    this.answerCheck(base, m, from)
  }

  /** RFC 8445 §7.3: answer a check, resolve role conflicts, learn peer-reflexive candidates, trigger a check back. */
  private answerCheck (base: Base, m: StunMessage, from: Endpoint): void {
    // During an ICE restart the peer may still check with the old credentials (RFC 8445 §9): answer those too.
    const old = this.previousCredentials
    const key = isAuthenticCheck(m, this.ufrag, this.localKey)
      ? this.localKey
      : old !== undefined && isAuthenticCheck(m, old.ufrag, old.key) ? old.key : undefined
    if (key === undefined) {
      base.socket.send(buildUnauthenticated(m), from)
      return
    }
    const conflict = resolveRoleConflict(m, this.role, this.tiebreaker)
    if (conflict === 'respond-487') { base.socket.send(buildCheckResponse(m, from, key, true), from); return }
    if (conflict === 'switch') this.switchRole()
    base.socket.send(buildCheckResponse(m, from, key), from)
    if (key !== this.localKey) return // a check of the old generation: answered, nothing to learn for the new check list
    let remote = this.remote.find(r => sameTransportAddress(r, from))
    if (remote === undefined) {
      // §7.3.1.3: a peer-reflexive remote candidate.
      remote = { ...makeCandidate({ type: 'prflx', address: from.address, port: from.port }), priority: m.get(Priority) ?? candidatePriority('prflx') }
      this.remote.push(remote)
      this.checks.addPairs([base.candidate], [remote], this.role === 'controlling')
    }
    const pair = this.checks.find(candidateKey(base.candidate), from)
    if (pair === undefined) return
    if (m.has(UseCandidate.type) && this.role === 'controlled') pair.nominated = true
    if (this.options.lite === true) {
      // RFC 8445 §7.3.1.5 (lite): no triggered check; a nominated pair is valid and selected, the highest priority wins.
      if (pair.nominated && pair.state !== 'succeeded') {
        pair.state = 'succeeded'
        pair.outcome = 'succeeded'
        pair.endedAt = this.elapsed()
        pair.lastResponseAt = performance.now()
        this.emit('pair', pair)
        this.select()
      }
      return
    }
    // §7.3.1.4: a triggered check, so both directions are proven quickly.
    if (pair.state === 'frozen' || pair.state === 'waiting' || pair.state === 'failed') this.checks.trigger(pair)
    if (pair.state === 'succeeded') this.select()
  }

  /**
   * Choose the path: the best succeeded direct pair, else the best succeeded relayed pair (relay first, upgrade when
   * direct works). The controlling agent nominates what it selects.
   */
  private select (): void {
    const best = choosePath(this.checks.pairs, { lite: this.options.lite === true })
    if (best === this.selected) return
    // An ICE restart keeps the old path until the new check list has a working pair (RFC 8445 §9).
    if (best === undefined && this.restarting) return
    if (best !== undefined && this.restarting) { this.previousCredentials = undefined; log('ICE restart complete') }
    const previous = this.selected === undefined ? undefined : pathOf(this.selected)
    this.selected = best
    if (best === undefined) return
    log('path: %s %s → %s', isRelayed(best) ? 'relay' : 'direct', formatEndpoint(best.local), formatEndpoint(best.remote))
    if (needsNomination(best, this.role)) void this.check(best, true)
    const relay = this.bases.get(candidateKey(best.local))?.turn
    if (relay !== undefined) void relay.bindChannel(best.remote).catch((err: Error) => { log('channel bind to %s failed (Send indications go on): %s', formatEndpoint(best.remote), err.message) })
    this.emit('path', pathOf(best), previous)
  }

  /** Send an application datagram on the selected path. Returns false when no path works yet. */
  send (data: Uint8Array): boolean {
    const pair = this.selected
    if (pair === undefined || this.closing !== undefined) return false
    const base = this.bases.get(candidateKey(pair.local))
    if (base === undefined) return false
    // Raw: the app's bytes are the datagram (RFC 7983 demultiplexing keeps them apart from STUN at the peer). Sent
    // from a copy, so the app may reuse its buffer at once whatever the socket does underneath.
    base.socket.send(Buffer.from(data), pair.remote)
    return true
  }

  /** RFC 7675: consent checks on the selected pair; a pair silent past the timeout fails and the path moves. */
  private checkConsent (): void {
    const pair = this.selected
    if (pair === undefined || this.closing !== undefined) return
    const timeout = this.options.consentTimeoutMs ?? 30_000
    if (pair.lastResponseAt !== undefined && performance.now() - pair.lastResponseAt > timeout) {
      this.fail(pair, 'timeout', `consent lost: no response for ${timeout} ms`)
      return
    }
    const base = this.bases.get(candidateKey(pair.local))
    if (base === undefined) return
    const started = performance.now()
    base.tx.request(this.buildCheck(pair, false), pair.remote, { rtoMs: 200, rc: 3, rm: 4 })
      .then((res) => {
        if (res.message.cls === MessageClass.SuccessResponse && res.message.verifyIntegrity(this.remoteKey as Buffer)) {
          pair.lastResponseAt = performance.now()
          pair.rttMs = Math.round((performance.now() - started) * 100) / 100
        }
      })
      .catch(() => { /* judged on the next interval */ })
  }

  /** Binding indications on the selected path and the best relayed fallback (RFC 8445 §11). */
  private keepalive (): void {
    // A lite agent uses only what the full peer nominated (RFC 8445 §8.2.2).
    const ok = this.checks.pairs.filter(p => p.state === 'succeeded' && (this.options.lite !== true || p.nominated))
    const targets = new Set([this.selected, ok.find(p => isRelayed(p))].filter((p): p is CandidatePair => p !== undefined))
    for (const p of targets) {
      const base = this.bases.get(candidateKey(p.local))
      base?.socket.send(new MessageBuilder(Method.Binding, MessageClass.Indication).fingerprint().build(), p.remote)
    }
  }

  /** Every pair with its outcome (for the connect report). */
  attempts (): CandidatePair[] { return [...this.checks.pairs] }

  /** Stop checks and timers, release TURN allocations and the port mapping, close the socket if the agent bound it. Idempotent. */
  close (): Promise<void> {
    this.closing ??= (async () => {
      clearInterval(this.pacer)
      this.mdnsAbort.abort()
      for (const t of this.timers) clearTimeout(t)
      await this.birthdaySpray?.close()
      for (const b of this.bases.values()) b.tx.close()
      await Promise.all([...this.bases.values()].map(async b => { await b.socket.close(); await b.turn?.close() }))
      await this.portMapAttempt
      await this.portMapper?.close()
      if (this.ownsSocket) await this.mux.socket.close()
      this.emit('closed')
    })()
    return this.closing
  }

  async [Symbol.asyncDispose] (): Promise<void> { await this.close() }

  /** A check request sent outside any transaction (spray, prediction burst): its answer is not awaited; the peer's triggered check proves the pair. */
  private rawCheck (): Buffer | undefined {
    if (this.remoteKey === undefined || this.closing !== undefined) return undefined
    return buildCheckRequest({ localUfrag: this.ufrag, remoteUfrag: this.remoteUfrag ?? '', remoteKey: this.remoteKey, priority: candidatePriority('prflx', 65534), role: this.role, tiebreaker: this.tiebreaker, nominate: false })
  }

  /** Resolves when this side's prediction is in and, if it predicted, the peer's predicted candidates (or its end-of-candidates) are too. */
  private async peerPredictionKnown (): Promise<void> {
    // Bounded like the gate that waits for it; trickled predicted candidates come together, so one more poll takes them all.
    let seen = false
    for (const until = performance.now() + 1000; this.closing === undefined && performance.now() < until;) {
      const own = this.portPrediction
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
  private sprayHost (hostBase: Base, primary: string): SprayHost {
    return {
      socket: hostBase.socket,
      check: () => this.rawCheck(),
      direct: () => { const p = this.path; return p?.type === 'direct' ? p.remote : undefined },
      remotes: () => this.remote,
      adopt: (socket, from, first) => {
        if (this.closing !== undefined) { void socket.close(); return }
        const c = makeCandidate({ type: 'host', address: primary, port: socket.local.port, server: 'birthday-spray', localPreference: 0 })
        const base = this.addBase(c, socket)
        this.local.push(c)
        let remote = this.remote.find(r => sameTransportAddress(r, from))
        if (remote === undefined) {
          remote = makeCandidate({ type: 'prflx', address: from.address, port: from.port })
          this.remote.push(remote)
        }
        const [pair] = this.checks.addPairs([c], [remote], this.role === 'controlling')
        this.onPacket(base, first, from)
        if (pair !== undefined) this.checks.trigger(pair)
      },
      report: (attempt) => { this.gatherAttempts.push(attempt) }
    }
  }
}

function pathOf (p: CandidatePair): PathInfo {
  return { type: isRelayed(p) ? 'relay' : 'direct', local: p.local, remote: p.remote, rttMs: p.rttMs ?? null }
}

function newCredentials (): { ufrag: string, pwd: string, key: Buffer } {
  const pwd = randomBytes(18).toString('base64')
  return { ufrag: randomBytes(6).toString('base64'), pwd, key: shortTermKey(pwd) }
}
