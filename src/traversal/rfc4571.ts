import { InvalidArgumentError, TransportError } from '../errors.js'

/** Largest frame RFC 4571 §2 can carry: the LENGTH field is 16 bits. */
export const RFC4571_MAX_FRAME = 0xffff

/**
 * Frame one packet for a connection-oriented transport (RFC 4571 §2, which RFC 6544 §3 uses for every STUN and
 * application packet on an ICE-TCP connection): a 16-bit big-endian LENGTH, then the packet.
 * @throws InvalidArgumentError for a packet over 65535 bytes.
 */
export function frameRfc4571 (packet: Uint8Array): Buffer {
  if (packet.length > RFC4571_MAX_FRAME) throw new InvalidArgumentError(`an RFC 4571 frame carries at most ${RFC4571_MAX_FRAME} bytes; got ${packet.length}`)
  const out = Buffer.allocUnsafe(2 + packet.length)
  out.writeUInt16BE(packet.length, 0)
  out.set(packet, 2)
  return out
}

/**
 * The receiving side of RFC 4571 framing: bytes in as the stream delivers them, whole packets out. A zero-length
 * frame is legal (§2) and is passed on as an empty packet. Never more than one maximum frame plus one chunk is
 * buffered.
 */
export class Rfc4571Decoder {
  private buffer: Buffer = Buffer.alloc(0)

  /**
   * Append bytes and return the packets now complete (copies: they outlive the next push). Never throws for any
   * input: a length prefix cannot be malformed, only incomplete.
   */
  push (chunk: Uint8Array): Buffer[] {
    const bytes = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength)
    this.buffer = this.buffer.length === 0 ? bytes : Buffer.concat([this.buffer, bytes])
    const out: Buffer[] = []
    let at = 0
    while (this.buffer.length - at >= 2) {
      const length = this.buffer.readUInt16BE(at)
      if (this.buffer.length - at - 2 < length) break
      out.push(Buffer.from(this.buffer.subarray(at + 2, at + 2 + length)))
      at += 2 + length
    }
    this.buffer = at === 0 ? this.buffer : Buffer.from(this.buffer.subarray(at))
    return out
  }

  /** Bytes of an incomplete frame held back. */
  get buffered (): number { return this.buffer.length }

  /** Throws TransportError when the stream ended inside a frame (call on the stream's end). */
  end (): void {
    if (this.buffer.length > 0) throw new TransportError(`the stream ended inside an RFC 4571 frame (${this.buffer.length} bytes held)`)
  }
}
