import type { ChannelDataOptions } from './channel-data.js'
import { HEADER_LENGTH } from './constants.js'

/** What a packet on a shared socket is, by its first byte (RFC 7983 §7, RFC 8656 §12). */
export type PacketKind = 'stun' | 'channel-data' | 'dtls' | 'rtp' | 'other'

/**
 * Classify a packet by its first byte: 0-3 STUN, 20-63 DTLS, 64-79 TURN ChannelData, 128-191 RTP/RTCP. With
 * `legacyChannels` (a TURN server serving RFC 5766 clients), 64-127 is ChannelData: channels 0x4000-0x7FFF.
 */
export function classifyPacket (bytes: Uint8Array, options?: ChannelDataOptions): PacketKind {
  if (bytes.length === 0) return 'other'
  const b = bytes[0]
  if (b <= 3) return 'stun'
  if (b >= 64 && (b <= 79 || (b <= 127 && options?.legacyChannels === true))) return 'channel-data'
  if (b >= 20 && b <= 63) return 'dtls'
  if (b >= 128 && b <= 191) return 'rtp'
  return 'other'
}

/** Result of reading one frame from a stream buffer. */
export type StreamFrame =
  | { kind: 'stun' | 'channel-data', frame: Buffer, length: number }
  | { kind: 'incomplete' }
  | { kind: 'invalid', reason: string }

/** The largest frame a stream may carry: a 20-byte header plus a 16-bit length. */
const MAX_FRAME = HEADER_LENGTH + 0xffff

/**
 * Cut the next STUN or ChannelData frame from the start of `buffer` (RFC 8656 §12.5: over TCP/TLS, ChannelData is
 * padded to 4 bytes, and STUN messages are self-delimiting by their length field). `length` is how many bytes the
 * frame takes, padding included. `legacyChannels` also cuts ChannelData with RFC 5766 channel numbers (first byte
 * 64-127).
 */
export function readStreamFrame (buffer: Buffer, options?: ChannelDataOptions): StreamFrame {
  if (buffer.length < 4) return { kind: 'incomplete' }
  const kind = classifyPacket(buffer, options)
  const declared = buffer.readUInt16BE(2)
  if (kind === 'stun') {
    if ((declared & 3) !== 0) return { kind: 'invalid', reason: `STUN length ${declared} is not a multiple of 4` }
    const total = HEADER_LENGTH + declared
    if (buffer.length < total) return total > MAX_FRAME ? { kind: 'invalid', reason: 'frame too long' } : { kind: 'incomplete' }
    return { kind, frame: buffer.subarray(0, total), length: total }
  }
  if (kind === 'channel-data') {
    const total = 4 + ((declared + 3) & ~3)
    if (buffer.length < total) return { kind: 'incomplete' }
    return { kind, frame: buffer.subarray(0, 4 + declared), length: total }
  }
  return { kind: 'invalid', reason: `first byte 0x${buffer[0].toString(16)} starts neither STUN nor ChannelData` }
}
