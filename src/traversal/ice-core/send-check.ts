import { ipFamily } from '../../net/endpoint.js'
import { candidatePriority } from '../candidate.js'
import { candidateKey, type CandidatePair } from './check-list.js'
import { buildCheckRequest } from './check-messages.js'
import type { CheckTransaction } from './transactions.js'
import type { IceAction, IceState } from './types.js'

/** Default check retransmission: a punched hole is often open on the first retransmission (~6.5 s in all). */
export const CHECK_RETRANSMIT = { rtoMs: 50, rc: 8, rm: 4 } as const

/** Encode a check on a pair with the current credentials and role (RFC 8445 §7.2.2). */
export function buildCheck (s: IceState, pair: CandidatePair, nominate: boolean): Buffer {
  return buildCheckRequest({
    localUfrag: s.credentials.ufrag,
    remoteUfrag: s.remoteUfrag ?? '',
    remoteKey: s.remoteKey as Buffer,
    // PRIORITY: what a peer-reflexive candidate learnt from this check would get (§7.2.2), of the pair's component.
    priority: candidatePriority('prflx', ipFamily(pair.local.address) === 6 ? 65535 : 65534, pair.component),
    role: s.role,
    tiebreaker: s.tiebreaker,
    nominate
  })
}

/**
 * Send a connectivity check on a pair (RFC 8445 §7.2.4): the pair goes In-Progress (a nomination on a pair that
 * already works stays Succeeded: if it goes unanswered, consent freshness decides whether the path is dead), and
 * the transaction's retransmissions are driven by tick(now).
 */
export function startCheck (s: IceState, pair: CandidatePair, nominate: boolean, now: number, out: IceAction[]): CheckTransaction | undefined {
  const base = s.bases.get(candidateKey(pair.local))
  if (base === undefined || s.remoteKey === undefined) return undefined
  const recheck = pair.state === 'succeeded'
  if (!recheck) pair.state = 'in-progress'
  pair.firstCheckAt ??= now - s.epoch
  pair.checksSent++
  return s.tx.start({
    kind: 'check', pair, base: candidateKey(pair.local), to: pair.remote, data: buildCheck(s, pair, nominate), key: s.remoteKey, nominate, recheck
  }, { ...s.o.checkRetransmit, ...s.checkTiming }, now, out)
}
