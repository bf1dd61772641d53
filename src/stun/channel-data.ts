import { InvalidArgumentError, StunDecodeError } from '../errors.js'

/** ChannelData messages (RFC 8656 §12.4): a 4-byte header (channel number, length) then the application data. */

/** First and last channel numbers a client may bind (RFC 8656 §12). */
export const CHANNEL_MIN = 0x4000
export const CHANNEL_MAX = 0x4fff
/**
 * Last channel number of RFC 5766 §11 (0x4000-0x7FFF). RFC 8656 narrowed the range to 0x4000-0x4FFF, but RFC 5766
 * clients still in use (coturn's turnutils_uclient, older libjingle/pjnath) bind numbers up to 0x7FFF, so a server
 * may accept them (`{ legacyChannels: true }`). natkit's own client only binds the RFC 8656 range.
 */
export const LEGACY_CHANNEL_MAX = 0x7fff

/** Options of the ChannelData codec functions. */
export interface ChannelDataOptions {
  /** Accept RFC 5766 channel numbers 0x4000-0x7FFF (first byte 64-127), not only RFC 8656's 0x4000-0x4FFF. */
  readonly legacyChannels?: boolean
}

/** Whether a number is a channel number natkit's client may bind (RFC 8656 §12: 0x4000-0x4FFF). */
export function isValidChannel (channel: number): boolean {
  return Number.isInteger(channel) && channel >= CHANNEL_MIN && channel <= CHANNEL_MAX
}

/** Whether a number is a channel number a server accepts: RFC 8656's range, or RFC 5766's with `legacyChannels`. */
export function isAcceptedChannel (channel: number, options?: ChannelDataOptions): boolean {
  return Number.isInteger(channel) && channel >= CHANNEL_MIN && channel <= (options?.legacyChannels === true ? LEGACY_CHANNEL_MAX : CHANNEL_MAX)
}

/**
 * Encode a ChannelData message. Over TCP/TLS the message is padded to a multiple of 4 bytes (RFC 8656 §12.5);
 * over UDP padding is optional and natkit sends none. `legacyChannels` allows channels up to 0x7FFF (a server
 * answering an RFC 5766 client on the channel it bound).
 */
export function encodeChannelData (channel: number, data: Uint8Array, options?: { pad?: boolean } & ChannelDataOptions): Buffer {
  if (!isAcceptedChannel(channel, options)) {
    throw new InvalidArgumentError(`channel 0x${channel.toString(16)} is outside 0x4000-0x${(options?.legacyChannels === true ? LEGACY_CHANNEL_MAX : CHANNEL_MAX).toString(16).toUpperCase()}`)
  }
  if (data.length > 0xffff) throw new InvalidArgumentError(`ChannelData payload of ${data.length} bytes exceeds 65535`)
  const padded = options?.pad === true ? (data.length + 3) & ~3 : data.length
  const out = Buffer.allocUnsafe(4 + padded)
  out.writeUInt16BE(channel, 0)
  out.writeUInt16BE(data.length, 2)
  out.set(data, 4)
  out.fill(0, 4 + data.length)
  return out
}

/** A decoded ChannelData message; `data` is a view into the input. */
export interface ChannelData {
  readonly channel: number
  readonly data: Uint8Array
}

/**
 * Decode a ChannelData message (trailing padding allowed). Throws StunDecodeError when malformed, or when the
 * channel number is outside 0x4000-0x4FFF (0x4000-0x7FFF with `legacyChannels`).
 */
export function decodeChannelData (bytes: Uint8Array, options?: ChannelDataOptions): ChannelData {
  if (bytes.length < 4) throw new StunDecodeError('ChannelData', `${bytes.length} bytes is shorter than the 4-byte header`)
  const channel = (bytes[0] << 8) | bytes[1]
  if (!isAcceptedChannel(channel, options)) throw new StunDecodeError('ChannelData', `0x${channel.toString(16)} is not a channel number`)
  const length = (bytes[2] << 8) | bytes[3]
  if (4 + length > bytes.length) throw new StunDecodeError('ChannelData', `length ${length} overruns the ${bytes.length - 4} bytes present`)
  if (bytes.length - 4 - length > 3) throw new StunDecodeError('ChannelData', `${bytes.length - 4 - length} trailing bytes is more than padding`)
  return { channel, data: bytes.subarray(4, 4 + length) }
}
