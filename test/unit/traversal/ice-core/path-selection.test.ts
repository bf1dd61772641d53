import { expect } from 'chai'
import { CheckList, type CandidatePair, type PairState } from '../../../../src/traversal/ice-core/check-list.js'
import { makeCandidate } from '../../../../src/traversal/candidate.js'
import { choosePath, needsNomination } from '../../../../src/traversal/ice-core/path-selection.js'

describe('choosePath (RFC 8445 §8, relay first then upgrade)', () => {
  const list = new CheckList()
  list.addPairs(
    [makeCandidate({ type: 'host', address: '10.0.0.2', port: 1 }), makeCandidate({ type: 'relay', address: '198.51.100.1', port: 3 })],
    [makeCandidate({ type: 'host', address: '10.0.1.2', port: 4 }), makeCandidate({ type: 'relay', address: '198.51.100.2', port: 6 })], true)
  const byName = (name: string): CandidatePair => list.pairs.find(p => `${p.local.type}>${p.remote.type}` === name) as CandidatePair
  const set = (states: Record<string, PairState>, nominated: string[] = []): void => {
    for (const p of list.pairs) { p.state = 'waiting'; p.nominated = false }
    for (const [name, state] of Object.entries(states)) byName(name).state = state
    for (const name of nominated) byName(name).nominated = true
  }
  const cases: Array<{ name: string, states: Record<string, PairState>, nominated?: string[], lite?: boolean, controlled?: boolean, want: string | undefined }> = [
    { name: 'nothing works yet', states: {}, want: undefined },
    { name: 'only a relayed pair works: use it', states: { 'relay>host': 'succeeded' }, want: 'relay>host' },
    { name: 'a direct pair works too: upgrade', states: { 'relay>host': 'succeeded', 'host>host': 'succeeded' }, want: 'host>host' },
    { name: 'of two relayed pairs the higher-priority one', states: { 'relay>relay': 'succeeded', 'host>relay': 'succeeded' }, want: list.pairs.filter(p => ['relay>relay', 'host>relay'].includes(`${p.local.type}>${p.remote.type}`)).map(p => `${p.local.type}>${p.remote.type}`)[0] },
    { name: 'the direct pair failed: back to the relay', states: { 'relay>host': 'succeeded', 'host>host': 'failed' }, want: 'relay>host' },
    { name: 'lite: a working pair the peer did not nominate is not used', states: { 'host>host': 'succeeded' }, lite: true, want: undefined },
    { name: 'lite: the nominated pair', states: { 'host>host': 'succeeded', 'relay>host': 'succeeded' }, nominated: ['relay>host'], lite: true, want: 'relay>host' },
    { name: 'controlled, nothing nominated yet: its best valid pair', states: { 'host>host': 'succeeded', 'relay>host': 'succeeded' }, controlled: true, want: 'host>host' },
    { name: 'controlled: the nominated pair, over a better valid one (§8.1.1)', states: { 'host>host': 'succeeded', 'relay>host': 'succeeded' }, nominated: ['relay>host'], controlled: true, want: 'relay>host' },
    { name: 'controlled: a nominated pair that has not succeeded is not used', states: { 'host>host': 'succeeded', 'relay>host': 'in-progress' }, nominated: ['relay>host'], controlled: true, want: 'host>host' }
  ]
  for (const c of cases) {
    it(c.name, () => {
      set(c.states, c.nominated)
      const p = choosePath(list.pairs, { lite: c.lite === true, controlled: c.controlled })
      expect(p === undefined ? undefined : `${p.local.type}>${p.remote.type}`).to.equal(c.want)
    })
  }

  it('needsNomination: only the controlling agent, only once', () => {
    const p = byName('host>host')
    p.nominated = false
    expect(needsNomination(p, 'controlling')).to.equal(true)
    expect(needsNomination(p, 'controlled')).to.equal(false)
    p.nominated = true
    expect(needsNomination(p, 'controlling')).to.equal(false)
  })
})
