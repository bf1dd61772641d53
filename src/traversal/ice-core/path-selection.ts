import { isRelayed, type CandidatePair } from './check-list.js'

/**
 * Path selection (RFC 8445 §8, natkit's "relay first, then upgrade"), sans-IO: the best succeeded direct pair, else
 * the best succeeded relayed pair; `pairs` is in priority order (the check list's). A lite agent uses only pairs the
 * full peer nominated (§8.2.2); so does a controlled full agent once the controlling peer has nominated a working
 * pair (§8.1.1: the nominated pair is the selected one; before that natkit sends on its best valid pair). A pure
 * function of the check list, so it is tested without sockets.
 */
export function choosePath (pairs: readonly CandidatePair[], o: { lite: boolean, controlled?: boolean }): CandidatePair | undefined {
  const ok = pairs.filter(p => p.state === 'succeeded' && (!o.lite || p.nominated))
  const nominated = o.controlled === true ? ok.filter(p => p.nominated) : []
  const from = nominated.length > 0 ? nominated : ok
  return from.find(p => !isRelayed(p)) ?? from.find(p => isRelayed(p))
}

/** Whether the agent must send a nominating check (USE-CANDIDATE) on the pair it selected: controlling, not yet nominated (§8.1.1). */
export function needsNomination (selected: CandidatePair, role: 'controlling' | 'controlled'): boolean {
  return role === 'controlling' && !selected.nominated
}
