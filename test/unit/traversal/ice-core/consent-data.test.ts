import { expect } from 'chai'
import { StunMessage, shortTermKey } from '../../../../src/stun/index.js'
import type { IceAction } from '../../../../src/traversal/ice-core/types.js'
import { BASE, LOCAL, PEER, checks, makeCore, peerCheck, remote, respond, runUntil, sends, usernameOf } from './harness.js'

const RTP = Buffer.from([0x80, 0x60, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1])

/** A core with one working, selected pair to 10.0.0.2:6000 (selected at t=10). */
function connected (o: Parameters<typeof makeCore>[0] = {}): ReturnType<typeof makeCore> {
  const core = makeCore({ role: 'controlled', ...o })
  core.addRemoteCandidates([remote(6000)])
  const c = checks(core.start(0))[0]
  core.handle(BASE, respond(c), c.to, 10)
  expect(core.path()?.remote.port).to.equal(6000)
  return core
}

describe('IceCore consent freshness (RFC 7675; deterministic time)', () => {
  it('sends consent requests at randomized intervals of 0.8-1.2 × Tc', () => {
    const rolls = [0, 0.5, 0.999, 0.25]
    const core = connected({ consentIntervalMs: 5000, random: () => rolls.shift() ?? 0.5 })
    const at: number[] = []
    runUntil(core, 20_000, (now, actions) => {
      for (const c of checks(actions)) { at.push(Math.round(now)); core.handle(BASE, respond(c), c.to, now) }
    })
    // start(0) drew 0 → first at 4000; then 0.5 → +5000, 0.999 → +5998, 0.25 → +4500.
    expect(at).to.deep.equal([4000, 9000, 14998, 19498])
  })

  it('keeps consent while responses come, and fails the path 30 s after the last response', () => {
    const core = connected({ consentIntervalMs: 5000, consentTimeoutMs: 30_000, random: () => 0 })
    let answering = true
    let failedAt: number | undefined
    runUntil(core, 120_000, (now, actions: IceAction[]) => {
      for (const c of checks(actions)) if (answering) core.handle(BASE, respond(c), c.to, now)
      if (now >= 20_000) answering = false
      for (const a of actions) if (a.type === 'pair' && a.pair.state === 'failed') failedAt ??= now
    })
    // Last answered consent request at 20 000 (every 4000 ms from 4000); checked every 4000 ms, lost past 50 000.
    expect(failedAt).to.equal(52_000)
    expect(core.checks.pairs[0]).to.include({ state: 'failed', outcome: 'timeout' })
    expect(core.path()).to.equal(undefined)
    expect(core.state).to.equal('checking')
  })
})

describe('IceCore application data (RFC 7983, RFC 8445 §11)', () => {
  it('delivers non-STUN datagrams only over a pair an authenticated check proved', () => {
    const core = makeCore({ role: 'controlled' })
    core.addRemoteCandidates([remote(6000)])
    core.start(0)
    const from = { address: '10.0.0.2', port: 6000 }
    expect(core.handle(BASE, RTP, from, 1), 'a known candidate, but unchecked').to.deep.equal([])
    core.handle(BASE, peerCheck(), from, 2)
    const out = core.handle(BASE, RTP, from, 3)
    expect(out).to.deep.equal([{ type: 'data', component: 1, from, data: RTP }])
    expect(core.handle(BASE, RTP, { address: '10.0.0.3', port: 6000 }, 4), 'an unknown source').to.deep.equal([])
    expect(core.handle('host|10.9.9.9|1', RTP, from, 5), 'an unknown base').to.deep.equal([])
  })

  it('sends the app bytes raw on the selected pair, and nothing without one', () => {
    const core = makeCore()
    core.addRemoteCandidates([remote(6000)])
    expect(core.send(RTP)).to.equal(undefined)
    const c = checks(core.start(0))[0]
    core.handle(BASE, respond(c), c.to, 10)
    expect(core.send(RTP)).to.deep.equal({ type: 'send', base: BASE, to: c.to, data: RTP })
  })
})

describe('IceCore ICE restart (RFC 8445 §9; deterministic time)', () => {
  it('keeps the old path for data until a pair checked with the new credentials succeeds', () => {
    const core = connected()
    const from = { address: '10.0.0.2', port: 6000 }
    core.handle(BASE, peerCheck(), from, 11)
    const creds = core.restart({ ufrag: 'new1', pwd: 'new-password-new-passwd', key: shortTermKey('new-password-new-passwd') })
    expect(creds.ufrag).to.equal('new1')
    expect(core.restarting).to.equal(true)
    expect(checks(core.tick(1000)), 'checks wait for the peer\'s new credentials').to.deep.equal([])
    expect(core.send(Buffer.from([0x80, 1]))?.type, 'data still goes on the old pair').to.equal('send')
    expect(core.handle(BASE, Buffer.from([0x80, 2]), from, 1001).map(a => a.type), 'and still comes in').to.deep.equal(['data'])
    // A check with the old credentials is still answered (with the old key).
    const old = sends(core.handle(BASE, peerCheck(), from, 1002))
    expect(old.map(a => StunMessage.decode(a.data).verifyIntegrity(LOCAL.key))).to.deep.equal([true])
    core.setRemoteCredentials('peer2', PEER.pwd)
    const c = checks(core.tick(1050))[0]
    expect(usernameOf(c)).to.equal('peer2:new1')
    expect(core.restarting).to.equal(true)
    const out = core.handle(BASE, respond(c), c.to, 1060)
    expect(core.restarting).to.equal(false)
    expect(out.some(a => a.type === 'path')).to.equal(true)
    expect(core.path()?.remote.port).to.equal(6000)
  })
})
