import { expect } from 'chai'
import type { IceAction } from '../../../../src/traversal/ice-core/types.js'
import { BASE, checks, hasUseCandidate, makeCore, peerCheck, remote, respond, runUntil } from './harness.js'

const paths = (actions: IceAction[]): Array<[number, number | undefined]> =>
  actions.flatMap(a => a.type === 'path' ? [[a.pair.remote.port, a.previous?.remote.port] as [number, number | undefined]] : [])
const states = (actions: IceAction[]): string[] => actions.flatMap(a => a.type === 'state' ? [a.state] : [])

describe('IceCore nomination and path selection (RFC 8445 §8; deterministic time)', () => {
  it('controlling: selects a pair once its check succeeds and nominates it with USE-CANDIDATE at once (regular nomination)', () => {
    const core = makeCore({ role: 'controlling' })
    core.addRemoteCandidates([remote(6000)])
    const c = checks(core.start(0))[0]
    expect(hasUseCandidate(c), 'the first check does not nominate').to.equal(false)
    const out = core.handle(BASE, respond(c), c.to, 12)
    expect(paths(out)).to.deep.equal([[6000, undefined]])
    const nomination = checks(out)
    expect(nomination).to.have.length(1)
    expect(hasUseCandidate(nomination[0])).to.equal(true)
    expect(states(out)).to.deep.equal(['connected'])
    expect(core.checks.pairs[0].nominated).to.equal(false)
    const done = core.handle(BASE, respond(nomination[0]), c.to, 20)
    expect(core.checks.pairs[0].nominated).to.equal(true)
    expect(states(done)).to.deep.equal(['completed'])
  })

  it('controlled: moves to the pair the controlling peer nominates (USE-CANDIDATE), away from its own best valid pair', () => {
    const core = makeCore({ role: 'controlled', initialBurst: 2 })
    core.addRemoteCandidates([remote(6001, { localPreference: 300 }), remote(6002, { localPreference: 100 })])
    const [a, b] = checks(core.start(0))
    expect([a.to.port, b.to.port]).to.deep.equal([6001, 6002])
    expect(paths(core.handle(BASE, respond(a), a.to, 10))).to.deep.equal([[6001, undefined]])
    expect(paths(core.handle(BASE, respond(b), b.to, 11)), 'the lower-priority pair alone is no reason to move').to.deep.equal([])
    const out = core.handle(BASE, peerCheck({ role: 'controlling', tiebreaker: 1000n, nominate: true }), b.to, 20)
    expect(paths(out)).to.deep.equal([[6002, 6001]])
    expect(core.path()?.nominated).to.equal(true)
    expect(checks(out).filter(hasUseCandidate), 'the controlled agent never nominates').to.deep.equal([])
  })

  it('accepts aggressive nomination: USE-CANDIDATE on an unchecked pair selects it when the triggered check succeeds', () => {
    const core = makeCore({ role: 'controlled' })
    core.addRemoteCandidates([remote(6001, { localPreference: 300 }), remote(6002, { localPreference: 100 })])
    core.start(0)
    const from = { address: '10.0.0.2', port: 6002 }
    const out = core.handle(BASE, peerCheck({ role: 'controlling', tiebreaker: 1000n, nominate: true }), from, 5)
    expect(paths(out), 'nothing is selected before our own check succeeds').to.deep.equal([])
    const triggered = checks(core.tick(50))
    expect(triggered.map(c => c.to.port)).to.deep.equal([6002])
    const selected = core.handle(BASE, respond(triggered[0]), from, 60)
    expect(paths(selected)).to.deep.equal([[6002, undefined]])
    expect(core.path()?.nominated).to.equal(true)
  })

  it('prefers a working direct pair over a relayed one, and falls back to the relay when the direct one fails', () => {
    const core = makeCore({ role: 'controlling', initialBurst: 2, consentIntervalMs: 1000, consentTimeoutMs: 3000 })
    core.addRemoteCandidates([remote(6001), remote(6002, { type: 'relay', address: '203.0.113.10' })])
    const [direct, relay] = checks(core.start(0))
    core.handle(BASE, respond(relay), relay.to, 10)
    expect(core.path()?.remote.port).to.equal(6002)
    core.handle(BASE, respond(direct), direct.to, 20)
    expect(core.path()?.remote.port).to.equal(6001)
    // Only the relay keeps answering (consent and the nominations); the direct pair's consent runs out.
    let moved: number | undefined
    for (let i = 0; i < 1000 && moved === undefined; i++) {
      const at = core.nextDeadline() as number
      const out = core.tick(at)
      for (const c of checks(out)) if (c.to.port === 6002) core.handle(BASE, respond(c), c.to, at)
      for (const a of out) if (a.type === 'path') moved = at
    }
    expect(core.path()?.remote.port).to.equal(6002)
    expect(moved).to.be.greaterThan(3000)
  })

  it('reports failed once every pair has failed and both sides have finished gathering, not before', () => {
    const core = makeCore({ checkRetransmit: { rtoMs: 100, rc: 2, rm: 1 } })
    core.addRemoteCandidates([remote(6000)])
    const seen: Array<[number, string]> = []
    for (const s of states(core.start(0))) seen.push([0, s])
    core.setLocalGatheringComplete()
    runUntil(core, 1000, (now, actions) => { for (const s of states(actions)) seen.push([now, s]) })
    expect(seen, 'the peer may still trickle candidates').to.deep.equal([[0, 'checking']])
    for (const s of states(core.setRemoteGatheringComplete())) seen.push([1000, s])
    expect(seen).to.deep.equal([[0, 'checking'], [1000, 'failed']])
  })

  it('ICE-lite (§2.5, §7.3.1.5): sends no checks, and uses the pair the full peer nominates', () => {
    const core = makeCore({ lite: true, role: 'controlling' })
    expect(core.role).to.equal('controlled')
    core.addRemoteCandidates([remote(6000)])
    expect(core.start(0)).to.deep.equal([])
    const from = { address: '10.0.0.2', port: 6000 }
    const plain = core.handle(BASE, peerCheck({ role: 'controlling', tiebreaker: 1000n }), from, 5)
    expect(plain.map(a => a.type), 'answered, nothing selected').to.deep.equal(['send'])
    const nominated = core.handle(BASE, peerCheck({ role: 'controlling', tiebreaker: 1000n, nominate: true }), from, 6)
    expect(paths(nominated)).to.deep.equal([[6000, undefined]])
    expect(checks(nominated), 'no check of its own').to.deep.equal([])
    expect(core.checks.pairs[0].checksSent).to.equal(0)
    expect(core.nextDeadline()).to.equal(undefined)
  })
})
