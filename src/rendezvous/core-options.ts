import { randomBytes } from 'node:crypto'
import { InvalidArgumentError } from '../errors.js'
import { DEFAULT_MAX_TOKEN_AHEAD_S, DEFAULT_TOKEN_SKEW_S } from './token.js'

/** Per-peer rate limit: two token buckets, one on frames, one on bytes (both must have tokens). */
export interface RendezvousRateLimit {
  /** Frames per second a registered peer may send (default 50). */
  readonly messagesPerSecond?: number
  /** Frames a peer may send at once after being idle (default 100). */
  readonly messageBurst?: number
  /** Bytes per second (default 256 KiB). */
  readonly bytesPerSecond?: number
  /** Byte burst (default 1 MiB; at least maxMessageBytes). */
  readonly byteBurst?: number
}

/** Options for RendezvousCore (and RendezvousServer). Times in milliseconds. */
export interface RendezvousCoreOptions {
  /**
   * Shared secret(s) for tokens (`EXPIRY:MAC`, see rendezvousToken), the same as the TURN relay's `--auth-secret`.
   * Several are accepted for rotation. Required unless `open` is true.
   */
  readonly authSecret?: string | readonly string[]
  /** Accept any `register` without checking the token (tests, demos). Default false: a secret is required. */
  readonly open?: boolean
  /**
   * This server's name among several rendezvous nodes that share peers through a RendezvousRemote (default: random).
   * It breaks ties when one id registers at two nodes in the same millisecond.
   */
  readonly node?: string
  /**
   * This core shares peers with other nodes through a RendezvousRemote that can move sessions (RendezvousServer sets
   * it when its `remote` has requestSession and handOver): a `resume` of a session this node does not hold is asked
   * of the other nodes, and the one holding it hands it over. Default false.
   */
  readonly cluster?: boolean
  /**
   * How long a `resume` of a session held elsewhere waits for the node holding it (default 1500 ms). With no answer
   * within it (that node is gone, or no node has the session) the id gets a fresh session (`resumed: false`).
   */
  readonly handoverTimeoutMs?: number
  /** How long a message waits in an offline peer's queue (default 30000). */
  readonly queueTtlMs?: number
  /** How long a dropped session can be resumed with `resume` (default queueTtlMs). */
  readonly sessionTtlMs?: number
  /** Largest client frame in bytes (default 65536); bigger frames get `too_large`. */
  readonly maxMessageBytes?: number
  /** Most messages queued for one offline peer (default 256; 0 disables queueing). */
  readonly maxQueuedPerPeer?: number
  /**
   * Most bytes queued for one offline peer (default 1 MiB). Queue and resume-buffer bytes are heap bytes as the
   * server holds them (see heldSize: the message's JSON text at 2 bytes a character plus a fixed overhead), not
   * wire bytes, so a frame of many tiny JSON values costs what it really costs.
   */
  readonly maxQueuedBytesPerPeer?: number
  /** Most bytes held in all queues and resume buffers together (default 64 MiB). */
  readonly maxBufferedBytes?: number
  /** Most bytes one sender may hold in all offline queues together (default 4 MiB). */
  readonly maxQueuedBytesPerSender?: number
  /**
   * Messages to an id the server does not know (no session: never registered, or gone longer than sessionTtlMs)
   * are queued, so a peer that registers a little later still gets its offer, but at most this many per sender
   * (default 32); beyond, `unknown_recipient`.
   */
  readonly maxUnknownQueuedPerSender?: number
  /** Most bytes one sender may hold queued for unknown ids (default 256 KiB: at least one largest frame). */
  readonly maxUnknownQueuedBytesPerSender?: number
  /** Most offline ids with a queue at once (default 10000). */
  readonly maxQueuedRecipients?: number
  /** Delivered messages kept per session to replay after an abrupt reconnect (default 64 messages, 256 KiB). */
  readonly replayMessages?: number
  readonly replayBytes?: number
  /** Per-peer rate limit, or false for none. */
  readonly rateLimit?: RendezvousRateLimit | false
  /** Most sessions (online or resumable) at once (default 10000); beyond, `server_full`. */
  readonly maxPeers?: number
  /** Most connections that have not registered yet (default 1000); beyond, new ones are closed. */
  readonly maxPending?: number
  /**
   * Most unregistered connections from one source (an IPv4 address or an IPv6 /64; default 32); beyond, new ones
   * from that source are closed with `server_full`. Keeps one host from taking all of maxPending.
   */
  readonly maxPendingPerIp?: number
  /** A connection that does not register within this is closed with `register_timeout` (default 5000). */
  readonly registerTimeoutMs?: number
  /** Frames a connection may send before registering (default 8); beyond, `not_registered` and closed. */
  readonly maxPendingFrames?: number
  /** Most ids one peer may watch (default 256). */
  readonly maxWatch?: number
  /** Seconds of clock skew allowed around a token's expiry (default 30). */
  readonly tokenSkewS?: number
  /** Furthest ahead a token's expiry may be, in seconds (default 86400 = 24 h); beyond, `unauthorized`. */
  readonly maxTokenAheadS?: number
}

/** Options with every default applied. */
export interface ResolvedRendezvousOptions {
  readonly secrets: readonly string[]
  readonly open: boolean
  readonly node: string
  readonly cluster: boolean
  readonly handoverTimeoutMs: number
  readonly queueTtlMs: number
  readonly sessionTtlMs: number
  readonly maxMessageBytes: number
  readonly maxQueuedPerPeer: number
  readonly maxQueuedBytesPerPeer: number
  readonly maxBufferedBytes: number
  readonly maxQueuedBytesPerSender: number
  readonly maxUnknownQueuedPerSender: number
  readonly maxUnknownQueuedBytesPerSender: number
  readonly maxQueuedRecipients: number
  readonly replayMessages: number
  readonly replayBytes: number
  readonly rateLimit: Required<RendezvousRateLimit> | false
  readonly maxPeers: number
  readonly maxPending: number
  readonly maxPendingPerIp: number
  readonly registerTimeoutMs: number
  readonly maxPendingFrames: number
  readonly maxWatch: number
  readonly tokenSkewS: number
  readonly maxTokenAheadS: number
}

function num (name: string, value: number | undefined, fallback: number, min = 0): number {
  if (value === undefined) return fallback
  if (typeof value !== 'number' || !Number.isFinite(value) || value < min) {
    throw new InvalidArgumentError(`rendezvous option ${name} must be a number >= ${min}, got ${String(value)}`)
  }
  return value
}

/** Validate options and apply defaults. Throws InvalidArgumentError saying how to fix a bad option. */
export function resolveRendezvousOptions (o: RendezvousCoreOptions): ResolvedRendezvousOptions {
  const s = o.authSecret
  const secrets = s === undefined ? [] : typeof s === 'string' ? [s] : [...s]
  if (secrets.some(x => typeof x !== 'string' || x === '')) throw new InvalidArgumentError('rendezvous authSecret must be non-empty strings')
  const open = o.open === true
  if (!open && secrets.length === 0) {
    throw new InvalidArgumentError('the rendezvous server needs authSecret (tokens from rendezvousToken), or open: true to accept anyone')
  }
  const queueTtlMs = num('queueTtlMs', o.queueTtlMs, 30_000)
  const maxMessageBytes = num('maxMessageBytes', o.maxMessageBytes, 65_536, 256)
  const rl = o.rateLimit
  const rateLimit = rl === false
    ? false
    : {
        messagesPerSecond: num('rateLimit.messagesPerSecond', rl?.messagesPerSecond, 50, 0.001),
        messageBurst: num('rateLimit.messageBurst', rl?.messageBurst, 100, 1),
        bytesPerSecond: num('rateLimit.bytesPerSecond', rl?.bytesPerSecond, 256 * 1024, 1),
        byteBurst: Math.max(maxMessageBytes, num('rateLimit.byteBurst', rl?.byteBurst, 1024 * 1024, 1))
      }
  if (o.node !== undefined && (typeof o.node !== 'string' || o.node === '')) throw new InvalidArgumentError('rendezvous option node must be a non-empty string')
  return {
    secrets,
    open,
    node: o.node ?? randomBytes(9).toString('base64url'),
    cluster: o.cluster === true,
    handoverTimeoutMs: num('handoverTimeoutMs', o.handoverTimeoutMs, 1500, 1),
    queueTtlMs,
    sessionTtlMs: num('sessionTtlMs', o.sessionTtlMs, queueTtlMs),
    maxMessageBytes,
    maxQueuedPerPeer: num('maxQueuedPerPeer', o.maxQueuedPerPeer, 256),
    maxQueuedBytesPerPeer: num('maxQueuedBytesPerPeer', o.maxQueuedBytesPerPeer, 1024 * 1024),
    maxBufferedBytes: num('maxBufferedBytes', o.maxBufferedBytes, 64 * 1024 * 1024),
    maxQueuedBytesPerSender: num('maxQueuedBytesPerSender', o.maxQueuedBytesPerSender, 4 * 1024 * 1024),
    maxUnknownQueuedPerSender: num('maxUnknownQueuedPerSender', o.maxUnknownQueuedPerSender, 32),
    maxUnknownQueuedBytesPerSender: num('maxUnknownQueuedBytesPerSender', o.maxUnknownQueuedBytesPerSender, 256 * 1024),
    maxQueuedRecipients: num('maxQueuedRecipients', o.maxQueuedRecipients, 10_000),
    replayMessages: num('replayMessages', o.replayMessages, 64),
    replayBytes: num('replayBytes', o.replayBytes, 256 * 1024),
    rateLimit,
    maxPeers: num('maxPeers', o.maxPeers, 10_000, 1),
    maxPending: num('maxPending', o.maxPending, 1000, 1),
    maxPendingPerIp: num('maxPendingPerIp', o.maxPendingPerIp, 32, 1),
    registerTimeoutMs: num('registerTimeoutMs', o.registerTimeoutMs, 5000, 1),
    maxPendingFrames: num('maxPendingFrames', o.maxPendingFrames, 8, 1),
    maxWatch: num('maxWatch', o.maxWatch, 256, 1),
    tokenSkewS: num('tokenSkewS', o.tokenSkewS, DEFAULT_TOKEN_SKEW_S),
    maxTokenAheadS: num('maxTokenAheadS', o.maxTokenAheadS, DEFAULT_MAX_TOKEN_AHEAD_S, 1)
  }
}
