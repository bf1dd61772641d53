import { expect } from 'chai'
import { createHmac } from 'node:crypto'
import { rendezvousToken, verifyRendezvousToken } from '../../../src/rendezvous/token.js'
import { restApiPassword } from '../../../src/relay/credentials.js'
import { SECRET, T0 } from './harness.js'

describe('rendezvous token', () => {
  it('is EXPIRY:base64url(HMAC-SHA256(secret, "natkit-rendezvous-token-v1\\0EXPIRY\\0ID"))', () => {
    const token = rendezvousToken(SECRET, 'alice', 600, T0)
    const expiry = String(Math.floor(T0 / 1000) + 600)
    const mac = createHmac('sha256', SECRET).update(`natkit-rendezvous-token-v1\0${expiry}\0alice`).digest('base64url')
    expect(mac).to.have.length(43)
    expect(token).to.equal(`${expiry}:${mac}`)
  })

  it('is never the TURN REST API password of the same username, and that password is refused as a token', () => {
    const expiry = String(Math.floor(T0 / 1000) + 600)
    const token = rendezvousToken(SECRET, 'alice', 600, T0)
    const turnPassword = restApiPassword(SECRET, `${expiry}:alice`)
    expect(token.slice(expiry.length + 1)).to.not.equal(turnPassword)
    // A TURN credential for EXPIRY:alice replayed at the rendezvous as alice's token:
    expect(verifyRendezvousToken(SECRET, 'alice', `${expiry}:${turnPassword}`, { now: T0 })).to.deep.equal({ ok: false, reason: 'unauthorized' })
    // …also re-encoded as base64url, or as the SHA-256 variant of the REST formula without the label:
    const turnUrl = Buffer.from(turnPassword, 'base64').toString('base64url')
    expect(verifyRendezvousToken(SECRET, 'alice', `${expiry}:${turnUrl}`, { now: T0 }).ok).to.equal(false)
    const unlabelled = createHmac('sha256', SECRET).update(`${expiry}:alice`).digest('base64url')
    expect(verifyRendezvousToken(SECRET, 'alice', `${expiry}:${unlabelled}`, { now: T0 }).ok).to.equal(false)
  })

  it('refuses a token whose expiry is further ahead than maxAheadS (+ skew) as too_far_ahead', () => {
    const day = rendezvousToken(SECRET, 'alice', 86_400, T0)
    expect(verifyRendezvousToken(SECRET, 'alice', day, { now: T0 }).ok).to.equal(true)
    const dayAndSkew = rendezvousToken(SECRET, 'alice', 86_400 + 30, T0)
    expect(verifyRendezvousToken(SECRET, 'alice', dayAndSkew, { now: T0 }).ok).to.equal(true)
    const tooFar = rendezvousToken(SECRET, 'alice', 86_400 + 31, T0)
    expect(verifyRendezvousToken(SECRET, 'alice', tooFar, { now: T0 })).to.deep.equal({ ok: false, reason: 'too_far_ahead' })
    const year = rendezvousToken(SECRET, 'alice', 365 * 86_400, T0)
    expect(verifyRendezvousToken(SECRET, 'alice', year, { now: T0 })).to.deep.equal({ ok: false, reason: 'too_far_ahead' })
    // Configurable; and the same token becomes acceptable once the (injected) clock has moved on.
    expect(verifyRendezvousToken(SECRET, 'alice', year, { now: T0, maxAheadS: 400 * 86_400 }).ok).to.equal(true)
    expect(verifyRendezvousToken(SECRET, 'alice', year, { now: T0 + 364 * 86_400_000 }).ok).to.equal(true)
    const hour = rendezvousToken(SECRET, 'alice', 3600, T0)
    expect(verifyRendezvousToken(SECRET, 'alice', hour, { now: T0, maxAheadS: 600, skewS: 0 })).to.deep.equal({ ok: false, reason: 'too_far_ahead' })
  })

  it('says unauthorized, not too_far_ahead, for a forged far-future token', () => {
    const year = rendezvousToken('guess', 'alice', 365 * 86_400, T0)
    expect(verifyRendezvousToken(SECRET, 'alice', year, { now: T0 })).to.deep.equal({ ok: false, reason: 'unauthorized' })
  })

  it('verifies a fresh token for its id', () => {
    const v = verifyRendezvousToken(SECRET, 'alice', rendezvousToken(SECRET, 'alice', 60, T0), { now: T0 })
    expect(v).to.deep.equal({ ok: true, expiresAt: (Math.floor(T0 / 1000) + 60) * 1000 })
  })

  it('accepts any of several secrets (rotation)', () => {
    const token = rendezvousToken('new', 'alice', 60, T0)
    expect(verifyRendezvousToken(['old', 'new'], 'alice', token, { now: T0 }).ok).to.equal(true)
  })

  it('allows the clock skew after expiry, then says expired', () => {
    const token = rendezvousToken(SECRET, 'alice', 10, T0)
    expect(verifyRendezvousToken(SECRET, 'alice', token, { now: T0 + 10_000 + 29_000 }).ok).to.equal(true)
    expect(verifyRendezvousToken(SECRET, 'alice', token, { now: T0 + 10_000 + 31_000 })).to.deep.equal({ ok: false, reason: 'expired' })
    expect(verifyRendezvousToken(SECRET, 'alice', token, { now: T0 + 10_000 + 1000, skewS: 0 })).to.deep.equal({ ok: false, reason: 'expired' })
  })

  const token = rendezvousToken(SECRET, 'alice', 60, T0)
  const [expiry, mac] = [token.slice(0, token.indexOf(':')), token.slice(token.indexOf(':') + 1)]
  const flip = (s: string, i: number): string => s.slice(0, i) + (s[i] === 'A' ? 'B' : 'A') + s.slice(i + 1)
  const tampered: Array<[string, unknown, string]> = [
    ['another id', token, 'bob'],
    ['a changed expiry', `${Number(expiry) + 1000}:${mac}`, 'alice'],
    ['a flipped MAC character', `${expiry}:${flip(mac, 3)}`, 'alice'],
    ['a truncated MAC', `${expiry}:${mac.slice(0, 20)}`, 'alice'],
    ['a MAC truncated by one character', `${expiry}:${mac.slice(0, -1)}`, 'alice'],
    ['a MAC with one character appended', `${expiry}:${mac}A`, 'alice'],
    ['a MAC with base64 padding', `${expiry}:${mac}=`, 'alice'],
    ['an expiry with a leading zero', `0${expiry}:${mac}`, 'alice'],
    ['no MAC', `${expiry}:`, 'alice'],
    ['no expiry', `:${mac}`, 'alice'],
    ['a non-numeric expiry', `soon:${mac}`, 'alice'],
    ['no colon', mac, 'alice'],
    ['the wrong secret', rendezvousToken('other', 'alice', 60, T0), 'alice'],
    ['a number', 42, 'alice'],
    ['undefined', undefined, 'alice'],
    ['an overlong string', 'x'.repeat(1000), 'alice']
  ]
  for (const [name, t, id] of tampered) {
    it(`refuses ${name} as unauthorized`, () => {
      expect(verifyRendezvousToken(SECRET, id, t, { now: T0 })).to.deep.equal({ ok: false, reason: 'unauthorized' })
    })
  }

  it('says unauthorized, not expired, for a tampered expired token', () => {
    const old = rendezvousToken(SECRET, 'alice', 1, T0 - 3_600_000)
    expect(verifyRendezvousToken(SECRET, 'bob', old, { now: T0 })).to.deep.equal({ ok: false, reason: 'unauthorized' })
  })
})
