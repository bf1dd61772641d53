/**
 * HMAC-SHA1 (RFC 2104 over FIPS 180-4 SHA-1) with the key's inner and outer states precomputed, in plain
 * TypeScript. Why not `node:crypto`: every createHmac/createHash call costs about 1 µs of object setup, which is most
 * of the work for a 60-byte STUN message — MESSAGE-INTEGRITY on every request and response would cap the codec well
 * below the 300 k messages/s target. A keyed STUN HMAC here is two SHA-1 compressions (~0.4 µs). Its output is
 * checked against node:crypto for random keys and lengths in test/unit/stun/credentials.test.ts and the fuzz suite.
 */

const W = new Int32Array(80)

/** One SHA-1 compression of the 64-byte block at `block[offset..]` into `state`. */
function compress (state: Int32Array, block: Uint8Array, offset: number): void {
  for (let i = 0; i < 16; i++) {
    const o = offset + i * 4
    W[i] = (block[o] << 24) | (block[o + 1] << 16) | (block[o + 2] << 8) | block[o + 3]
  }
  for (let i = 16; i < 80; i++) {
    const x = W[i - 3] ^ W[i - 8] ^ W[i - 14] ^ W[i - 16]
    W[i] = (x << 1) | (x >>> 31)
  }
  let a = state[0]; let b = state[1]; let c = state[2]; let d = state[3]; let e = state[4]
  // The four 20-round stages, each with its own function and constant (FIPS 180-4 §4.1.1, §4.2.1).
  let i = 0
  for (; i < 20; i++) {
    const t = (((a << 5) | (a >>> 27)) + ((b & c) | (~b & d)) + e + 0x5a827999 + W[i]) | 0
    e = d; d = c; c = (b << 30) | (b >>> 2); b = a; a = t
  }
  for (; i < 40; i++) {
    const t = (((a << 5) | (a >>> 27)) + (b ^ c ^ d) + e + 0x6ed9eba1 + W[i]) | 0
    e = d; d = c; c = (b << 30) | (b >>> 2); b = a; a = t
  }
  for (; i < 60; i++) {
    const t = (((a << 5) | (a >>> 27)) + ((b & c) | (b & d) | (c & d)) + e - 0x70e44324 + W[i]) | 0
    e = d; d = c; c = (b << 30) | (b >>> 2); b = a; a = t
  }
  for (; i < 80; i++) {
    const t = (((a << 5) | (a >>> 27)) + (b ^ c ^ d) + e - 0x359d3e2a + W[i]) | 0
    e = d; d = c; c = (b << 30) | (b >>> 2); b = a; a = t
  }
  state[0] = (state[0] + a) | 0; state[1] = (state[1] + b) | 0; state[2] = (state[2] + c) | 0
  state[3] = (state[3] + d) | 0; state[4] = (state[4] + e) | 0
}

const IV = Int32Array.of(0x67452301, 0xefcdab89 | 0, 0x98badcfe | 0, 0x10325476, 0xc3d2e1f0 | 0)

/** Streaming SHA-1 continuation from a saved state (used for the inner and outer HMAC hashes). */
class Sha1Stream {
  readonly state = new Int32Array(5)
  private readonly block = new Uint8Array(64)
  private fill = 0
  private length = 0

  reset (from: Int32Array, alreadyHashed: number): this {
    this.state.set(from); this.fill = 0; this.length = alreadyHashed
    return this
  }

  update (data: Uint8Array, start = 0, end = data.length): this {
    this.length += end - start
    let i = start
    if (this.fill > 0) {
      while (i < end && this.fill < 64) this.block[this.fill++] = data[i++]
      if (this.fill < 64) return this
      compress(this.state, this.block, 0); this.fill = 0
    }
    for (; i + 64 <= end; i += 64) compress(this.state, data, i)
    while (i < end) this.block[this.fill++] = data[i++]
    return this
  }

  /** Pad, finish, and write the 20-byte digest into `out` at `offset`. */
  digestInto (out: Uint8Array, offset: number): void {
    const bits = this.length * 8
    this.block[this.fill++] = 0x80
    if (this.fill > 56) { this.block.fill(0, this.fill); compress(this.state, this.block, 0); this.fill = 0 }
    this.block.fill(0, this.fill, 56)
    const hi = Math.floor(bits / 0x100000000)
    this.block[56] = hi >>> 24; this.block[57] = hi >>> 16; this.block[58] = hi >>> 8; this.block[59] = hi
    this.block[60] = bits >>> 24; this.block[61] = bits >>> 16; this.block[62] = bits >>> 8; this.block[63] = bits
    compress(this.state, this.block, 0)
    for (let i = 0; i < 5; i++) {
      const w = this.state[i]
      out[offset + i * 4] = w >>> 24; out[offset + i * 4 + 1] = w >>> 16; out[offset + i * 4 + 2] = w >>> 8; out[offset + i * 4 + 3] = w
    }
  }
}

const stream = new Sha1Stream()
const innerDigest = new Uint8Array(20)

/** An HMAC-SHA1 key with its ipad/opad states precomputed. */
export class Sha1HmacKey {
  private readonly inner = new Int32Array(5)
  private readonly outer = new Int32Array(5)

  constructor (key: Uint8Array) {
    let k = key
    if (k.length > 64) {
      const d = new Uint8Array(20)
      stream.reset(IV, 0).update(k).digestInto(d, 0)
      k = d
    }
    const pad = new Uint8Array(64)
    for (let i = 0; i < 64; i++) pad[i] = (i < k.length ? k[i] : 0) ^ 0x36
    this.inner.set(IV); compress(this.inner, pad, 0)
    for (let i = 0; i < 64; i++) pad[i] = (i < k.length ? k[i] : 0) ^ 0x5c
    this.outer.set(IV); compress(this.outer, pad, 0)
  }

  /** HMAC-SHA1 over the concatenation of `parts`, as a new 20-byte Buffer. */
  digest (...parts: Uint8Array[]): Buffer {
    stream.reset(this.inner, 64)
    for (const p of parts) stream.update(p)
    stream.digestInto(innerDigest, 0)
    const out = Buffer.allocUnsafe(20)
    stream.reset(this.outer, 64).update(innerDigest).digestInto(out, 0)
    return out
  }
}
