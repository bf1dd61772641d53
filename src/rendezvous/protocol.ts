/**
 * The rendezvous wire protocol: JSON text frames over a WebSocket at `ws://HOST:PORT/` (docs/rendezvous.md).
 * Types of every frame, the error and close codes, and the validation of client frames. No I/O here.
 */

/** The WebSocket sub-path the server answers on by default. */
export const RENDEZVOUS_PATH = '/'

/** Longest peer id in characters. Ids are 1–128 characters, no control characters. */
export const MAX_ID_LENGTH = 128

/**
 * Wire error codes, sent as `{ "type": "error", "code", "message", "ref"? }`. The ones in RENDEZVOUS_FATAL_CODES are
 * followed by the server closing the connection.
 */
export const RENDEZVOUS_ERROR_CODES = [
  'bad_json', // the frame is not JSON text (or is a binary frame)
  'unknown_type', // `type` is not one this server knows
  'invalid_field', // a required field is missing or has the wrong type or range
  'too_large', // the frame is over maxMessageBytes
  'rate_limited', // the peer's message or byte token bucket is empty; the frame was dropped
  'not_registered', // the first frame was not `register` (fatal)
  'already_registered', // `register` on a connection that is already registered
  'queue_full', // the recipient is offline and its queue (or the sender's share, or the server's total) is full; the message was dropped
  'unknown_recipient', // the recipient has no session and the sender already holds its share of messages queued for unknown ids
  'limit_exceeded', // too many watched ids
  'unauthorized', // bad token: malformed or wrong MAC (fatal)
  'expired', // the token's expiry has passed (fatal)
  'replaced', // another connection registered the same id (fatal, sent to the old connection)
  'server_full', // maxPeers sessions exist (fatal)
  'register_timeout', // no `register` within registerTimeoutMs (fatal)
  'shutting_down' // the server is closing (fatal)
] as const

/** A wire error code. */
export type RendezvousErrorCode = typeof RENDEZVOUS_ERROR_CODES[number]

/** Error codes after which the server closes the connection. */
export const RENDEZVOUS_FATAL_CODES: ReadonlySet<RendezvousErrorCode> = new Set([
  'not_registered', 'unauthorized', 'expired', 'replaced', 'server_full', 'register_timeout', 'shutting_down'
])

/** WebSocket close codes the server uses (4000–4999 are private-use, RFC 6455 §7.4.2). */
export const RENDEZVOUS_CLOSE_CODES = {
  GOING_AWAY: 1001, // server shutting down
  POLICY: 1008, // generic policy violation
  TOO_BIG: 1009, // frame over the hard ws maxPayload
  UNAUTHORIZED: 4001,
  EXPIRED: 4002,
  REPLACED: 4003,
  REGISTER_TIMEOUT: 4004,
  SERVER_FULL: 4005,
  NOT_REGISTERED: 4006,
  SLOW_CONSUMER: 4007 // the client does not read and the server's write buffer for it is full
} as const

/** The close code that goes with a fatal error code. */
export function closeCodeFor (code: RendezvousErrorCode): number {
  switch (code) {
    case 'unauthorized': return RENDEZVOUS_CLOSE_CODES.UNAUTHORIZED
    case 'expired': return RENDEZVOUS_CLOSE_CODES.EXPIRED
    case 'replaced': return RENDEZVOUS_CLOSE_CODES.REPLACED
    case 'register_timeout': return RENDEZVOUS_CLOSE_CODES.REGISTER_TIMEOUT
    case 'server_full': return RENDEZVOUS_CLOSE_CODES.SERVER_FULL
    case 'not_registered': return RENDEZVOUS_CLOSE_CODES.NOT_REGISTERED
    case 'shutting_down': return RENDEZVOUS_CLOSE_CODES.GOING_AWAY
    default: return RENDEZVOUS_CLOSE_CODES.POLICY
  }
}

/** An address as the server saw it. Port 0 means unknown (behind a proxy). */
export interface ObservedAddress {
  readonly address: string
  readonly port: number
}

// ---- client → server ----

/** First frame: authenticate as `id`. `resume` continues an earlier session; `received` is its last `n` seen. */
export interface RegisterFrame { readonly type: 'register', readonly id: string, readonly token?: string, readonly resume?: string, readonly received?: number }
/** Relay `data` to peer `to`. `seq` (unique within the session) is echoed in the ack or error. */
export interface SendFrame { readonly type: 'send', readonly to: string, readonly data: unknown, readonly seq?: number }
/** Subscribe to presence changes of `ids`. */
export interface WatchFrame { readonly type: 'watch', readonly ids: readonly string[] }
/** Unsubscribe from presence changes of `ids`. */
export interface UnwatchFrame { readonly type: 'unwatch', readonly ids: readonly string[] }
/** Clock probe: answered by a pong echoing `t`. */
export interface PingFrame { readonly type: 'ping', readonly t: number }

/** Any frame a client sends. */
export type ClientFrame = RegisterFrame | SendFrame | WatchFrame | UnwatchFrame | PingFrame

// ---- server → client ----

/** Answer to register. `n` numbering of `message` frames restarts at 1 unless `resumed`. */
export interface RegisteredFrame {
  readonly type: 'registered'
  readonly id: string
  readonly session: string
  readonly resumed: boolean
  readonly observed: ObservedAddress
  readonly serverTime: number
}
/** A relayed message. `n` counts messages delivered in this session (1, 2, …); `seq` is the sender's. */
export interface MessageFrame { readonly type: 'message', readonly from: string, readonly data: unknown, readonly seq?: number, readonly n: number }
/** The message with this `seq` was delivered (`queued: false`) or queued for an offline peer (`queued: true`). */
export interface AckFrame { readonly type: 'ack', readonly seq: number, readonly queued: boolean }
/** Presence of a watched id. */
export interface PresenceFrame { readonly type: 'presence', readonly id: string, readonly online: boolean }
/** Answer to ping. */
export interface PongFrame { readonly type: 'pong', readonly t: number, readonly serverTime: number }
/** Something went wrong; `ref` is the `seq` of the frame at fault, if it had one. */
export interface ErrorFrame { readonly type: 'error', readonly code: RendezvousErrorCode, readonly message: string, readonly ref?: number }

/** Any frame the server sends. */
export type ServerFrame = RegisteredFrame | MessageFrame | AckFrame | PresenceFrame | PongFrame | ErrorFrame

// ---- validation ----

/** Result of parsing a client frame. */
export type ParseResult =
  | { readonly ok: true, readonly frame: ClientFrame }
  | { readonly ok: false, readonly code: RendezvousErrorCode, readonly message: string, readonly ref?: number }

/** Whether `id` is a valid peer id: a string of 1–128 characters without control characters. */
export function isValidPeerId (id: unknown): id is string {
  // eslint-disable-next-line no-control-regex
  return typeof id === 'string' && id.length > 0 && id.length <= MAX_ID_LENGTH && !/[\u0000-\u001f\u007f]/.test(id)
}

const isSeq = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0

/**
 * Parse and validate one client frame (already checked for size). Never throws: a bad frame gives
 * `{ ok: false, code, message, ref? }` with `ref` set when a valid `seq` could be read.
 */
export function parseClientFrame (text: string, maxWatch: number): ParseResult {
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch (err) {
    return { ok: false, code: 'bad_json', message: `not JSON: ${(err as Error).message}` }
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    return { ok: false, code: 'invalid_field', message: 'a frame must be a JSON object with a "type"' }
  }
  const o = value as Record<string, unknown>
  const ref = isSeq(o.seq) ? o.seq : undefined
  const bad = (message: string): ParseResult => ref === undefined ? { ok: false, code: 'invalid_field', message } : { ok: false, code: 'invalid_field', message, ref }
  if (typeof o.type !== 'string') return bad('"type" must be a string')
  switch (o.type) {
    case 'register': {
      if (!isValidPeerId(o.id)) return bad(`"id" must be a string of 1-${MAX_ID_LENGTH} characters without control characters`)
      if (o.token !== undefined && typeof o.token !== 'string') return bad('"token" must be a string')
      if (o.resume !== undefined && (typeof o.resume !== 'string' || o.resume.length > 64)) return bad('"resume" must be a session string')
      if (o.received !== undefined && !isSeq(o.received)) return bad('"received" must be a non-negative integer')
      return { ok: true, frame: { type: 'register', id: o.id, token: o.token as string | undefined, resume: o.resume as string | undefined, received: o.received as number | undefined } }
    }
    case 'send': {
      if (o.seq !== undefined && ref === undefined) return bad('"seq" must be a non-negative integer')
      if (!isValidPeerId(o.to)) return bad('"to" must be a peer id')
      if (!('data' in o) || o.data === undefined) return bad('"data" is required (any JSON value)')
      return { ok: true, frame: ref === undefined ? { type: 'send', to: o.to, data: o.data } : { type: 'send', to: o.to, data: o.data, seq: ref } }
    }
    case 'watch':
    case 'unwatch': {
      if (!Array.isArray(o.ids) || o.ids.length > maxWatch) return bad(`"ids" must be an array of at most ${maxWatch} peer ids`)
      for (const id of o.ids) if (!isValidPeerId(id)) return bad('"ids" must contain only peer ids')
      return { ok: true, frame: { type: o.type, ids: o.ids as string[] } }
    }
    case 'ping': {
      if (typeof o.t !== 'number' || !Number.isFinite(o.t)) return bad('"t" must be a finite number')
      return { ok: true, frame: { type: 'ping', t: o.t } }
    }
    default:
      return ref === undefined
        ? { ok: false, code: 'unknown_type', message: `unknown frame type ${JSON.stringify(o.type).slice(0, 80)}` }
        : { ok: false, code: 'unknown_type', message: `unknown frame type ${JSON.stringify(o.type).slice(0, 80)}`, ref }
  }
}
