import { createLogger } from '../../log.js'
import { formatEndpoint } from '../../net/endpoint.js'
import { isRelayed, type CandidatePair, type CheckOutcome } from './check-list.js'
import { startCheck } from './send-check.js'
import { choosePath, needsNomination } from './path-selection.js'
import type { IceAction, IceState } from './types.js'

const log = createLogger('natcheck:traversal:nomination')

/**
 * Choose the selected pair of a component (RFC 8445 §8): the best succeeded direct pair, else the best succeeded
 * relayed pair (relay first, upgrade when direct works). The controlling agent nominates what it selects with a
 * USE-CANDIDATE check at once (regular nomination, §8.1.1); the controlled agent follows the nominated pair.
 */
export function select (s: IceState, component: number, now: number, out: IceAction[]): void {
  const lite = s.o.lite
  const pairs = s.checks.pairs.filter(p => p.component === component)
  const best = choosePath(pairs, { lite, controlled: !lite && s.role === 'controlled' })
  const current = s.selected.get(component)
  if (best === current) { updateState(s, out); return }
  // An ICE restart keeps the old path until the new check list has a working pair (RFC 8445 §9).
  const restarting = s.previousCredentials !== undefined
  if (best === undefined && restarting) return
  if (best !== undefined && restarting) { s.previousCredentials = undefined; log('ICE restart complete') }
  if (best === undefined) s.selected.delete(component); else s.selected.set(component, best)
  if (best !== undefined) {
    log('path %d: %s %s → %s', component, isRelayed(best) ? 'relay' : 'direct', formatEndpoint(best.local), formatEndpoint(best.remote))
    if (needsNomination(best, s.role)) startCheck(s, best, true, now, out)
    out.push({ type: 'path', component, pair: best, previous: current })
  }
  updateState(s, out)
}

/** A pair failed (check, consent or cancellation): record why, and move the path if it was selected. */
export function fail (s: IceState, pair: CandidatePair, outcome: CheckOutcome, detail: string, now: number, out: IceAction[]): void {
  pair.state = 'failed'
  pair.outcome = outcome
  pair.detail = detail
  pair.endedAt = now - s.epoch
  out.push({ type: 'pair', pair })
  if (s.selected.get(pair.component) === pair) select(s, pair.component, now, out)
  else updateState(s, out)
}

/**
 * The overall state: connected when every component has a selected pair, completed when every selected pair is
 * nominated too, failed when no component can get one any more (checks over, both sides' candidates all known).
 */
export function updateState (s: IceState, out: IceAction[]): void {
  if (s.state === 'new') return
  let next = s.state
  const all = Array.from({ length: s.o.components }, (_, i) => s.selected.get(i + 1))
  if (all.every(p => p !== undefined)) next = all.every(p => p?.nominated === true) ? 'completed' : 'connected'
  else if (!s.checks.active && s.checks.pairs.length > 0 && s.localGatheringComplete && s.remoteGatheringComplete && s.tx.size === 0) next = 'failed'
  else next = 'checking'
  if (next === s.state) return
  s.state = next
  out.push({ type: 'state', state: next })
}
