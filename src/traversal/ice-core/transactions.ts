import type { Endpoint } from '../../net/endpoint.js'
import { resolveRetransmit, udpSchedule, type RetransmitOptions } from '../../stun/retransmit.js'
import type { CandidatePair } from './check-list.js'
import type { IceAction } from './types.js'

/** A connectivity or consent check in flight (RFC 8489 §6.2.1 client transaction, run on the caller's clock). */
export interface CheckTransaction {
  readonly id: string
  readonly kind: 'check' | 'consent'
  readonly pair: CandidatePair
  readonly base: string
  readonly to: Endpoint
  readonly data: Buffer
  /** The peer's short-term key when the check was sent (responses carry MESSAGE-INTEGRITY with it). */
  readonly key: Buffer
  readonly nominate: boolean
  /** A check on a pair that already works (a nomination): a timeout leaves the pair as it is. */
  readonly recheck: boolean
  readonly startedAt: number
  lastSendAt: number
  sends: number
  /** Absolute times of the retransmissions still to come. */
  readonly resendAt: number[]
  /** When the transaction fails if unanswered (Rm·RTO after the last send). */
  readonly deadline: number
}

/** Transaction id of an encoded STUN message, as a map key. */
export function transactionKey (data: Uint8Array): string {
  return Buffer.from(data.buffer, data.byteOffset + 8, 12).toString('latin1')
}

/**
 * The check transactions of the core: sends on RFC 8489's doubling schedule (RTO, Rc sends, Rm·RTO after the last),
 * every retransmission and timeout decided by tick(now), never by a timer of its own. Responses are matched by
 * transaction id whatever their source (the caller then rejects non-symmetric ones, RFC 8445 §7.2.5.2.1).
 */
export class CheckTransactions {
  private readonly pending = new Map<string, CheckTransaction>()

  get size (): number { return this.pending.size }

  /** Start a transaction: the first send goes into `out` now, the rest come from due(). */
  start (t: Omit<CheckTransaction, 'id' | 'lastSendAt' | 'sends' | 'resendAt' | 'deadline' | 'startedAt'>, timing: RetransmitOptions, now: number, out: IceAction[]): CheckTransaction {
    const { sends, timeout } = udpSchedule(resolveRetransmit(timing))
    const tx: CheckTransaction = { ...t, id: transactionKey(t.data), startedAt: now, lastSendAt: now, sends: 1, resendAt: sends.slice(1).map(at => now + at), deadline: now + timeout }
    this.pending.set(tx.id, tx)
    out.push({ type: 'send', base: t.base, to: t.to, data: t.data })
    return tx
  }

  /** The transaction a response belongs to (by transaction id), left pending. */
  peek (data: Uint8Array): CheckTransaction | undefined {
    return data.length < 20 ? undefined : this.pending.get(transactionKey(data))
  }

  /** Take the transaction a response belongs to (by transaction id), if one is pending. */
  take (data: Uint8Array): CheckTransaction | undefined {
    if (data.length < 20) return undefined
    const key = transactionKey(data)
    const tx = this.pending.get(key)
    if (tx !== undefined) this.pending.delete(key)
    return tx
  }

  /** Retransmissions due by `now` go into `out`; returns the transactions that timed out (removed). */
  due (now: number, out: IceAction[]): CheckTransaction[] {
    const expired: CheckTransaction[] = []
    for (const tx of this.pending.values()) {
      if (now >= tx.deadline) { expired.push(tx); continue }
      while (tx.resendAt.length > 0 && tx.resendAt[0] <= now) {
        tx.resendAt.shift()
        tx.sends++
        tx.lastSendAt = now
        out.push({ type: 'send', base: tx.base, to: tx.to, data: tx.data })
      }
    }
    for (const tx of expired) this.pending.delete(tx.id)
    return expired
  }

  /** The earliest retransmission or timeout still to come. */
  nextDeadline (): number | undefined {
    let next: number | undefined
    for (const tx of this.pending.values()) {
      const at = tx.resendAt[0] ?? tx.deadline
      if (next === undefined || at < next) next = at
    }
    return next
  }

  /** Drop the transactions matching `drop` (their pair is gone); they end silently. */
  cancel (drop: (tx: CheckTransaction) => boolean): void {
    for (const [k, tx] of this.pending) if (drop(tx)) this.pending.delete(k)
  }

  clear (): void { this.pending.clear() }
}
