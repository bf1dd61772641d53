import { expect } from 'chai'
import { IceControlled, IceControlling, MessageClass, Priority, StunMessage, UseCandidate, Username } from '../../../../src/stun/index.js'
import { candidatePriority, makeCandidate } from '../../../../src/traversal/candidate.js'
import { candidateKey } from '../../../../src/traversal/ice-core/check-list.js'
import { isAuthenticCheck } from '../../../../src/traversal/ice-core/check-messages.js'
import { IceCore } from '../../../../src/traversal/ice-core/ice-core.js'
import { LOCAL, PEER, checks, makeCore, remote, respond } from './harness.js'

/** A base opened after gathering (the birthday spray's winning socket). */
const LATE = makeCandidate({ type: 'host', address: '10.0.0.1', port: 5999, server: 'birthday-spray', localPreference: 0 })

describe('IceCore checks the adapter starts (checkPair, rawCheck)', () => {
  it('checkPair pairs one late base with one unknown remote, learnt as peer-reflexive, and checks it first', () => {
    const core = makeCore({ checkRetransmit: { rtoMs: 10_000, rc: 1, rm: 1 } })
    core.addRemoteCandidates([remote(6001, { localPreference: 300 }), remote(6002, { address: '10.0.0.3', localPreference: 200 })])
    expect(checks(core.start(0)).map(c => c.to.port)).to.deep.equal([6001])
    core.addBase(LATE, false)
    const from = { address: '198.51.100.7', port: 40_000 }
    const pair = core.checkPair(LATE, from)
    expect(pair?.local).to.equal(LATE)
    expect(pair?.remote).to.include({ type: 'prflx', address: from.address, port: from.port, component: 1 })
    expect(pair?.state).to.equal('waiting')
    // Only this one pair was made for the late base (not one per known remote), and the base is a local candidate now.
    expect(core.checks.pairs.filter(p => p.local === LATE)).to.have.length(1)
    expect(core.local).to.include(LATE)
    const next = checks(core.tick(50))
    expect(next.map(c => [c.base, c.to.port]), 'the triggered pair goes before the waiting 6002').to.deep.equal([[candidateKey(LATE), 40_000]])
    // Its success makes a working path from the late base.
    core.handle(next[0].base, respond(next[0]), from, 60)
    expect(core.path()?.local).to.equal(LATE)
  })

  it('checkPair reuses a known remote candidate and a pair that exists, and refuses a candidate that is no base', () => {
    const core = makeCore()
    const known = remote(6001)
    core.addRemoteCandidates([known])
    core.addBase(LATE, false)
    const pair = core.checkPair(LATE, { address: known.address, port: known.port })
    expect(pair?.remote).to.equal(known)
    expect(core.remote).to.have.length(1)
    expect(core.checkPair(LATE, { address: known.address, port: known.port })).to.equal(pair)
    expect(core.checks.pairs.filter(p => p.local === LATE)).to.have.length(1)
    const stranger = makeCandidate({ type: 'host', address: '10.0.0.1', port: 5888 })
    expect(core.checkPair(stranger, { address: known.address, port: known.port })).to.equal(undefined)
    expect(core.local).to.not.include(stranger)
  })

  it('rawCheck is an authentic check with the current credentials, role and tie-breaker, outside any transaction', () => {
    const core = makeCore()
    const data = core.rawCheck()
    expect(data).to.not.equal(undefined)
    const m = StunMessage.decode(data as Buffer)
    expect(m.cls).to.equal(MessageClass.Request)
    expect(m.get(Username)).to.equal(`${PEER.ufrag}:${LOCAL.ufrag}`)
    // The peer verifies it with its own key.
    expect(isAuthenticCheck(m, PEER.ufrag, PEER.key)).to.equal(true)
    expect(m.get(IceControlling)).to.equal(100n)
    expect(m.has(UseCandidate.type)).to.equal(false)
    expect(m.get(Priority)).to.equal(candidatePriority('prflx', 65534))
    // No transaction: nothing to retransmit, no deadline.
    expect(core.tx.size).to.equal(0)
    expect(core.nextDeadline()).to.equal(undefined)
    // It follows the role.
    const controlled = makeCore({ role: 'controlled' })
    expect(StunMessage.decode(controlled.rawCheck() as Buffer).get(IceControlled)).to.equal(100n)
  })

  it('rawCheck gives nothing while the peer\'s credentials are unknown (before signalling, during a restart)', () => {
    const fresh = new IceCore({ now: 0 })
    expect(fresh.rawCheck()).to.equal(undefined)
    const core = makeCore()
    core.restart()
    expect(core.rawCheck()).to.equal(undefined)
    core.setRemoteCredentials('peer2', 'peer-password-2-peer-pw')
    const m = StunMessage.decode(core.rawCheck() as Buffer)
    expect(m.get(Username)).to.equal(`peer2:${core.credentials.ufrag}`)
  })
})
