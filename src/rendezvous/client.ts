import { EventEmitter } from 'node:events'
import { performance } from 'node:perf_hooks'
import { WebSocket, type RawData } from 'ws'
import { AbortError, InvalidArgumentError, TransportError } from '../errors.js'
import { createLogger } from '../log.js'
import { RendezvousClosedError, RendezvousOutboxFullError, RendezvousRemoteError, RendezvousTimeoutError } from './errors.js'
import { RENDEZVOUS_FATAL_CODES, isValidPeerId, type ObservedAddress, type RegisteredFrame, type ServerFrame } from './protocol.js'

const log = createLogger('natcheck:rendezvous:client')

/** Reconnect policy: bounded exponential backoff with jitter. */
export interface RendezvousReconnectOptions {
  /** First delay (default 250 ms); doubles on every failed attempt. */
  readonly initialDelayMs?: number
  /** Longest delay (default 10000 ms). */
  readonly maxDelayMs?: number
  /** Attempts in a row before giving up and emitting `close` (default 100). */
  readonly maxAttempts?: number
}

/** Options for RendezvousClient.connect. */
export interface RendezvousClientOptions {
  /** `ws://HOST:PORT/`. */
  readonly url: string
  /** This peer's id (1–128 characters). */
  readonly id: string
  /** Token from rendezvousToken, or a function giving a fresh one for every (re)connect. Ignored by open servers. */
  readonly token?: string | (() => string | Promise<string>)
  /** Aborts the initial connect. */
  readonly signal?: AbortSignal
  /** Reconnect automatically with `resume` after the connection drops (default on), or false. */
  readonly reconnect?: RendezvousReconnectOptions | false
  /** How long connect/register may take (default 10000 ms). */
  readonly connectTimeoutMs?: number
  /** Default time a send or ping waits for its answer (default 10000 ms). */
  readonly requestTimeoutMs?: number
  /** WebSocket ping interval; a missed pong drops the connection (default 15000 ms, 0 off). */
  readonly heartbeatMs?: number
  /** Most sends waiting for an ack (default 1000). */
  readonly maxOutbox?: number
  /** Local IP address to connect from (default: chosen by the OS). */
  readonly localAddress?: string
}

/** Details of a received message. `n` is the server's delivery number in this session. */
export interface RendezvousMessageInfo { readonly seq?: number, readonly n: number }

/** Events a RendezvousClient emits. */
export interface RendezvousClientEvents {
  message: [from: string, data: unknown, info: RendezvousMessageInfo]
  presence: [id: string, online: boolean]
  reconnected: [info: { session: string, observed: ObservedAddress, resumed: boolean }]
  disconnected: [info: { code: number, reason: string }]
  /** An error frame that answers no pending request (e.g. a rate-limited watch). */
  'remote-error': [error: RendezvousRemoteError]
  /** The client is closed for good: by close() (no error) or because it could not go on (the error). */
  close: [error?: Error]
}

/** Options of one request. */
export interface RendezvousRequestOptions { readonly signal?: AbortSignal, readonly timeoutMs?: number }

interface Pending<T> { resolve: (v: T) => void, reject: (e: Error) => void, cleanup: () => void }
interface Outgoing extends Pending<void> { readonly text: string }
interface PingWait extends Pending<{ rttMs: number, serverTimeOffsetMs: number }> { readonly sentAt: number }

/** Wire errors after which reconnecting is pointless. */
const FINAL_REASONS = new Set(['unauthorized', 'replaced', 'not_registered'])

const epochNow = (): number => performance.timeOrigin + performance.now()

/**
 * A rendezvous (signalling) client: registers `id`, relays JSON messages to other peers through the server, watches
 * their presence and measures the round trip to the server. Reconnects by itself after a drop, resuming the session
 * so that queued and in-flight messages are not lost, and re-sending unacknowledged ones. Protocol: docs/rendezvous.md.
 */
export class RendezvousClient extends EventEmitter<RendezvousClientEvents> {
  private ws: WebSocket | undefined
  private registered: RegisteredFrame | undefined
  private lastN = 0
  private nextSeq = 1
  private readonly outbox = new Map<number, Outgoing>()
  private readonly pings = new Map<number, PingWait>()
  private readonly watched = new Set<string>()
  private closed = false
  private attempts = 0
  private reconnectTimer: NodeJS.Timeout | undefined
  /** The fatal error frame (replaced, shutting_down…) received on the current connection, for its close handler. */
  private fatalError: RendezvousRemoteError | undefined
  /** The socket of a connection attempt in progress. */
  private connecting: WebSocket | undefined
  /** Settles when the last socket has closed after finish(). */
  private socketClosed: Promise<void> = Promise.resolve()

  /**
   * Messages that arrived while nobody listened — typically queued ones the server delivers right after `registered`,
   * in the same network read, before `connect()`'s caller could subscribe. Flushed to the first `message` listener.
   */
  private readonly unheard: Array<[string, unknown, RendezvousMessageInfo]> = []

  private constructor (private readonly options: RendezvousClientOptions) {
    super()
    ;(this as EventEmitter).on('newListener', (event: string | symbol) => {
      if (event === 'message' && this.unheard.length > 0) {
        queueMicrotask(() => { for (const [from, data, info] of this.unheard.splice(0)) this.emit('message', from, data, info) })
      }
    })
  }

  private deliver (from: string, data: unknown, info: RendezvousMessageInfo): void {
    if (this.listenerCount('message') > 0) this.emit('message', from, data, info)
    else if (this.unheard.length < 1024) this.unheard.push([from, data, info])
  }

  /** Connect and register; resolves once the server has answered `registered`. Rejects with TransportError,
   * RendezvousRemoteError (`unauthorized`, `expired`, `server_full`…), RendezvousTimeoutError or AbortError. */
  static async connect (options: RendezvousClientOptions): Promise<RendezvousClient> {
    if (!isValidPeerId(options.id)) throw new InvalidArgumentError('id must be a string of 1-128 characters without control characters')
    if (!/^wss?:\/\//.test(options.url)) throw new InvalidArgumentError(`url must be ws://HOST:PORT/ or wss://…, got ${JSON.stringify(options.url)}`)
    const client = new RendezvousClient(options)
    await client.open(options.signal)
    return client
  }

  /** This peer's id. */
  get id (): string { return this.options.id }
  /** The current session (changes when a reconnect could not resume). */
  get session (): string | undefined { return this.registered?.session }
  /** The public address the server saw for this connection. */
  get observed (): ObservedAddress | undefined { return this.registered?.observed }
  /** Whether the client is registered right now. */
  get connected (): boolean { return this.ws !== undefined && this.registered !== undefined && !this.closed }

  /** Relay `data` (any JSON value) to peer `to`. Resolves when the server has delivered or queued it. */
  send (to: string, data: unknown, options: RendezvousRequestOptions = {}): Promise<void> {
    if (this.closed) return Promise.reject(new RendezvousClosedError())
    if (!isValidPeerId(to)) return Promise.reject(new InvalidArgumentError('to must be a peer id'))
    if (data === undefined) return Promise.reject(new InvalidArgumentError('data must be a JSON value, not undefined'))
    const limit = this.options.maxOutbox ?? 1000
    if (this.outbox.size >= limit) return Promise.reject(new RendezvousOutboxFullError(limit))
    if (options.signal?.aborted === true) return Promise.reject(new AbortError())
    const seq = this.nextSeq++
    const text = JSON.stringify({ type: 'send', to, data, seq })
    return new Promise<void>((resolve, reject) => {
      const entry = this.pending(options, 'send', resolve, reject, () => { this.outbox.delete(seq) }) as Outgoing
      Object.assign(entry, { text })
      this.outbox.set(seq, entry)
      if (this.connected) this.ws?.send(text)
    })
  }

  /** Watch the presence of `ids`: a `presence` event for each now, and on every change (also after reconnects). */
  watch (ids: readonly string[]): void {
    const fresh = ids.filter(id => isValidPeerId(id))
    for (const id of fresh) this.watched.add(id)
    if (this.connected && fresh.length > 0) this.ws?.send(JSON.stringify({ type: 'watch', ids: fresh }))
  }

  /** Stop watching `ids`. */
  unwatch (ids: readonly string[]): void {
    for (const id of ids) this.watched.delete(id)
    if (this.connected && ids.length > 0) this.ws?.send(JSON.stringify({ type: 'unwatch', ids }))
  }

  /**
   * Round trip to the server and the offset of its clock: serverTime ≈ Date.now() + serverTimeOffsetMs (assuming a
   * symmetric path). The traversal engine uses these to schedule simultaneous punches.
   */
  ping (options: RendezvousRequestOptions = {}): Promise<{ rttMs: number, serverTimeOffsetMs: number }> {
    if (this.closed) return Promise.reject(new RendezvousClosedError())
    if (!this.connected) return Promise.reject(new RendezvousClosedError('not connected to the rendezvous server (reconnecting)'))
    if (options.signal?.aborted === true) return Promise.reject(new AbortError())
    let t = epochNow()
    for (let i = 0; i < 8 && this.pings.has(t); i++) t += 0.001
    const sentAt = performance.now()
    return new Promise((resolve, reject) => {
      const entry = this.pending(options, 'ping', resolve, reject, () => { this.pings.delete(t) }) as PingWait
      Object.assign(entry, { sentAt })
      this.pings.set(t, entry)
      this.ws?.send(JSON.stringify({ type: 'ping', t }))
    })
  }

  /** Close the connection and stop reconnecting; pending sends and pings reject with RendezvousClosedError. Idempotent. */
  async close (): Promise<void> {
    this.finish(undefined)
    await this.socketClosed
  }

  async [Symbol.asyncDispose] (): Promise<void> { await this.close() }

  /** A pending request: a timeout, an abort listener, and a cleanup that removes both and the entry. */
  private pending<T> (options: RendezvousRequestOptions, what: string, resolve: (v: T) => void, reject: (e: Error) => void, remove: () => void): Pending<T> {
    const timeoutMs = options.timeoutMs ?? this.options.requestTimeoutMs ?? 10_000
    const onAbort = (): void => { entry.cleanup(); reject(new AbortError()) }
    const timer = setTimeout(() => { entry.cleanup(); reject(new RendezvousTimeoutError(what, timeoutMs)) }, timeoutMs)
    timer.unref()
    options.signal?.addEventListener('abort', onAbort, { once: true })
    const entry: Pending<T> = {
      resolve: (v) => { entry.cleanup(); resolve(v) },
      reject: (e) => { entry.cleanup(); reject(e) },
      cleanup: () => { clearTimeout(timer); options.signal?.removeEventListener('abort', onAbort); remove() }
    }
    return entry
  }

  /** One connection attempt: open the socket, register, resolve on `registered`. */
  private async open (signal?: AbortSignal): Promise<RegisteredFrame> {
    if (signal?.aborted === true) throw new AbortError()
    const t = this.options.token
    const token = typeof t === 'function' ? await t() : t
    const timeoutMs = this.options.connectTimeoutMs ?? 10_000
    const local = this.options.localAddress
    const ws = new WebSocket(this.options.url, { handshakeTimeout: timeoutMs, perMessageDeflate: false, maxPayload: 16 * 1024 * 1024, ...(local === undefined ? {} : { localAddress: local }) })
    this.connecting = ws
    let heartbeat: NodeJS.Timeout | undefined
    let alive = true
    let remoteError: RendezvousRemoteError | undefined
    let transportError: Error | undefined
    const registered = await new Promise<RegisteredFrame>((resolve, reject) => {
      let settled = false
      const fail = (err: Error): void => {
        if (settled) return
        settled = true
        cleanup()
        ws.terminate()
        reject(err)
      }
      const onAbort = (): void => { fail(new AbortError()) }
      const timer = setTimeout(() => { fail(new RendezvousTimeoutError('connect', timeoutMs)) }, timeoutMs)
      const cleanup = (): void => { clearTimeout(timer); signal?.removeEventListener('abort', onAbort) }
      signal?.addEventListener('abort', onAbort, { once: true })
      ws.on('open', () => {
        const session = this.registered?.session
        ws.send(JSON.stringify(session === undefined
          ? { type: 'register', id: this.options.id, token }
          : { type: 'register', id: this.options.id, token, resume: session, received: this.lastN }))
      })
      ws.on('error', (err) => { transportError = err })
      ws.on('message', (data: RawData, isBinary: boolean) => {
        const frame = parse(data, isBinary)
        if (frame === undefined) return
        if (!settled) {
          if (frame.type === 'registered') {
            if (this.closed) { fail(new RendezvousClosedError()); return }
            settled = true
            cleanup()
            this.onRegistered(ws, frame)
            resolve(frame)
          } else if (frame.type === 'error') {
            remoteError = new RendezvousRemoteError(frame.code, frame.message, frame.ref)
          }
          return
        }
        if (this.ws === ws) this.onFrame(frame)
      })
      ws.on('pong', () => { alive = true })
      ws.on('close', (code, reason) => {
        if (heartbeat !== undefined) clearInterval(heartbeat)
        if (!settled) {
          fail(remoteError ?? new TransportError(`rendezvous connection to ${this.options.url} closed before registering (${code}${transportError === undefined ? '' : `: ${transportError.message}`})`, { cause: transportError }))
          return
        }
        if (this.ws === ws) this.onDisconnected(code, reason.toString())
      })
    }).finally(() => { if (this.connecting === ws) this.connecting = undefined })
    const hbMs = this.options.heartbeatMs ?? 15_000
    if (hbMs > 0) {
      heartbeat = setInterval(() => {
        if (!alive) { log('no pong from the server: dropping the connection'); ws.terminate(); return }
        alive = false
        try { ws.ping() } catch { ws.terminate() }
      }, hbMs)
      heartbeat.unref()
    }
    return registered
  }

  private onRegistered (ws: WebSocket, frame: RegisteredFrame): void {
    const reconnect = this.registered !== undefined
    if (!frame.resumed) this.lastN = 0
    this.ws = ws
    this.registered = frame
    this.fatalError = undefined
    this.attempts = 0
    log('registered as %s (session %s, resumed %s, observed %s:%d)', frame.id, frame.session, frame.resumed, frame.observed.address, frame.observed.port)
    // A new session knows nothing of our watches; a resumed one does, and re-sends presence itself.
    if (!frame.resumed && this.watched.size > 0) ws.send(JSON.stringify({ type: 'watch', ids: [...this.watched] }))
    for (const o of this.outbox.values()) ws.send(o.text)
    if (reconnect) queueMicrotask(() => { this.emit('reconnected', { session: frame.session, observed: frame.observed, resumed: frame.resumed }) })
  }

  private onFrame (frame: ServerFrame): void {
    switch (frame.type) {
      case 'message':
        if (typeof frame.n === 'number') {
          if (frame.n <= this.lastN) return // replayed after a resume, already seen
          this.lastN = frame.n
        }
        this.deliver(frame.from, frame.data, frame.seq === undefined ? { n: frame.n } : { seq: frame.seq, n: frame.n })
        break
      case 'ack':
        this.outbox.get(frame.seq)?.resolve()
        break
      case 'presence':
        this.emit('presence', frame.id, frame.online)
        break
      case 'pong': {
        const p = this.pings.get(frame.t)
        if (p === undefined) break
        const rttMs = performance.now() - p.sentAt
        p.resolve({ rttMs, serverTimeOffsetMs: frame.serverTime + rttMs / 2 - Date.now() })
        break
      }
      case 'error': {
        const err = new RendezvousRemoteError(frame.code, frame.message, frame.ref)
        const o = frame.ref === undefined ? undefined : this.outbox.get(frame.ref)
        if (RENDEZVOUS_FATAL_CODES.has(frame.code)) this.fatalError = err
        if (o !== undefined) o.reject(err)
        else this.emit('remote-error', err)
        break
      }
      case 'registered':
        break
    }
  }

  private onDisconnected (code: number, reason: string): void {
    const remoteError = this.fatalError
    this.ws = undefined
    log('disconnected (%d %s)', code, reason)
    for (const p of [...this.pings.values()]) p.reject(new RendezvousClosedError('the rendezvous connection dropped'))
    this.emit('disconnected', { code, reason })
    if (this.closed) return
    const final = remoteError !== undefined && (FINAL_REASONS.has(remoteError.reason) || (remoteError.reason === 'expired' && typeof this.options.token !== 'function'))
    if (this.options.reconnect === false || final) { this.finish(remoteError ?? new RendezvousClosedError(`the rendezvous connection closed (${code})`)); return }
    this.scheduleReconnect()
  }

  private scheduleReconnect (): void {
    const r = this.options.reconnect === false ? {} : this.options.reconnect ?? {}
    this.attempts++
    if (this.attempts > (r.maxAttempts ?? 100)) { this.finish(new RendezvousClosedError(`gave up reconnecting after ${this.attempts - 1} attempts`)); return }
    const base = Math.min(r.maxDelayMs ?? 10_000, (r.initialDelayMs ?? 250) * 2 ** Math.min(this.attempts - 1, 30))
    const delay = Math.round(base * (0.5 + Math.random() * 0.5))
    log('reconnecting in %d ms (attempt %d)', delay, this.attempts)
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = undefined
      if (this.closed) return
      this.open().catch((err: Error) => {
        log('reconnect failed: %s', err.message)
        if (this.closed) return
        if (err instanceof RendezvousRemoteError && (FINAL_REASONS.has(err.reason) || (err.reason === 'expired' && typeof this.options.token !== 'function'))) this.finish(err)
        else this.scheduleReconnect()
      })
    }, delay)
  }

  private finish (error: Error | undefined): void {
    if (this.closed) return
    this.closed = true
    if (this.reconnectTimer !== undefined) clearTimeout(this.reconnectTimer)
    this.connecting?.terminate()
    const ws = this.ws
    this.ws = undefined
    if (ws !== undefined && ws.readyState !== WebSocket.CLOSED) {
      this.socketClosed = new Promise<void>((resolve) => {
        const t = setTimeout(() => { ws.terminate() }, 1000)
        t.unref()
        ws.once('close', () => { clearTimeout(t); resolve() })
      })
      ws.close(1000, 'client closing')
    }
    const err = new RendezvousClosedError(error === undefined ? 'the rendezvous client was closed' : `the rendezvous client stopped: ${error.message}`, { cause: error })
    for (const o of [...this.outbox.values()]) o.reject(err)
    for (const p of [...this.pings.values()]) p.reject(err)
    this.emit('close', error)
  }
}

function parse (data: RawData, isBinary: boolean): ServerFrame | undefined {
  if (isBinary) return undefined
  try {
    const bytes = Buffer.isBuffer(data) ? data : Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data)
    const v = JSON.parse(bytes.toString('utf8')) as ServerFrame
    return v !== null && typeof v === 'object' && typeof v.type === 'string' ? v : undefined
  } catch {
    return undefined
  }
}
