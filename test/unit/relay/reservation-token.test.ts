import { expect } from 'chai'
import { EvenPort, MessageClass, ReservationToken, XorRelayedAddress } from '../../../src/stun/index.js'
import { RESERVATION_SLOT_MS, checkReservationToken, reservationToken } from '../../../src/relay/reservation-token.js'
import { Harness, newCore } from './harness.js'

const SECRET = Buffer.alloc(32, 7)
const OTHER = Buffer.alloc(32, 8)

describe('stateless RESERVATION-TOKEN (worker processes)', () => {
  const now = 1_700_000_000_000
  it('names its port and family, and is good for one to two 30-second slots', () => {
    const t = reservationToken(SECRET, 4, 50001, now)
    expect(t).to.have.length(8)
    const r = checkReservationToken(SECRET, t, now)
    expect(r).to.include({ family: 4, port: 50001 })
    expect(r?.expiresAt).to.be.greaterThan(now + RESERVATION_SLOT_MS - 1).and.at.most(now + 2 * RESERVATION_SLOT_MS)
    expect(checkReservationToken(SECRET, t, now + RESERVATION_SLOT_MS)).to.not.equal(undefined)
    expect(checkReservationToken(SECRET, t, now + 2 * RESERVATION_SLOT_MS + 1)).to.equal(undefined)
  })

  const bad: Array<{ name: string, token: () => Uint8Array, secret?: Buffer }> = [
    { name: 'another secret', token: () => reservationToken(SECRET, 6, 50001, now), secret: OTHER },
    { name: 'a changed port', token: () => { const t = reservationToken(SECRET, 4, 50001, now); t.writeUInt16BE(50003, 0); return t } },
    { name: 'a changed family', token: () => { const t = reservationToken(SECRET, 4, 50001, now); t[2] = 6; return t } },
    { name: 'a flipped MAC bit', token: () => { const t = reservationToken(SECRET, 4, 50001, now); t[7] ^= 1; return t } },
    { name: 'an unknown family', token: () => { const t = reservationToken(SECRET, 4, 50001, now); t[2] = 5; return t } },
    { name: 'a short token', token: () => reservationToken(SECRET, 4, 50001, now).subarray(0, 7) }
  ]
  for (const b of bad) {
    it(`refuses ${b.name}`, () => {
      expect(checkReservationToken(b.secret ?? SECRET, b.token(), now)).to.equal(undefined)
    })
  }

  it('lets a second core with the same nonce secret honour a token the first issued, only when sharedReservations is on', () => {
    const issue = newCore({ nonceSecret: SECRET })
    issue.sharedReservations = true
    const first = new Harness(issue, { address: '198.51.100.7', port: 40000 }).allocate((b) => b.add(EvenPort, { reserve: true }))
    const port = first.res?.get(XorRelayedAddress)?.port as number
    const token = first.res?.get(ReservationToken) as Uint8Array
    expect(token).to.have.length(8)

    const other = newCore({ nonceSecret: SECRET })
    other.sharedReservations = true
    const second = new Harness(other, { address: '198.51.100.7', port: 40001 }).allocate((b) => b.add(ReservationToken, token))
    expect(second.res?.cls).to.equal(MessageClass.SuccessResponse)
    expect(second.res?.get(XorRelayedAddress)?.port).to.equal(port + 1)

    const stranger = newCore({ nonceSecret: OTHER })
    stranger.sharedReservations = true
    expect(Harness.errorCode(new Harness(stranger, { address: '198.51.100.7', port: 40002 }).allocate((b) => b.add(ReservationToken, token)).res)).to.equal(508)
    const off = newCore({ nonceSecret: SECRET })
    expect(Harness.errorCode(new Harness(off, { address: '198.51.100.7', port: 40003 }).allocate((b) => b.add(ReservationToken, token)).res)).to.equal(508)
  })
})
