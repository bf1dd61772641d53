import { InvalidArgumentError, StunDecodeError } from '../errors.js'

/** ChannelData messages (RFC 8656 §12.4): a 4-byte header (channel number, length) then the application data. */

/** First and last channel numbers a client may bind (RFC 8656 §12). */
export const CHANNEL_MIN = 0x4000
export const CHANNEL_MAX = 0x4fff

/** Whether a number is a bindable channel number. */
export function isValidChannel (channel: number): boolean {
  return Number.isInteger(channel) && channel >= CHANNEL_MIN && channel <= CHANNEL_MAX
}

/**
 * Encode a ChannelData message. Over TCP/TLS the message is padded to a multiple of 4 bytes (RFC 8656 §12.5);
 * over UDP padding is optional and natkit sends none.
 */
export function encodeChannelData (channel: number, data: Uint8Array, options?: { pad?: boolean }): Buffer {
  if (!isValidChannel(channel)) throw new InvalidArgumentError(`channel 0x${channel.toString(16)} is outside 0x4000-0x4FFF`)
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

/** Decode a ChannelData message (trailing padding allowed). Throws StunDecodeError when malformed. */
export function decodeChannelData (bytes: Uint8Array): ChannelData {
  if (bytes.length < 4) throw new StunDecodeError('ChannelData', `${bytes.length} bytes is shorter than the 4-byte header`)
  const channel = (bytes[0] << 8) | bytes[1]
  if ((bytes[0] & 0xc0) !== 0x40) throw new StunDecodeError('ChannelData', `0x${channel.toString(16)} is not a channel number`)
  const length = (bytes[2] << 8) | bytes[3]
  if (4 + length > bytes.length) throw new StunDecodeError('ChannelData', `length ${length} overruns the ${bytes.length - 4} bytes present`)
  if (bytes.length - 4 - length > 3) throw new StunDecodeError('ChannelData', `${bytes.length - 4 - length} trailing bytes is more than padding`)
  return { channel, data: bytes.subarray(4, 4 + length) }
}
