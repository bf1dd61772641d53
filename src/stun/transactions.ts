import { AbortError, StunTimeoutError } from '../errors.js'
import { createLogger } from '../log.js'
import { formatEndpoint, type Endpoint } from '../net/endpoint.js'
import type { DatagramSocket } from '../net/udp.js'
import { AttrType } from './attr-type.js'
import { HEADER_LENGTH, MessageClass } from './constants.js'
import { classifyPacket } from './demux.js'
import { StunMessage } from './message.js'
import { resolveRetransmit, udpSchedule, type ResolvedRetransmit, type RetransmitOptions } from './retransmit.js'

const log = createLogger('natcheck:stun:transaction')

/** How late node's timers fire on a busy but running event loop (ms): a shorter final wait than planned is no stall. */
const TIMER_SLACK_MS = 5

/** A response matched to a request. */
export interface StunResponse {
  readonly message: StunMessage
  /** Where the response came from (differs from the request's destination after a CHANGE-REQUEST). */
  readonly from: Endpoint
  /** Milliseconds from the latest send of the request to the response. */
  readonly rttMs: number
  /** How many times the request was sent. */
  readonly sends: number
}

/** Per-request options. */
export interface RequestOptions extends RetransmitOptions {
  readonly signal?: AbortSignal
}

/** Options for StunTransactions. */
export interface StunTransactionsOptions {
  /** Default retransmission settings (RFC 8489 defaults). */
  readonly retransmit?: RetransmitOptions
  /** Receives every datagram that is not a response to a pending request (requests, indications, ChannelData, media). */
  readonly onOther?: (data: Buffer, from: Endpoint) => void
  /** Clock (ms); injectable for tests. */
  readonly now?: () => number
}

interface Pending {
  readonly resolve: (r: StunResponse) => void
  readonly reject: (e: Error) => void
  lastSend: number
  sends: number
  finish: () => void
}

/**
 * Client transactions over one datagram socket (RFC 8489 §6.2.1, §6.3.3): retransmits on the RFC schedule, matches
 * responses by transaction id (from any source address, since CHANGE-REQUEST answers come from elsewhere), and
 * never lets a malformed or unrelated datagram, or one request's error response, disturb the others.
 */
export class StunTransactions {
  private readonly pending = new Map<string, Pending>()
  private readonly defaults: ResolvedRetransmit
  private readonly now: () => number
  private readonly onOther: ((data: Buffer, from: Endpoint) => void) | undefined
  private closed = false

  constructor (readonly socket: DatagramSocket, options: StunTransactionsOptions = {}) {
    this.defaults = resolveRetransmit(options.retransmit)
    this.now = options.now ?? (() => performance.now())
    this.onOther = options.onOther
    socket.onMessage((data, from) => { this.handle(data, from) })
  }

  /** Number of requests awaiting a response. */
  get size (): number { return this.pending.size }

  /**
   * Send an encoded request to `to` and resolve with the matching response (success or error class alike).
   * Rejects with StunTimeoutError after the last retransmission, or AbortError when `signal` aborts.
   */
  request (data: Uint8Array, to: Endpoint, options: RequestOptions = {}): Promise<StunResponse> {
    if (this.closed) return Promise.reject(new AbortError('the STUN transaction layer is closed'))
    if (options.signal?.aborted === true) return Promise.reject(new AbortError(undefined, { cause: options.signal.reason }))
    const key = Buffer.from(data.buffer, data.byteOffset + 4, 16).toString('latin1')
    const r = resolveRetransmit({ ...this.defaults, ...definedOnly(options) })
    const { sends, timeout } = udpSchedule(r)
    const started = this.now()
    return new Promise<StunResponse>((resolve, reject) => {
      const timers: NodeJS.Timeout[] = []
      const onAbort = (): void => { entry.finish(); reject(new AbortError(undefined, { cause: options.signal?.reason })) }
      const entry: Pending = {
        resolve,
        reject,
        lastSend: started,
        sends: 0,
        finish: () => {
          for (const t of timers) clearTimeout(t)
          options.signal?.removeEventListener('abort', onAbort)
          this.pending.delete(key)
        }
      }
      if (this.pending.has(key)) { reject(new AbortError('a request with this transaction id is already pending')); return }
      this.pending.set(key, entry)
      options.signal?.addEventListener('abort', onAbort, { once: true })
      const send = (): void => {
        entry.lastSend = this.now()
        entry.sends++
        this.socket.send(data, to)
      }
      send()
      for (const at of sends.slice(1)) timers.push(setTimeout(send, at))
      // RFC 8489 §6.2.1: fail once "a duration equal to Rm times the RTO has passed" after the last request, counted
      // from when it was really sent. When the event loop was blocked or starved past the deadline, the last
      // retransmission and this timer fire together, late, and node runs due timers before it reads the sockets: the
      // answer may be waiting unread (or, from a server in this process, not yet sent). Then the wait after the last
      // send starts again, once, so silence is concluded only after the process could listen for Rm × RTO.
      const finalWait = r.rm * r.rtoMs
      let rearmed = false
      const expire = (): void => {
        const waited = this.now() - entry.lastSend
        if (!rearmed && (entry.sends < sends.length || waited < finalWait - TIMER_SLACK_MS)) {
          rearmed = true
          timers.push(setTimeout(expire, entry.sends < sends.length ? finalWait : finalWait - waited))
          return
        }
        entry.finish()
        reject(new StunTimeoutError(formatEndpoint(to), Math.round(this.now() - started)))
      }
      timers.push(setTimeout(expire, timeout))
    })
  }

  /** Whether a datagram is a response to one of this layer's pending requests (for sockets shared by several users). */
  owns (data: Uint8Array): boolean {
    return data.length >= HEADER_LENGTH && data[0] <= 3 && this.pending.has(Buffer.from(data.buffer, data.byteOffset + 4, 16).toString('latin1'))
  }

  /** Feed a received datagram. Never throws. */
  handle (data: Buffer, from: Endpoint): void {
    if (data.length >= HEADER_LENGTH && classifyPacket(data) === 'stun') {
      const entry = this.pending.get(data.toString('latin1', 4, 20))
      if (entry !== undefined) {
        let message: StunMessage
        try {
          message = StunMessage.decode(data)
        } catch (err) {
          log.trace('malformed response from %s ignored: %s', formatEndpoint(from), (err as Error).message)
          return
        }
        if (message.cls === MessageClass.SuccessResponse || message.cls === MessageClass.ErrorResponse) {
          // RFC 8489 §7.3: a response whose FINGERPRINT is present but wrong is discarded.
          if (message.has(AttrType.Fingerprint) && !message.verifyFingerprint()) {
            log.trace('response with a bad FINGERPRINT from %s ignored', formatEndpoint(from))
            return
          }
          entry.finish()
          entry.resolve({ message, from, rttMs: this.now() - entry.lastSend, sends: entry.sends })
          return
        }
      }
    }
    if (this.onOther !== undefined) {
      try { this.onOther(data, from) } catch (err) { log.error('onOther handler threw: %O', err) }
    }
  }

  /** Reject every pending request with AbortError and stop accepting new ones. Idempotent. */
  close (): void {
    this.closed = true
    for (const entry of [...this.pending.values()]) {
      entry.finish()
      entry.reject(new AbortError('the STUN transaction layer was closed'))
    }
  }
}

function definedOnly (o: RetransmitOptions): RetransmitOptions {
  const out: Record<string, number> = {}
  for (const k of ['rtoMs', 'rc', 'rm', 'reliableTimeoutMs'] as const) if (o[k] !== undefined) out[k] = o[k]
  return out
}
