import { createLogger } from '../../log.js'
import { formatEndpoint, sameTransportAddress, type Endpoint } from '../../net/endpoint.js'
import { ErrorCode, MessageClass, Priority, UseCandidate, XorMappedAddress, type StunMessage } from '../../stun/index.js'
import { candidatePriority, makeCandidate, type Candidate } from '../candidate.js'
import { candidateKey } from './check-list.js'
import { buildCheckResponse, buildUnauthenticated, isAuthenticCheck, resolveRoleConflict } from './check-messages.js'
import { fail, select } from './nomination.js'
import { startCheck } from './send-check.js'
import type { CheckTransaction } from './transactions.js'
import { routeKey, type IceAction, type IceState } from './types.js'

const log = createLogger('natcheck:traversal:checks')

/**
 * Pacing (RFC 8445 §6.1.4.2, §14.2): at most one new check every Ta, the triggered queue first, then the
 * highest-priority Waiting pair, else a Frozen one. Checks wait for the peer's credentials.
 */
export function paceChecks (s: IceState, now: number, out: IceAction[]): void {
  if (!canCheck(s) || s.nextCheckAt === undefined || now < s.nextCheckAt) return
  const pair = s.checks.next()
  if (pair === undefined) return
  startCheck(s, pair, s.role === 'controlling' && s.selected.get(pair.component) === pair, now, out)
  const ta = s.o.checkIntervalMs
  s.nextCheckAt = s.nextCheckAt + ta > now ? s.nextCheckAt + ta : now + ta
}

/** When the pacer wants to run again (undefined when there is nothing to check). */
export function nextPacedCheck (s: IceState): number | undefined {
  return canCheck(s) && s.checks.hasNext() ? s.nextCheckAt : undefined
}

function canCheck (s: IceState): boolean {
  return !s.o.lite && s.nextCheckAt !== undefined && s.remoteKey !== undefined && !s.awaitingRemoteCredentials
}

/** Switch role after a conflict (§7.2.5.1, §7.3.1.1) and re-sort the check list by the new pair priorities. */
export function switchRole (s: IceState): void {
  s.role = s.role === 'controlling' ? 'controlled' : 'controlling'
  s.checks.reprioritise(s.role === 'controlling')
  log('role conflict: now %s', s.role)
}

/** A response to one of our checks (RFC 8445 §7.2.5); a success response has passed MESSAGE-INTEGRITY already. */
export function onCheckResponse (s: IceState, t: CheckTransaction, m: StunMessage, from: Endpoint, now: number, out: IceAction[]): void {
  const pair = t.pair
  if (m.cls === MessageClass.ErrorResponse) {
    const code = m.get(ErrorCode)?.code ?? 0
    if (code === 487) {
      // §7.2.5.1: switch role, recompute priorities, retry the pair as a triggered check.
      switchRole(s)
      if (pair.state !== 'succeeded') pair.state = 'waiting'
      s.checks.trigger(pair)
      return
    }
    if (t.recheck) return
    return fail(s, pair, code === 401 ? 'auth-failed' : 'error-response', `${code} ${m.get(ErrorCode)?.reason ?? ''}`, now, out)
  }
  // §7.2.5.2.1: the response must come from where the request went (symmetric), else the pair fails.
  if (!sameTransportAddress(from, pair.remote)) {
    if (!t.recheck) fail(s, pair, 'non-symmetric', `response came from ${formatEndpoint(from)}`, now, out)
    return
  }
  s.proven.add(routeKey(t.base, from))
  const first = pair.state !== 'succeeded'
  pair.state = 'succeeded'
  pair.outcome = 'succeeded'
  // §7.2.5.3.3: unfreeze the pairs with this foundation, in every component.
  s.checks.unfreeze(pair)
  pair.rttMs = Math.round((now - t.startedAt) * 100) / 100
  pair.lastResponseAt = now
  if (first) pair.endedAt = now - s.epoch
  if (t.nominate) pair.nominated = true
  const base = s.bases.get(t.base)
  const mapped = m.get(XorMappedAddress)
  if (mapped !== undefined && base?.type === 'host' && !s.local.some(l => l.address === mapped.address && l.port === mapped.port)) {
    // §7.2.5.3.1: a peer-reflexive local candidate, learnt but not paired (its base already is).
    s.local.push(makeCandidate({ type: 'prflx', address: mapped.address, port: mapped.port, base: base.address, related: { address: base.address, port: base.port }, component: base.component }))
  }
  out.push({ type: 'pair', pair })
  select(s, pair.component, now, out)
}

/** A check went unanswered through its whole retransmission schedule. */
export function onCheckTimeout (s: IceState, t: CheckTransaction, now: number, out: IceAction[]): void {
  if (t.recheck || t.pair.state === 'failed') return
  fail(s, t.pair, 'timeout', `no response after ${t.sends} send(s) of check ${t.pair.checksSent}`, now, out)
}

/**
 * RFC 8445 §7.3: answer a check request on a base — authenticate it (old credentials too during a restart, §9),
 * resolve role conflicts (§7.3.1.1), learn a peer-reflexive remote candidate (§7.3.1.3), note USE-CANDIDATE
 * (§7.3.1.5) and queue a triggered check (§7.3.1.4).
 */
export function answerCheck (s: IceState, baseKey: string, m: StunMessage, from: Endpoint, now: number, out: IceAction[]): void {
  const base = s.bases.get(baseKey)
  if (base === undefined) return
  const old = s.previousCredentials
  const key = isAuthenticCheck(m, s.credentials.ufrag, s.credentials.key)
    ? s.credentials.key
    : old !== undefined && isAuthenticCheck(m, old.ufrag, old.key) ? old.key : undefined
  if (key === undefined) {
    out.push({ type: 'send', base: baseKey, to: from, data: buildUnauthenticated(m) })
    return
  }
  const conflict = resolveRoleConflict(m, s.role, s.tiebreaker)
  if (conflict === 'respond-487') { out.push({ type: 'send', base: baseKey, to: from, data: buildCheckResponse(m, from, key, true) }); return }
  if (conflict === 'switch') switchRole(s)
  out.push({ type: 'send', base: baseKey, to: from, data: buildCheckResponse(m, from, key) })
  s.proven.add(routeKey(baseKey, from))
  if (key !== s.credentials.key) return // a check of the old generation: answered, nothing to learn for the new check list
  let remote = s.remote.find(r => sameTransportAddress(r, from) && r.component === base.component)
  if (remote === undefined) {
    // §7.3.1.3: a peer-reflexive remote candidate, with the PRIORITY of the check and the base's component.
    const learnt: Candidate = makeCandidate({ type: 'prflx', address: from.address, port: from.port, component: base.component })
    remote = { ...learnt, priority: m.get(Priority) ?? candidatePriority('prflx', 65535, base.component) }
    s.remote.push(remote)
    s.checks.addPairs([base], [remote], s.role === 'controlling')
  }
  const pair = s.checks.find(candidateKey(base), from)
  if (pair === undefined) return
  if (m.has(UseCandidate.type) && s.role === 'controlled') pair.nominated = true
  if (s.o.lite) {
    // §7.3.1.5 (lite): no triggered check; a nominated pair is valid and selected, the highest priority wins.
    if (pair.nominated && pair.state !== 'succeeded') {
      pair.state = 'succeeded'
      pair.outcome = 'succeeded'
      pair.endedAt = now - s.epoch
      pair.lastResponseAt = now
      out.push({ type: 'pair', pair })
      select(s, pair.component, now, out)
    }
    return
  }
  // §7.3.1.4: a triggered check, so both directions are proven quickly.
  if (pair.state === 'frozen' || pair.state === 'waiting' || pair.state === 'failed') s.checks.trigger(pair)
  // §7.3.1.5: USE-CANDIDATE on a pair that already works selects it (aggressive nomination from RFC 5245 peers too).
  if (pair.state === 'succeeded') select(s, pair.component, now, out)
}
