import type { SprayAnnouncement } from './spray-plan.js'

/**
 * What the traversal engine needs from signalling: deliver small JSON messages to one peer and receive its messages.
 * The rendezvous client provides one (`rendezvousChannel`); apps with their own signalling (SIP offer/answer, a chat
 * server) implement these two functions over it.
 */
export interface SignalChannel {
  send (message: SignalMessage): void | Promise<void>
  /** Receive every message from the peer; returns a function that stops receiving. */
  subscribe (handler: (message: unknown) => void): () => void
}

/** Messages of natkit's connect handshake (all carry the session id `sid`). */
export type SignalMessage =
  | { t: 'natkit/offer', sid: string, ufrag: string, pwd: string, candidates: string[] }
  | { t: 'natkit/answer', sid: string, ufrag: string, pwd: string, candidates: string[] }
  | { t: 'natkit/ping', sid: string, n: number }
  | { t: 'natkit/pong', sid: string, n: number }
  | { t: 'natkit/go', sid: string, rttMs: number }
  | { t: 'natkit/candidate', sid: string, candidate: string }
  /** A trickled or offered candidate that stopped working (a relayed one whose allocation moved). */
  | { t: 'natkit/candidate-removed', sid: string, candidate: string }
  | { t: 'natkit/end-of-candidates', sid: string }
  /** A side's mapping and caps for the birthday spray (birthday-spray.ts), sent once it has measured them. */
  | { t: 'natkit/spray', sid: string, spray: SprayAnnouncement }
  | { t: 'natkit/bye', sid: string }
  /**
   * Retry pacing of the TCP simultaneous open (tcp-punch-link.ts): `ready` (my attempt `n` is over), `ping`/`pong`
   * (the controlling side measures the round trip), `go` (connect now; the sender connects half `rttMs` later).
   */
  | { t: 'natkit/tcp-punch', sid: string, op: 'ready' | 'ping' | 'pong' | 'go', n: number, rttMs?: number }

/** Two connected in-memory channels (tests, and two peers in one process), with an optional one-way delay. */
export function channelPair (delayMs = 0): [SignalChannel, SignalChannel] {
  const handlers: Array<Set<(m: unknown) => void>> = [new Set(), new Set()]
  const make = (self: number): SignalChannel => ({
    send: (message) => {
      const copy = JSON.parse(JSON.stringify(message)) as unknown
      const deliver = (): void => { for (const h of handlers[1 - self]) h(copy) }
      if (delayMs > 0) setTimeout(deliver, delayMs).unref(); else queueMicrotask(deliver)
    },
    subscribe: (handler) => {
      handlers[self].add(handler)
      return () => { handlers[self].delete(handler) }
    }
  })
  return [make(0), make(1)]
}
