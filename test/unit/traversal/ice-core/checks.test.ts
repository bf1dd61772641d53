import { expect } from 'chai'
import { ErrorCode, IceControlled, MessageBuilder, MessageClass, Method, Priority, Username, XorMappedAddress } from '../../../../src/stun/index.js'
import { BASE, HOST, LOCAL, PEER, checks, decode, makeCore, peerCheck, remote, respond, respondError, roleOf, runUntil, sends } from './harness.js'

describe('IceCore checks (RFC 8445 §6.1.4, §7.2, §7.3; deterministic time)', () => {
  it('paces new checks at Ta: one per interval, highest pair priority first', () => {
    const core = makeCore({ checkIntervalMs: 50, checkRetransmit: { rtoMs: 10_000, rc: 1, rm: 1 } })
    // Three foundations (three remote addresses), so all three pairs start Waiting (§6.1.2.6).
    core.addRemoteCandidates([remote(6001, { localPreference: 100 }), remote(6002, { address: '10.0.0.3', localPreference: 300 }), remote(6003, { address: '10.0.0.4', localPreference: 200 })])
    const first = checks(core.start(0))
    expect(first.map(s => s.to.port)).to.deep.equal([6002])
    expect(core.nextDeadline()).to.equal(50)
    expect(checks(core.tick(49))).to.deep.equal([])
    const at: Array<[number, number]> = []
    runUntil(core, 200, (now, actions) => { for (const c of checks(actions)) at.push([now, c.to.port]) })
    expect(at).to.deep.equal([[50, 6003], [100, 6001]])
    expect(first[0].base).to.equal(BASE)
  })

  it('retransmits a check on the RTO schedule and fails the pair after the last Rm·RTO', () => {
    const core = makeCore({ checkRetransmit: { rtoMs: 100, rc: 3, rm: 2 } })
    core.addRemoteCandidates([remote(6000)])
    const first = checks(core.start(0))[0]
    const log: Array<[number, string]> = []
    runUntil(core, 10_000, (now, actions) => {
      for (const s of sends(actions)) log.push([now, s.data.equals(first.data) ? 'resend' : 'other'])
      for (const a of actions) if (a.type === 'pair') log.push([now, `pair ${a.pair.state} ${a.pair.outcome ?? ''}`])
    })
    // Sends at 0, 100, 300 (the interval doubles); the transaction fails Rm·RTO = 200 ms after the last send.
    expect(log).to.deep.equal([[100, 'resend'], [300, 'resend'], [500, 'pair failed timeout']])
    expect(core.checks.pairs[0].endedAt).to.equal(500)
  })

  it('answers a check and queues a triggered check on its pair ahead of the ordinary ones (§7.3.1.4)', () => {
    const core = makeCore({ checkRetransmit: { rtoMs: 10_000, rc: 1, rm: 1 } })
    core.addRemoteCandidates([remote(6001, { localPreference: 300 }), remote(6002, { address: '10.0.0.3', localPreference: 200 }), remote(6003, { localPreference: 100 })])
    expect(checks(core.start(0)).map(c => c.to.port)).to.deep.equal([6001])
    expect(core.checks.pairs.map(p => p.state), 'same foundation as 6001: frozen').to.deep.equal(['in-progress', 'waiting', 'frozen'])
    const answer = sends(core.handle(BASE, peerCheck(), { address: '10.0.0.2', port: 6003 }, 10))
    expect(answer).to.have.length(1)
    const res = decode(answer[0])
    expect(res.cls).to.equal(MessageClass.SuccessResponse)
    expect(res.verifyIntegrity(makeCore().credentials.key)).to.equal(true)
    expect(checks(core.tick(50)).map(c => c.to.port), 'the triggered pair goes before the higher-priority waiting one').to.deep.equal([6003])
    expect(checks(core.tick(100)).map(c => c.to.port)).to.deep.equal([6002])
  })

  it('answers a check with the wrong credentials with a 401 and learns nothing', () => {
    const core = makeCore()
    const out = sends(core.handle(BASE, peerCheck({ credentials: { ufrag: 'locl', key: Buffer.alloc(20, 1) } }), { address: '10.0.0.2', port: 6000 }, 0))
    expect(decode(out[0]).get(ErrorCode)?.code).to.equal(401)
    expect(core.remote).to.deep.equal([])
  })

  it('learns a peer-reflexive remote candidate from a check, with the PRIORITY it carried (§7.3.1.3)', () => {
    const core = makeCore()
    core.addRemoteCandidates([remote(6000)])
    core.start(0)
    core.handle(BASE, peerCheck({ priority: 1_862_270_975 }), { address: '10.0.0.9', port: 7000 }, 5)
    const learnt = core.remote.find(r => r.port === 7000)
    expect(learnt).to.include({ type: 'prflx', address: '10.0.0.9', priority: 1_862_270_975, component: 1 })
    expect(checks(core.tick(50)).map(c => c.to.port), 'a triggered check goes to it').to.deep.equal([7000])
  })

  it('learns a peer-reflexive local candidate from XOR-MAPPED-ADDRESS (§7.2.5.3.1)', () => {
    const core = makeCore()
    core.addRemoteCandidates([remote(6000)])
    const c = checks(core.start(0))[0]
    core.handle(BASE, respond(c, { address: '203.0.113.5', port: 40000 }), c.to, 20)
    expect(core.local.filter(l => l.type === 'prflx').map(l => [l.address, l.port, l.related?.port])).to.deep.equal([['203.0.113.5', 40000, HOST.port]])
  })

  it('fails a pair whose response comes from elsewhere (non-symmetric, §7.2.5.2.1)', () => {
    const core = makeCore()
    core.addRemoteCandidates([remote(6000)])
    const c = checks(core.start(0))[0]
    core.handle(BASE, respond(c), { address: '10.0.0.2', port: 6999 }, 20)
    expect(core.checks.pairs[0]).to.include({ state: 'failed', outcome: 'non-symmetric' })
  })

  it('ignores a success response with a bad MESSAGE-INTEGRITY: the check goes on and the genuine answer counts', () => {
    const core = makeCore()
    core.addRemoteCandidates([remote(6000)])
    const c = checks(core.start(0))[0]
    const m = decode(c)
    const forged = new MessageBuilder(m.method, MessageClass.SuccessResponse, m.transactionId).add(XorMappedAddress, c.to).integrity(Buffer.alloc(20, 7)).fingerprint().build()
    expect(core.handle(BASE, forged, c.to, 5)).to.deep.equal([])
    expect(core.checks.pairs[0].state).to.equal('in-progress')
    core.handle(BASE, respond(c), c.to, 8)
    expect(core.checks.pairs[0].state).to.equal('succeeded')
  })

  it('never throws on a check whose attribute does not decode (PRIORITY of 2 bytes): the datagram is dropped', () => {
    const core = makeCore()
    const bad = new MessageBuilder(Method.Binding, MessageClass.Request).add(Username, `${LOCAL.ufrag}:${PEER.ufrag}`).addRaw(Priority.type, Buffer.from([1, 2])).add(IceControlled, 1n).integrity(LOCAL.key).fingerprint().build()
    expect(() => core.handle(BASE, bad, { address: '10.0.0.2', port: 6000 }, 1)).to.not.throw()
    expect(core.remote).to.deep.equal([])
  })

  describe('role conflicts (§7.2.5.1, §7.3.1.1)', () => {
    it('keeps the controlling role and answers 487 to a controlling peer with a smaller tie-breaker', () => {
      const core = makeCore({ role: 'controlling', tiebreaker: 100n })
      const out = sends(core.handle(BASE, peerCheck({ role: 'controlling', tiebreaker: 99n }), { address: '10.0.0.2', port: 6000 }, 0))
      expect(decode(out[0]).get(ErrorCode)?.code).to.equal(487)
      expect(core.role).to.equal('controlling')
    })

    it('switches to controlled for a controlling peer with a larger tie-breaker, and answers with success', () => {
      const core = makeCore({ role: 'controlling', tiebreaker: 100n })
      const out = sends(core.handle(BASE, peerCheck({ role: 'controlling', tiebreaker: 101n }), { address: '10.0.0.2', port: 6000 }, 0))
      expect(decode(out[0]).cls).to.equal(MessageClass.SuccessResponse)
      expect(core.role).to.equal('controlled')
    })

    it('switches role on a 487 response and retries the pair with the new role', () => {
      const core = makeCore({ role: 'controlling' })
      core.addRemoteCandidates([remote(6000)])
      const c = checks(core.start(0))[0]
      expect(roleOf(c)).to.equal('controlling')
      core.handle(BASE, respondError(c, 487), c.to, 10)
      expect(core.role).to.equal('controlled')
      expect(core.checks.pairs[0].state).to.equal('waiting')
      const retry = checks(core.tick(50))
      expect(retry.map(r => [r.to.port, roleOf(r)])).to.deep.equal([[6000, 'controlled']])
      expect(decode(retry[0]).get(Priority)).to.be.a('number')
    })
  })
})
