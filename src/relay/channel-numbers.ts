import { HEADER_LENGTH, readStreamFrame, type StreamFrame } from '../stun/index.js'

/**
 * Channel numbers as the relay accepts them. RFC 8656 §12 allows 0x4000-0x4FFF; RFC 5766 §11 allowed
 * 0x4000-0x7FFF, and RFC 5766 clients still in use (coturn's turnutils_uclient, older libjingle/pjnath) pick
 * numbers up to 0x7FFF. With `legacy` (the default of TurnServerCoreOptions.legacyChannels) the relay accepts the
 * RFC 5766 range, as coturn does. The shared codec (src/stun/channel-data.ts, demux.ts) is RFC 8656-strict, so
 * the relay frames and encodes ChannelData itself.
 */

/** Highest channel number under RFC 5766. */
export const LEGACY_CHANNEL_MAX = 0x7fff

/** Whether `n` is a bindable channel number (0x4000-0x4FFF, or up to 0x7FFF with `legacy`). */
export function isBindableChannel (n: number, legacy: boolean): boolean {
  return Number.isInteger(n) && n >= 0x4000 && n <= (legacy ? LEGACY_CHANNEL_MAX : 0x4fff)
}

/** Whether a packet starts like ChannelData (first two bits 01). */
export function looksLikeChannelData (bytes: Uint8Array): boolean {
  return bytes.length > 0 && (bytes[0] & 0xc0) === 0x40
}

/** Encode ChannelData for any 0x4000-0x7FFF channel, padded to 4 bytes over streams (RFC 8656 §12.5). */
export function encodeRelayChannelData (channel: number, data: Uint8Array, pad: boolean): Buffer {
  const padded = pad ? (data.length + 3) & ~3 : data.length
  const out = Buffer.allocUnsafe(4 + padded)
  out.writeUInt16BE(channel, 0)
  out.writeUInt16BE(data.length, 2)
  out.set(data, 4)
  out.fill(0, 4 + data.length)
  return out
}

/**
 * Cut the next frame from a TCP/TLS stream: STUN (by its length field) or ChannelData with any channel number
 * 0x4000-0x7FFF (padded to 4 bytes, RFC 8656 §12.5).
 */
export function readRelayStreamFrame (buffer: Buffer): StreamFrame {
  if (buffer.length >= 4 && looksLikeChannelData(buffer)) {
    const declared = buffer.readUInt16BE(2)
    const total = 4 + ((declared + 3) & ~3)
    if (buffer.length < total) return { kind: 'incomplete' }
    return { kind: 'channel-data', frame: buffer.subarray(0, 4 + declared), length: total }
  }
  if (buffer.length >= 1 && buffer[0] > 3 && buffer.length < HEADER_LENGTH) {
    return { kind: 'invalid', reason: `first byte 0x${buffer[0].toString(16)} starts neither STUN nor ChannelData` }
  }
  return readStreamFrame(buffer)
}
