import { expect } from 'chai'
import { createHmac } from 'node:crypto'
import { rendezvousToken, verifyRendezvousToken } from '../../../src/rendezvous/token.js'
import { restApiPassword } from '../../../src/relay/credentials.js'
import { SECRET, T0 } from './harness.js'

describe('rendezvous token', () => {
  it('is EXPIRY:base64(HMAC-SHA1(secret, "EXPIRY:ID")), the TURN REST API password of "EXPIRY:ID"', () => {
    const token = rendezvousToken(SECRET, 'alice', 600, T0)
    const expiry = String(Math.floor(T0 / 1000) + 600)
    const mac = createHmac('sha1', SECRET).update(`${expiry}:alice`).digest('base64')
    expect(token).to.equal(`${expiry}:${mac}`)
    expect(token.slice(expiry.length + 1)).to.equal(restApiPassword(SECRET, `${expiry}:alice`))
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
