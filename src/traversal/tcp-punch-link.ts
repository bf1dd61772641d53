/**
 * The TCP simultaneous-open technique as a PeerSession runs it (opt-in: `tcpSimultaneousOpen`), libp2p DCUtR-style
 * over natkit's signalling:
 * 1. gather: learn this side's public TCP endpoint over STUN/TCP from a reusable port and offer it as an RFC 6544
 *    `tcptype so` candidate in the offer/answer;
 * 2. attempt 1 fires when the session starts its checks (both sides at the same moment: the session measured the
 *    signalling round trip and the controlling side waited half of it);
 * 3. a failed attempt is retried at a freshly coordinated moment: each side says its attempt is over, the controlling
 *    side measures the round trip again (`ping`/`pong`), sends `go` and connects half a round trip later, the
 *    controlled side connects when `go` arrives; at most `attempts` times;
 * 4. a connected stream is authenticated with an ICE check (tcp-punch.ts) and becomes a direct path.
 * Every attempt is reported with its reason code. Sockets close on close().
 */
import { EventEmitter } from 'node:events'
import { InvalidArgumentError, TcpPunchError } from '../errors.js'
import { createLogger } from '../log.js'
import { formatEndpoint } from '../net/endpoint.js'
import type { Candidate } from './candidate.js'
import type { SignalChannel, SignalMessage } from './signal-channel.js'
import {
  TcpIcePath, dialSimultaneous, learnTcpMapping, tcpSoCandidate, type TcpCheckCredentials, type TcpMapping, type TcpPunchOutcome
} from './tcp-punch.js'

const log = createLogger('natcheck:traversal:tcp-punch')

/** Options of the TCP simultaneous-open technique (`tcpSimultaneousOpen` of connect()). */
export interface TcpSimultaneousOpenOptions {
  /** Simultaneous-open attempts, each at a freshly coordinated moment (default 3, at most 10). */
  readonly attempts?: number
  /** How long one attempt's connect() may take (default 2500 ms: the first SYN and Linux's retransmission at 1 s). */
  readonly attemptTimeoutMs?: number
  /** How long the ICE check on a connected stream may take (default 2000 ms). */
  readonly checkTimeoutMs?: number
  /** How long learning the public TCP endpoint over STUN may take, per server (default 1500 ms). */
  readonly mappingTimeoutMs?: number
}

/** Resolved options with their defaults. */
export interface ResolvedTcpPunchOptions { readonly attempts: number, readonly attemptTimeoutMs: number, readonly checkTimeoutMs: number, readonly mappingTimeoutMs: number }

/** Validate and default {@link TcpSimultaneousOpenOptions}. @throws InvalidArgumentError saying what to fix. */
export function resolveTcpPunchOptions (o: boolean | TcpSimultaneousOpenOptions): ResolvedTcpPunchOptions {
  const v = typeof o === 'object' ? o : {}
  const r = { attempts: v.attempts ?? 3, attemptTimeoutMs: v.attemptTimeoutMs ?? 2500, checkTimeoutMs: v.checkTimeoutMs ?? 2000, mappingTimeoutMs: v.mappingTimeoutMs ?? 1500 }
  if (!Number.isInteger(r.attempts) || r.attempts < 1 || r.attempts > 10) throw new InvalidArgumentError(`tcpSimultaneousOpen.attempts must be a whole number from 1 to 10; got ${String(v.attempts)}`)
  for (const k of ['attemptTimeoutMs', 'checkTimeoutMs', 'mappingTimeoutMs'] as const) {
    if (!Number.isFinite(r[k]) || r[k] < 50 || r[k] > 60_000) throw new InvalidArgumentError(`tcpSimultaneousOpen.${k} must be 50-60000 ms; got ${String(v[k])}`)
  }
  return r
}

/** One simultaneous-open attempt in the report. */
export interface TcpPunchAttempt {
  readonly n: number
  readonly remote: string
  readonly outcome: TcpPunchOutcome
  readonly detail: string | null
  /** When the attempt's connect() started, from the link's start (ms). */
  readonly startedMs: number
  /** How long connect() and the check took (ms). */
  readonly ms: number
}

/**
 * How the technique ended: an attempt's reason code, `tcp-so-no-mapping` (STUN over TCP did not answer, so no
 * candidate was offered), `tcp-so-no-peer-candidate` (the peer offered none), or null while it runs.
 */
export type TcpPunchResult = TcpPunchOutcome | 'tcp-so-no-mapping' | 'tcp-so-no-peer-candidate'

/** The technique's part of the connect report. */
export interface TcpPunchReport {
  readonly mapping: { readonly local: string, readonly mapped: string, readonly server: string, readonly ms: number } | null
  readonly mappingError: string | null
  readonly localCandidate: Candidate | null
  readonly remoteCandidate: Candidate | null
  readonly attempts: TcpPunchAttempt[]
  readonly result: TcpPunchResult | null
  /** From the link's start (the session's checks) to an authenticated TCP path (ms). */
  readonly connectedMs: number | null
}

/** Events of TcpPunchLink. */
export interface TcpPunchLinkEvents {
  /** An authenticated direct TCP path is up. */
  up: [path: TcpIcePath]
  /** An application packet over the TCP path. */
  message: [data: Buffer]
  /** The TCP path ended after it was up. */
  down: [reason: string]
}

/** Early packets kept at most (the Agent keeps its early datagrams the same way). */
const EARLY_MAX = 256

type PunchSignal = Extract<SignalMessage, { t: 'natkit/tcp-punch' }>

/** The technique for one session. Internal to PeerSession; `report()` is what the public report carries. */
export class TcpPunchLink extends EventEmitter<TcpPunchLinkEvents> {
  private mapping: TcpMapping | undefined
  private mappingError: string | null = null
  private localCandidate: Candidate | undefined
  private remoteCandidate: Candidate | undefined
  private readonly attempts: TcpPunchAttempt[] = []
  private result: TcpPunchResult | null = null
  private connectedMs: number | null = null
  private tcpPath: TcpIcePath | undefined
  private startedAt = 0
  private running = false
  private closed = false
  private readonly abort = new AbortController()
  private readonly unsubscribe: () => void
  private readonly inbox: PunchSignal[] = []
  private wake: () => void = () => {}
  private sid = ''
  /** Packets that came before anyone listened (the app subscribes after connect() resolves), as the Agent keeps them. */
  private readonly early: Buffer[] = []

  constructor (private readonly options: ResolvedTcpPunchOptions, private readonly channel: SignalChannel, private readonly stunServers: readonly string[], private readonly bindAddress?: string) {
    super()
    ;(this as EventEmitter).on('newListener', (event: string | symbol) => {
      if (event === 'message' && this.early.length > 0) queueMicrotask(() => { for (const d of this.early.splice(0)) this.emit('message', d) })
    })
    this.unsubscribe = channel.subscribe((raw) => {
      const m = raw as PunchSignal
      if (typeof m !== 'object' || m === null || m.t !== 'natkit/tcp-punch' || typeof m.n !== 'number') return
      if (m.op === 'ping') { if (this.sid === '' || m.sid === this.sid) this.send({ t: 'natkit/tcp-punch', sid: m.sid, op: 'pong', n: m.n }); return }
      if (this.inbox.length < 64) this.inbox.push(m)
      this.wake()
    })
  }

  /** Learn the public TCP endpoint and make the `so` candidate; undefined (and reported) when STUN over TCP failed. Never rejects. */
  async gather (): Promise<Candidate | undefined> {
    try {
      // One budget for all servers, so an offer never waits longer than mappingTimeoutMs for it.
      const signal = AbortSignal.any([this.abort.signal, AbortSignal.timeout(this.options.mappingTimeoutMs)])
      this.mapping = await learnTcpMapping(this.stunServers, { localAddress: this.bindAddress, timeoutMs: this.options.mappingTimeoutMs, signal })
      if (this.closed) { this.mapping.close(); return undefined }
      this.localCandidate = tcpSoCandidate(this.mapping)
      log('TCP mapping %s → %s via %s', formatEndpoint(this.mapping.local), formatEndpoint(this.mapping.mapped), this.mapping.server)
      return this.localCandidate
    } catch (err) {
      this.mappingError = (err as Error).message
      log('no TCP mapping: %s', this.mappingError)
      return undefined
    }
  }

  /** A remote candidate from the offer/answer or trickled: the first `tcptype so` one is the punch target. */
  addRemote (c: Candidate): void {
    if (c.transport !== 'tcp' || c.tcpType !== 'so' || this.remoteCandidate !== undefined) return
    this.remoteCandidate = c
  }

  /** The authenticated TCP path, while it is open. */
  get path (): TcpIcePath | undefined { return this.tcpPath?.open === true ? this.tcpPath : undefined }
  /** The local `so` candidate (for reports and the path). */
  get candidate (): Candidate | undefined { return this.localCandidate }
  /** The remote `so` candidate (for the path). */
  get remote (): Candidate | undefined { return this.remoteCandidate }
  /** Whether attempts are still under way. */
  get pending (): boolean { return this.running }

  /**
   * Start the attempts now (the session's coordinated moment). `credentials` are the session's ICE credentials;
   * `controlling` picks who paces the retries.
   */
  start (sid: string, controlling: boolean, credentials: Omit<TcpCheckCredentials, 'priority'>): void {
    if (this.running || this.closed) return
    this.sid = sid
    this.startedAt = performance.now()
    if (this.localCandidate === undefined || this.mapping === undefined) { this.result = 'tcp-so-no-mapping'; return }
    if (this.remoteCandidate === undefined) { this.result = 'tcp-so-no-peer-candidate'; this.mapping.close(); return }
    this.running = true
    void this.run(controlling, { ...credentials, priority: this.localCandidate.priority })
      .catch((err: Error) => { log('TCP punch stopped: %s', err.message) })
      .finally(() => { this.running = false; this.mapping?.close() })
  }

  private async run (controlling: boolean, creds: TcpCheckCredentials): Promise<void> {
    const remote = this.remoteCandidate as Candidate
    const mapping = this.mapping as TcpMapping
    const o = this.options
    // Waits between attempts: the peer's attempt is bounded like ours, so two attempt times and a round trip suffice.
    const waitMs = 2 * o.attemptTimeoutMs + o.checkTimeoutMs + 2000
    for (let n = 1; n <= o.attempts && !this.closed; n++) {
      if (n > 1) {
        if (controlling) {
          if (await this.next('ready', n - 1, waitMs) === undefined) { log('the peer never finished attempt %d', n - 1); break }
          const sent = performance.now()
          this.send({ t: 'natkit/tcp-punch', sid: this.sid, op: 'ping', n })
          if (await this.next('pong', n, waitMs) === undefined) break
          const rtt = performance.now() - sent
          this.send({ t: 'natkit/tcp-punch', sid: this.sid, op: 'go', n, rttMs: Math.round(rtt * 10) / 10 })
          await sleep(rtt / 2)
        } else if (await this.next('go', n, waitMs) === undefined) {
          log('no go for attempt %d', n)
          break
        }
      }
      if (this.closed) break
      const startedMs = Math.round(performance.now() - this.startedAt)
      const dial = await dialSimultaneous(remote, { localAddress: mapping.local.address, localPort: mapping.local.port, timeoutMs: o.attemptTimeoutMs, signal: this.abort.signal })
      let outcome = dial.outcome
      let detail = dial.detail
      if (dial.socket !== undefined) {
        try {
          const path = await TcpIcePath.establish(dial.socket, creds, { timeoutMs: o.checkTimeoutMs, signal: this.abort.signal })
          this.record({ n, remote: formatEndpoint(remote), outcome: 'tcp-so-connected', detail: `${formatEndpoint(path.local)} → ${formatEndpoint(path.remote)}`, startedMs, ms: Math.round(performance.now() - this.startedAt) - startedMs })
          this.connectedMs = Math.round(performance.now() - this.startedAt)
          this.adopt(path)
          return
        } catch (err) {
          outcome = err instanceof TcpPunchError ? err.outcome as TcpPunchOutcome : 'tcp-so-error'
          detail = (err as Error).message
        }
      }
      this.record({ n, remote: formatEndpoint(remote), outcome, detail, startedMs, ms: Math.round(performance.now() - this.startedAt) - startedMs })
      if (outcome === 'tcp-so-cancelled') return
      if (n < o.attempts) this.send({ t: 'natkit/tcp-punch', sid: this.sid, op: 'ready', n })
    }
  }

  private record (a: TcpPunchAttempt): void {
    this.attempts.push(a)
    this.result = a.outcome
    log('attempt %d to %s: %s%s', a.n, a.remote, a.outcome, a.detail === null ? '' : ` (${a.detail})`)
  }

  private adopt (path: TcpIcePath): void {
    if (this.closed) { path.close(); return }
    this.tcpPath = path
    path.on('message', (d) => {
      if (this.listenerCount('message') > 0) this.emit('message', d)
      else if (this.early.length < EARLY_MAX) this.early.push(d)
    })
    path.on('closed', (reason) => { log('TCP path closed: %s', reason); if (!this.closed) this.emit('down', reason) })
    this.emit('up', path)
  }

  private async next (op: 'ready' | 'pong' | 'go', n: number, timeoutMs: number): Promise<PunchSignal | undefined> {
    const deadline = performance.now() + timeoutMs
    while (!this.closed) {
      const i = this.inbox.findIndex(m => m.op === op && m.n === n && m.sid === this.sid)
      if (i >= 0) return this.inbox.splice(i, 1)[0]
      const left = deadline - performance.now()
      if (left <= 0) return undefined
      await new Promise<void>(resolve => { this.wake = resolve; setTimeout(resolve, Math.min(left, 100)).unref() })
    }
    return undefined
  }

  private send (m: PunchSignal): void {
    try {
      Promise.resolve(this.channel.send(m)).catch((err: Error) => { log('signalling send failed: %s', err.message) })
    } catch (err) { log('signalling send failed: %s', (err as Error).message) }
  }

  /** What the technique did so far. */
  report (): TcpPunchReport {
    const m = this.mapping
    return {
      mapping: m === undefined ? null : { local: formatEndpoint(m.local), mapped: formatEndpoint(m.mapped), server: m.server, ms: m.ms },
      mappingError: this.mappingError,
      localCandidate: this.localCandidate ?? null,
      remoteCandidate: this.remoteCandidate ?? null,
      attempts: [...this.attempts],
      result: this.result,
      connectedMs: this.connectedMs
    }
  }

  /** Stop attempts, close the STUN connection and the TCP path. Idempotent. */
  close (): void {
    if (this.closed) return
    this.closed = true
    this.abort.abort()
    this.wake()
    this.unsubscribe()
    this.mapping?.close()
    this.tcpPath?.close()
  }
}

async function sleep (ms: number): Promise<void> {
  await new Promise(resolve => setTimeout(resolve, ms))
}
