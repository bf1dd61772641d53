import type { Socket } from 'node:net'
import { AbortError, StunTimeoutError, TransportError } from '../errors.js'
import { createLogger } from '../log.js'
import { HEADER_LENGTH, MessageClass } from './constants.js'
import { readStreamFrame } from './demux.js'
import { StunMessage } from './message.js'
import { RETRANSMIT_DEFAULTS } from './retransmit.js'

const log = createLogger('natcheck:stun:stream')

/** Largest buffered, unframed input before the connection is treated as broken (one max frame plus slack). */
const MAX_BUFFERED = HEADER_LENGTH + 0xffff + 4

/**
 * Client transactions over a TCP or TLS connection (RFC 8489 §6.2.2): each request is sent once and fails after
 * Ti (39.5 s by default); responses are matched by transaction id. Frames that are not responses (indications,
 * ChannelData) go to `onOther`.
 */
export class StreamTransactions {
  private buffer: Buffer = Buffer.alloc(0)
  private readonly pending = new Map<string, { resolve: (m: StunMessage) => void, reject: (e: Error) => void, finish: () => void }>()
  private failure: Error | undefined

  constructor (readonly socket: Socket, private readonly onOther?: (frame: Buffer) => void) {
    socket.on('data', (chunk: Buffer) => { this.onData(chunk) })
    socket.on('error', (err) => { this.fail(new TransportError(`connection error: ${err.message}`, { cause: err })) })
    socket.on('close', () => { this.fail(new TransportError('connection closed by the server')) })
  }

  /** Send an encoded request and resolve with the response message. */
  request (data: Uint8Array, options: { timeoutMs?: number, signal?: AbortSignal } = {}): Promise<StunMessage> {
    if (this.failure !== undefined) return Promise.reject(this.failure)
    const key = Buffer.from(data.buffer, data.byteOffset + 4, 16).toString('latin1')
    const timeoutMs = options.timeoutMs ?? RETRANSMIT_DEFAULTS.reliableTimeoutMs
    return new Promise<StunMessage>((resolve, reject) => {
      const onAbort = (): void => { finish(); reject(new AbortError()) }
      const timer = setTimeout(() => { finish(); reject(new StunTimeoutError(`${this.socket.remoteAddress}:${this.socket.remotePort}`, timeoutMs)) }, timeoutMs)
      const finish = (): void => {
        clearTimeout(timer)
        options.signal?.removeEventListener('abort', onAbort)
        this.pending.delete(key)
      }
      if (options.signal?.aborted === true) { onAbort(); return }
      options.signal?.addEventListener('abort', onAbort, { once: true })
      this.pending.set(key, { resolve, reject, finish })
      this.socket.write(data)
    })
  }

  /** Send raw bytes (an indication or ChannelData frame) on the connection. */
  write (data: Uint8Array): void {
    if (this.failure === undefined) this.socket.write(data)
  }

  private onData (chunk: Buffer): void {
    this.buffer = this.buffer.length === 0 ? chunk : Buffer.concat([this.buffer, chunk])
    for (let guard = 0; guard < 10_000; guard++) {
      const frame = readStreamFrame(this.buffer)
      if (frame.kind === 'incomplete') break
      if (frame.kind === 'invalid') {
        this.fail(new TransportError(`unframeable data from the server: ${frame.reason}`))
        this.socket.destroy()
        return
      }
      this.buffer = this.buffer.subarray(frame.length)
      this.dispatch(frame.kind, Buffer.from(frame.frame))
    }
    if (this.buffer.length > MAX_BUFFERED) {
      this.fail(new TransportError('the server sent more unframed data than one message can hold'))
      this.socket.destroy()
    }
  }

  private dispatch (kind: 'stun' | 'channel-data', frame: Buffer): void {
    if (kind === 'stun') {
      const entry = this.pending.get(frame.toString('latin1', 4, 20))
      if (entry !== undefined) {
        try {
          const message = StunMessage.decode(frame, { copy: false })
          if (message.cls === MessageClass.SuccessResponse || message.cls === MessageClass.ErrorResponse) {
            entry.finish(); entry.resolve(message); return
          }
        } catch (err) {
          log.trace('malformed frame ignored: %s', (err as Error).message)
          return
        }
      }
    }
    try { this.onOther?.(frame) } catch (err) { log.error('onOther threw: %O', err) }
  }

  private fail (err: Error): void {
    if (this.failure !== undefined) return
    this.failure = err
    for (const entry of [...this.pending.values()]) { entry.finish(); entry.reject(err) }
  }

  /** Close the connection; pending requests reject. Idempotent. */
  close (): void {
    this.fail(new AbortError('the STUN connection was closed'))
    this.socket.destroy()
  }
}
