import { StunDecodeError } from '../../errors.js'

/** What an attribute codec may need from its message: the transaction id (for the XOR address forms). */
export interface CodecContext {
  readonly transactionId: Uint8Array
}

/**
 * A typed codec for one STUN attribute: its IANA type and name, and how its value maps to a TypeScript value.
 * `decode` receives the value bytes (without header or padding) and throws StunDecodeError when they are malformed.
 */
export interface AttributeCodec<T> {
  readonly type: number
  readonly name: string
  encode (value: T, ctx: CodecContext): Uint8Array
  decode (value: Uint8Array, ctx: CodecContext): T
}

/** Throw a StunDecodeError naming the attribute unless `ok`. */
export function check (ok: boolean, name: string, detail: string): asserts ok {
  if (!ok) throw new StunDecodeError(`attribute ${name}`, detail)
}

/** A Buffer view over the same memory (no copy). */
export function view (bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
}
