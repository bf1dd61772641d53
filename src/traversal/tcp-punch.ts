/**
 * TCP simultaneous open (RFC 9293 §3.5) for hosts whose network drops UDP but lets TCP out: the building blocks.
 *
 * - {@link learnTcpMapping}: a STUN Binding over TCP (RFC 8489 §6.2.2) from a port bound with SO_REUSEADDR (libuv sets
 *   it on every TCP bind), so the punch can connect() from the same local port while the STUN connection stays open
 *   and keeps the NAT's mapping alive. The mapped address becomes an RFC 6544 `tcptype so` candidate.
 * - {@link dialSimultaneous}: one connect() from that local port to the peer's public endpoint, bounded in time,
 *   with the outcome as a reason code (`tcp-so-connected`, `tcp-so-refused`, `tcp-so-timeout`, …).
 * - {@link TcpIcePath}: the connected stream made an ICE path: an RFC 8445 connectivity check with the session's
 *   short-term credentials authenticates it (RFC 6544 §7.1), then application packets flow, every STUN message and
 *   packet framed per RFC 4571 (RFC 6544 §3).
 * The session-level orchestration (signalling, timing, retries) is in tcp-punch-link.ts.
 */
import { EventEmitter } from 'node:events'
import { connect as netConnect, type Socket } from 'node:net'
import { randomBytes } from 'node:crypto'
import { ERROR_CODES, InvalidArgumentError, StunTimeoutError, TcpPunchError, TransportError } from '../errors.js'
import { createLogger } from '../log.js'
import { ipFamily, type Endpoint } from '../net/endpoint.js'
import { resolveServer } from '../net/resolve.js'
import { MessageClass, Method, StunMessage, shortTermKey } from '../stun/index.js'
import { buildBindingRequest, parseBindingResponse } from '../stun/client.js'
import { StreamTransactions } from '../stun/stream-transactions.js'
import { isStunDatagram } from './ice-core/app-demux.js'
import { candidateFoundation, candidatePriority, type Candidate } from './candidate.js'
import { buildCheckRequest, buildCheckResponse, buildUnauthenticated, isAuthenticCheck, type IceRole } from './ice-core/check-messages.js'
import { Rfc4571Decoder, frameRfc4571 } from './rfc4571.js'

const log = createLogger('natcheck:traversal:tcp-punch')

/**
 * Reason codes of the TCP punch, in the attempts report: `tcp-so-connected` (the simultaneous open completed and the
 * check authenticated the path), `tcp-so-refused` (a RST came back: the peer's NAT or host answered but nothing was
 * connecting), `tcp-so-timeout` (no answer in the attempt's time: a filter dropped the SYNs), `tcp-so-reset`
 * (the connection broke during the check), `tcp-so-unreachable` (ICMP unreachable), `tcp-so-bind-failed` (the local
 * port could not be reused), `tcp-so-unauthenticated` (connected, but the check failed or went unanswered: not the
 * peer), `tcp-so-error` (anything else), `tcp-so-cancelled` (the session closed or found a better path first).
 */
export type TcpPunchOutcome =
  | 'tcp-so-connected' | 'tcp-so-refused' | 'tcp-so-timeout' | 'tcp-so-reset' | 'tcp-so-unreachable' | 'tcp-so-bind-failed'
  | 'tcp-so-unauthenticated' | 'tcp-so-error' | 'tcp-so-cancelled'

/** This side's public TCP endpoint, learnt over an open STUN connection from a reusable local port. */
export interface TcpMapping {
  /** The local endpoint the STUN connection (and so the punch) uses. */
  readonly local: Endpoint
  /** XOR-MAPPED-ADDRESS of the STUN server's answer: the NAT's public endpoint for `local`. */
  readonly mapped: Endpoint
  readonly server: string
  readonly ms: number
  /** Close the STUN connection (the mapping then lives on only in connections the punch opens). */
  close (): void
}

/** Options of learnTcpMapping. */
export interface TcpMappingOptions {
  /** Bind to this local address (default `0.0.0.0`). */
  readonly localAddress?: string
  /** Per server (default 1500 ms). */
  readonly timeoutMs?: number
  readonly signal?: AbortSignal
}

/**
 * RFC 6544 §4.2 local preference: direction-pref · 2^13 + other-pref. For server-reflexive candidates the S-O
 * direction ranks highest (6), since simultaneous open is what gets through two NATs; other-pref is the maximum.
 */
export const TCP_SO_LOCAL_PREFERENCE = 6 * 2 ** 13 + (2 ** 13 - 1)

/** The `tcptype so` server-reflexive candidate for a mapping (RFC 6544 §4.1, §4.5). */
export function tcpSoCandidate (m: Pick<TcpMapping, 'local' | 'mapped' | 'server'>): Candidate {
  return {
    type: 'srflx',
    address: m.mapped.address,
    port: m.mapped.port,
    transport: 'tcp',
    tcpType: 'so',
    priority: candidatePriority('srflx', TCP_SO_LOCAL_PREFERENCE),
    foundation: candidateFoundation('srflx', m.local.address, m.server, 'tcp'),
    component: 1,
    related: m.local
  }
}

/**
 * Learn the public TCP endpoint of a reusable local port: connect to each STUN server in turn (TCP, the server's
 * port) from `localAddress:0` — an explicit bind, so SO_REUSEADDR is on and a later connect() may share the port —
 * and send one Binding request. The connection stays open until `close()`.
 * @throws TransportError or StunTimeoutError when no server answered.
 */
export async function learnTcpMapping (servers: readonly string[], options: TcpMappingOptions = {}): Promise<TcpMapping> {
  if (servers.length === 0) throw new InvalidArgumentError('TCP simultaneous open needs a STUN server (stunServers) to learn the public TCP endpoint')
  const timeoutMs = options.timeoutMs ?? 1500
  let last: Error | undefined
  for (const server of servers) {
    const begun = performance.now()
    let tx: StreamTransactions | undefined
    try {
      const [target] = await resolveServer(server, { transport: 'tcp', family: 4, signal: options.signal })
      if (target === undefined || ipFamily(target.address) !== 4) throw new TransportError(`no IPv4 address for ${server}`)
      const socket = await openTcp(target, { localAddress: options.localAddress ?? '0.0.0.0', localPort: 0, timeoutMs, signal: options.signal })
      tx = new StreamTransactions(socket)
      const left = Math.max(1, timeoutMs - (performance.now() - begun))
      const response = await tx.request(buildBindingRequest({}), { timeoutMs: left, signal: options.signal })
      const local = { address: socket.localAddress ?? '', port: socket.localPort ?? 0 }
      const result = parseBindingResponse(response, target, local, performance.now() - begun)
      const opened = tx
      return { local, mapped: result.mapped, server, ms: Math.round(performance.now() - begun), close: () => { opened.close() } }
    } catch (err) {
      tx?.close()
      last = err as Error
      log('STUN over TCP to %s failed: %s', server, last.message)
    }
  }
  throw last ?? new TransportError('no STUN server answered over TCP')
}

/** The outcome of one simultaneous-open attempt. */
export interface DialResult {
  readonly outcome: TcpPunchOutcome
  /** The connected socket when `outcome` is `tcp-so-connected`. */
  readonly socket?: Socket
  readonly detail: string | null
  readonly ms: number
}

/** Options of dialSimultaneous. */
export interface DialOptions {
  readonly localAddress?: string
  readonly localPort: number
  /** Give up after this long (default 2500 ms: the first SYN and Linux's retransmission at 1 s). */
  readonly timeoutMs?: number
  readonly signal?: AbortSignal
}

/**
 * One connect() from `localPort` to the peer's public endpoint while the peer does the same (RFC 9293 §3.5): the
 * first SYN through each NAT opens its state for the other's. Resolves (never rejects) with a reason code; a socket
 * that did not connect is destroyed.
 */
export async function dialSimultaneous (remote: Endpoint, o: DialOptions): Promise<DialResult> {
  const begun = performance.now()
  const ms = (): number => Math.round(performance.now() - begun)
  const budget = o.timeoutMs ?? 2500
  let last: DialResult | undefined
  // A host with no NAT or firewall in front answers a SYN that arrives before its own connect() with RST (a NAT drops
  // it and the SYN is retransmitted a second later): a refusal within the attempt is dialled again shortly, bounded.
  for (let i = 0; i < REDIAL_MAX && (i === 0 || (last?.outcome === 'tcp-so-refused' && ms() + REDIAL_MS < budget)); i++) {
    if (i > 0) {
      await new Promise(resolve => setTimeout(resolve, REDIAL_MS))
      if (o.signal?.aborted === true) return { outcome: 'tcp-so-cancelled', detail: 'aborted', ms: ms() }
    }
    try {
      const socket = await openTcp(remote, { localAddress: o.localAddress ?? '0.0.0.0', localPort: o.localPort, timeoutMs: Math.max(1, budget - ms()), signal: o.signal })
      return { outcome: 'tcp-so-connected', socket, detail: null, ms: ms() }
    } catch (err) {
      const e = err as Error & { code?: string }
      const cause = (e.cause as { code?: string } | undefined)?.code ?? e.code
      last = { outcome: dialOutcome(cause, e), detail: e.message, ms: ms() }
    }
  }
  return last as DialResult
}

/** Pause before dialling again after a refusal, and the most dials in one attempt. */
const REDIAL_MS = 25
const REDIAL_MAX = 100

/** A reason code for a failed connect(), from its errno name. */
export function dialOutcome (code: string | undefined, err?: Error): TcpPunchOutcome {
  switch (code) {
    case 'ECONNREFUSED': return 'tcp-so-refused'
    case 'ECONNRESET': case 'EPIPE': return 'tcp-so-reset'
    case 'ETIMEDOUT': case ERROR_CODES.TCP_PUNCH_TIMEOUT: return 'tcp-so-timeout'
    case 'EHOSTUNREACH': case 'ENETUNREACH': return 'tcp-so-unreachable'
    case 'EADDRINUSE': case 'EADDRNOTAVAIL': return 'tcp-so-bind-failed'
    case ERROR_CODES.ABORT: return 'tcp-so-cancelled'
    default: return err?.name === 'AbortError' ? 'tcp-so-cancelled' : 'tcp-so-error'
  }
}

/** net.connect from a chosen local endpoint, bounded; rejects with an Error whose `code` names the failure. */
async function openTcp (to: Endpoint, o: { localAddress: string, localPort: number, timeoutMs: number, signal?: AbortSignal }): Promise<Socket> {
  return await new Promise<Socket>((resolve, reject) => {
    const socket = netConnect({ host: to.address, port: to.port, localAddress: o.localAddress, localPort: o.localPort })
    const fail = (err: Error): void => { cleanup(); socket.destroy(); reject(err) }
    const onError = (err: Error): void => { fail(err) }
    const onAbort = (): void => { fail(Object.assign(new Error('aborted'), { code: ERROR_CODES.ABORT, name: 'AbortError' })) }
    const timer = setTimeout(() => { fail(Object.assign(new Error(`no connection to ${to.address}:${to.port} within ${o.timeoutMs} ms`), { code: ERROR_CODES.TCP_PUNCH_TIMEOUT })) }, o.timeoutMs)
    timer.unref()
    const cleanup = (): void => { clearTimeout(timer); socket.off('error', onError); socket.off('connect', onConnect); o.signal?.removeEventListener('abort', onAbort) }
    const onConnect = (): void => { cleanup(); resolve(socket) }
    socket.once('connect', onConnect)
    socket.once('error', onError)
    if (o.signal?.aborted === true) { onAbort(); return }
    o.signal?.addEventListener('abort', onAbort, { once: true })
  })
}

/** The ICE credentials and role the check on a TCP path uses (the session's, from the offer/answer). */
export interface TcpCheckCredentials {
  readonly localUfrag: string
  readonly localPwd: string
  readonly remoteUfrag: string
  readonly remotePwd: string
  readonly role: IceRole
  readonly tiebreaker: bigint
  /** PRIORITY of the check: the local candidate's. */
  readonly priority: number
}

/** Events of TcpIcePath. */
export interface TcpIcePathEvents {
  /** An application packet from the peer (after the path is authenticated). */
  message: [data: Buffer]
  /** The connection ended (peer closed, reset, or close()). */
  closed: [reason: string]
}

/** Idle time before TCP keepalives on a TCP path: the agent's keepalive interval, below common NAT TCP timeouts. */
const KEEPALIVE_MS = 15_000

/** Packets kept until the path's owner listens. */
const EARLY_MAX = 256

/** Largest application packet a TcpIcePath carries (RFC 4571's 16-bit length). */
export const TCP_PATH_MAX_PACKET = 0xffff

/**
 * A connected TCP stream used as an ICE path (RFC 6544): STUN checks and application packets, each framed per
 * RFC 4571. Created by {@link TcpIcePath.establish}, which resolves once the path is authenticated — our check was
 * answered with the peer's MESSAGE-INTEGRITY, or the peer's check carried ours (either proves the far end took part
 * in this session's offer/answer). Application packets that arrive before that are dropped. Frames never make it
 * throw: a bad STUN message is ignored and logged, a check with the wrong credentials answered 401.
 */
export class TcpIcePath extends EventEmitter<TcpIcePathEvents> {
  private readonly decoder = new Rfc4571Decoder()
  private authenticated = false
  private ended: string | undefined
  private readonly localKey: Buffer
  private readonly remoteKey: Buffer
  private readonly txid: Buffer
  private sentAt = 0
  private onAuthenticated: (() => void) | undefined
  /** Round trip of our check (ms), once answered. */
  rttMs: number | null = null
  private readonly early: Buffer[] = []
  /** Application packets dropped because they came before the path was authenticated. */
  droppedEarly = 0
  /** The local and remote endpoints of the connection. */
  readonly local: Endpoint
  readonly remote: Endpoint

  private constructor (private readonly socket: Socket, private readonly creds: TcpCheckCredentials) {
    super()
    // Packets right behind the check's answer arrive in the same read, before establish() has handed the path over.
    ;(this as EventEmitter).on('newListener', (event: string | symbol) => {
      if (event === 'message' && this.early.length > 0) queueMicrotask(() => { for (const d of this.early.splice(0)) this.emit('message', d) })
    })
    this.localKey = shortTermKey(creds.localPwd)
    this.remoteKey = shortTermKey(creds.remotePwd)
    this.txid = randomBytes(12)
    this.local = { address: socket.localAddress ?? '', port: socket.localPort ?? 0 }
    this.remote = { address: socket.remoteAddress ?? '', port: socket.remotePort ?? 0 }
    socket.setNoDelay(true)
    // TCP keepalives refresh the NATs' state while the path is idle (the agent keeps UDP paths alive with Binding indications).
    socket.setKeepAlive(true, KEEPALIVE_MS)
    socket.on('data', (chunk: Buffer) => { this.onData(chunk) })
    socket.on('error', (err) => { this.end(`error: ${err.message}`) })
    socket.on('close', () => { this.end('closed') })
  }

  /**
   * Run the check on a connected socket and resolve with the authenticated path; rejects with TcpPunchError
   * (`tcp-so-unauthenticated` after `timeoutMs`, default 2000 ms; `tcp-so-reset` if the connection ends first),
   * destroying the socket.
   */
  static async establish (socket: Socket, creds: TcpCheckCredentials, options: { timeoutMs?: number, signal?: AbortSignal } = {}): Promise<TcpIcePath> {
    const path = new TcpIcePath(socket, creds)
    const timeoutMs = options.timeoutMs ?? 2000
    try {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => { done(new TcpPunchError(`the peer did not authenticate the TCP path within ${timeoutMs} ms`, 'tcp-so-unauthenticated', { cause: new StunTimeoutError(`${path.remote.address}:${path.remote.port}`, timeoutMs) })) }, timeoutMs)
        timer.unref()
        const onClosed = (reason: string): void => { done(new TcpPunchError(`the TCP connection ended during the check (${reason})`, 'tcp-so-reset')) }
        const onAbort = (): void => { done(new TcpPunchError('cancelled', 'tcp-so-cancelled')) }
        const done = (err?: Error): void => {
          clearTimeout(timer)
          path.off('closed', onClosed)
          options.signal?.removeEventListener('abort', onAbort)
          path.onAuthenticated = undefined
          if (err === undefined) resolve(); else reject(err)
        }
        path.onAuthenticated = () => { done() }
        path.on('closed', onClosed)
        if (options.signal?.aborted === true) { onAbort(); return }
        options.signal?.addEventListener('abort', onAbort, { once: true })
        path.sendCheck()
        if (path.authenticated) done()
      })
    } catch (err) {
      path.close()
      throw err
    }
    return path
  }

  /** Whether the connection is open and authenticated. */
  get open (): boolean { return this.authenticated && this.ended === undefined }

  /** Send one application packet (framed per RFC 4571). False when the path is closed. @throws InvalidArgumentError over 65535 bytes. */
  send (data: Uint8Array): boolean {
    if (!this.open) return false
    if (data.length > TCP_PATH_MAX_PACKET) throw new InvalidArgumentError(`a packet on a TCP path carries at most ${TCP_PATH_MAX_PACKET} bytes; got ${data.length}`)
    this.socket.write(frameRfc4571(data))
    return true
  }

  /** Close the connection. Idempotent. */
  close (): void {
    // RST rather than FIN: no TIME_WAIT is left on the 4-tuple, so a retry from the same port can connect again.
    if (!this.socket.destroyed) this.socket.resetAndDestroy()
    this.end('closed locally')
  }

  private end (reason: string): void {
    if (this.ended !== undefined) return
    this.ended = reason
    this.socket.destroy()
    this.emit('closed', reason)
  }

  private sendCheck (): void {
    const request = buildCheckRequest({
      localUfrag: this.creds.localUfrag, remoteUfrag: this.creds.remoteUfrag, remoteKey: this.remoteKey, priority: this.creds.priority,
      role: this.creds.role, tiebreaker: this.creds.tiebreaker, nominate: true
    })
    // buildCheckRequest draws its own transaction id; keep it to match the answer.
    this.txid.set(request.subarray(8, 20))
    this.sentAt = performance.now()
    this.socket.write(frameRfc4571(request))
  }

  private markAuthenticated (): void {
    if (this.authenticated) return
    this.authenticated = true
    this.onAuthenticated?.()
  }

  private onData (chunk: Buffer): void {
    let packets: Buffer[]
    try { packets = this.decoder.push(chunk) } catch (err) { log('undecodable stream: %s', (err as Error).message); this.close(); return }
    for (const p of packets) {
      if (this.ended !== undefined) return
      if (isStunDatagram(p)) { this.onStun(p); continue }
      if (!this.authenticated) { this.droppedEarly++; continue }
      if (p.length === 0) continue
      if (this.listenerCount('message') > 0) this.emit('message', p)
      else if (this.early.length < EARLY_MAX) this.early.push(p)
    }
  }

  private onStun (p: Buffer): void {
    let m: StunMessage
    try { m = StunMessage.decode(p) } catch (err) { log('malformed STUN on the TCP path ignored: %s', (err as Error).message); return }
    if (m.method !== Method.Binding) return
    if (m.cls === MessageClass.Request) {
      if (!isAuthenticCheck(m, this.creds.localUfrag, this.localKey)) {
        this.socket.write(frameRfc4571(buildUnauthenticated(m)))
        return
      }
      this.socket.write(frameRfc4571(buildCheckResponse(m, this.remote, this.localKey)))
      this.markAuthenticated()
      return
    }
    if (m.cls === MessageClass.SuccessResponse && Buffer.compare(Buffer.from(m.transactionId), this.txid) === 0) {
      if (!m.verifyIntegrity(this.remoteKey)) { log('check answer without the peer\'s integrity ignored'); return }
      this.rttMs = Math.round((performance.now() - this.sentAt) * 10) / 10
      this.markAuthenticated()
    }
  }
}
