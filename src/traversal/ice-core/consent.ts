import { MessageBuilder, MessageClass, Method, type StunMessage } from '../../stun/index.js'
import { candidateKey, isRelayed, type CandidatePair } from './check-list.js'
import { fail } from './nomination.js'
import { buildCheck } from './send-check.js'
import type { CheckTransaction } from './transactions.js'
import type { IceAction, IceState } from './types.js'

/** Consent requests retransmit quickly and give up within the interval (RTO 200 ms, 3 sends). */
const CONSENT_RETRANSMIT = { rtoMs: 200, rc: 3, rm: 4 } as const

/** RFC 7675 §5.1: the next consent check goes 0.8-1.2 × Tc after this one, randomized each time. */
export function nextConsentInterval (s: IceState): number {
  return s.o.consentIntervalMs * (0.8 + s.o.random() * 0.4)
}

/**
 * Consent freshness (RFC 7675 §5.1) on each component's selected pair: a pair whose last response is older than the
 * consent timeout fails (the path moves to the next working pair); otherwise a consent request goes out.
 */
export function consentTick (s: IceState, now: number, out: IceAction[]): void {
  if (s.nextConsentAt === undefined || now < s.nextConsentAt) return
  s.nextConsentAt = now + nextConsentInterval(s)
  for (const pair of [...s.selected.values()]) {
    if (pair.lastResponseAt !== undefined && now - pair.lastResponseAt > s.o.consentTimeoutMs) {
      fail(s, pair, 'timeout', `consent lost: no response for ${s.o.consentTimeoutMs} ms`, now, out)
      continue
    }
    if (s.remoteKey === undefined || !s.bases.has(candidateKey(pair.local))) continue
    s.tx.start({ kind: 'consent', pair, base: candidateKey(pair.local), to: pair.remote, data: buildCheck(s, pair, false), key: s.remoteKey, nominate: false, recheck: true }, CONSENT_RETRANSMIT, now, out)
  }
}

/** A response to a consent request: an authentic success renews consent (RFC 7675 §5.1) and measures the RTT. */
export function onConsentResponse (t: CheckTransaction, m: StunMessage, now: number): void {
  if (m.cls !== MessageClass.SuccessResponse || !m.verifyIntegrity(t.key)) return
  t.pair.lastResponseAt = now
  t.pair.rttMs = Math.round((now - t.startedAt) * 100) / 100
}

/** Binding indications on each selected pair and the best relayed fallback (RFC 8445 §11), every keepalive interval. */
export function keepaliveTick (s: IceState, now: number, out: IceAction[]): void {
  if (s.nextKeepaliveAt === undefined || now < s.nextKeepaliveAt) return
  s.nextKeepaliveAt = now + s.o.keepaliveMs
  // A lite agent uses only what the full peer nominated (RFC 8445 §8.2.2).
  const ok = s.checks.pairs.filter(p => p.state === 'succeeded' && (!s.o.lite || p.nominated))
  const targets = new Set<CandidatePair>(s.selected.values())
  for (let c = 1; c <= s.o.components; c++) {
    const relayed = ok.find(p => p.component === c && isRelayed(p))
    if (relayed !== undefined) targets.add(relayed)
  }
  for (const p of targets) {
    out.push({ type: 'send', base: candidateKey(p.local), to: p.remote, data: new MessageBuilder(Method.Binding, MessageClass.Indication).fingerprint().build() })
  }
}
