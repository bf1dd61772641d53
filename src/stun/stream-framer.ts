import type { ChannelDataOptions } from './channel-data.js'
import { classifyPacket, readStreamFrame, type StreamFrame } from './demux.js'

/** What a StreamFramer lets through: STUN only (a STUN server), or STUN and ChannelData (a TURN server). */
export type StreamFramerAccepts = 'stun' | 'stun-or-channel-data'

/**
 * The receiving side of a STUN-over-TCP/TLS stream (RFC 8489 §6.2.2; RFC 8656 §12.5 for TURN's ChannelData): bytes
 * in as they arrive, whole frames out. A first byte that starts no accepted kind is reported as invalid at once,
 * without waiting for a 4-byte header, since a stream that lost its framing cannot be resynchronised. The STUN
 * server and the TURN server's client connections both cut their streams with it.
 */
export class StreamFramer {
  private buffer: Buffer = Buffer.alloc(0)

  constructor (private readonly accepts: StreamFramerAccepts) {}

  /** Append received bytes (kept as a view when nothing is buffered). */
  push (chunk: Buffer): void {
    this.buffer = this.buffer.length === 0 ? chunk : Buffer.concat([this.buffer, chunk])
  }

  /**
   * The next whole frame, consumed from the buffer (a view of it: use it before the next push), or `incomplete`,
   * or `invalid` (the buffer is left as it was; the stream should be closed). `options` says how to read channel
   * numbers (a TURN server's legacy range).
   */
  next (options?: ChannelDataOptions): StreamFrame {
    if (this.buffer.length === 0) return { kind: 'incomplete' }
    const first = classifyPacket(this.buffer.subarray(0, 1), options)
    if (first !== 'stun' && (first !== 'channel-data' || this.accepts === 'stun')) {
      return { kind: 'invalid', reason: `first byte 0x${this.buffer[0].toString(16)} starts neither STUN nor ChannelData` }
    }
    const frame = readStreamFrame(this.buffer, options)
    if (frame.kind === 'stun' || frame.kind === 'channel-data') this.buffer = this.buffer.subarray(frame.length)
    return frame
  }

  /** Bytes buffered and not yet framed. */
  get buffered (): number { return this.buffer.length }

  /** Hand over the bytes buffered and not yet framed, and forget them (e.g. an RFC 6062 data connection's). */
  take (): Buffer {
    const rest = this.buffer
    this.buffer = Buffer.alloc(0)
    return rest
  }
}
