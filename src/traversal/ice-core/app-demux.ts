import { HEADER_LENGTH, MAGIC_COOKIE } from '../../stun/index.js'

/** What the agent does with a datagram that is not a response to one of its own STUN transactions. */
export type IceDatagramKind = 'stun' | 'app' | 'ignore'

/**
 * Whether a datagram is a STUN message by RFC 7983 §7 and RFC 8489 §5: first byte 0-3 (the two leading zero bits
 * and the class bits), the magic cookie, and a length field that matches the datagram exactly, as a whole multiple of 4.
 */
export function isStunDatagram (data: Uint8Array): boolean {
  if (data.length < HEADER_LENGTH || data[0] > 3) return false
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength)
  const length = view.getUint16(2)
  return view.getUint32(4) === MAGIC_COOKIE && length % 4 === 0 && length + HEADER_LENGTH === data.length
}

/**
 * Demultiplex a datagram on an ICE base (RFC 7983 §7; RFC 8445 §11: "anything that is not STUN is the
 * application's"). STUN goes to the agent (check requests, indications). Everything else — RTP/RTCP (128-191), DTLS
 * (20-63), ChannelData-shaped bytes (64-79) and any other first byte — is application data when it comes from a
 * remote candidate the agent knows (signalled or peer-reflexive), and is ignored from anywhere else. The bytes are
 * handed over as received: natkit adds no framing of its own.
 */
export function classifyIceDatagram (data: Uint8Array, fromKnownRemote: boolean): IceDatagramKind {
  if (data.length === 0) return 'ignore'
  if (isStunDatagram(data)) return 'stun'
  return fromKnownRemote ? 'app' : 'ignore'
}
