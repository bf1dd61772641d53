import { createHmac } from 'node:crypto'
import { expect } from 'chai'
import fc from 'fast-check'
import { AttrType, MessageClass, Method, StunMessage, Username, integrityLengthValid } from '../../../src/stun/index.js'
import { isAuthenticCheck } from '../../../src/traversal/ice-core/check-messages.js'

/**
 * Forged integrity attributes (RFC 8489 §14.5, §14.6): for random messages and keys, and every value length 0-64,
 * verification succeeds only for the exact MAC of a length the RFC allows. The oracle is node:crypto's HMAC over the
 * bytes as the RFC defines them, independent of natkit's integrity code.
 */

const MI = AttrType.MessageIntegrity
const MI256 = AttrType.MessageIntegritySha256

/** A Binding request with USERNAME, then an integrity attribute of `type` whose value is `value` (any length). */
function messageWith (username: string, type: number, value: Uint8Array): Buffer {
  const user = Buffer.from(username)
  const userPadded = (user.length + 3) & ~3
  const macPadded = (value.length + 3) & ~3
  const out = Buffer.alloc(20 + 4 + userPadded + 4 + macPadded)
  out.writeUInt16BE(0x0001, 0)
  out.writeUInt16BE(out.length - 20, 2)
  out.writeUInt32BE(0x2112a442, 4)
  out.fill(7, 8, 20)
  out.writeUInt16BE(AttrType.Username, 20); out.writeUInt16BE(user.length, 22); user.copy(out, 24)
  const at = 24 + userPadded
  out.writeUInt16BE(type, at); out.writeUInt16BE(value.length, at + 2); Buffer.from(value).copy(out, at + 4)
  return out
}

/** The MAC RFC 8489 defines for that attribute (length field as if the message ended after it), from node:crypto. */
function oracleMac (message: Buffer, type: number, length: number, key: Uint8Array): Buffer {
  const at = message.length - 4 - ((length + 3) & ~3)
  const covered = Buffer.from(message.subarray(0, at))
  covered.writeUInt16BE(at - 20 + 4 + length, 2)
  const mac = createHmac(type === MI ? 'sha1' : 'sha256', key).update(covered).digest()
  return type === MI ? mac : mac.subarray(0, Math.min(length, 32))
}

const allowed = (type: number, length: number): boolean =>
  type === MI ? length === 20 : length >= 16 && length <= 32 && length % 4 === 0

describe('integrity forgery', () => {
  describe('integrityLengthValid', () => {
    for (let length = 0; length <= 64; length++) {
      it(`MESSAGE-INTEGRITY of ${length} bytes is ${length === 20 ? 'allowed' : 'refused'}; -SHA256 ${allowed(MI256, length) ? 'allowed' : 'refused'}`, () => {
        expect(integrityLengthValid(MI, length)).to.equal(length === 20)
        expect(integrityLengthValid(MI256, length)).to.equal(allowed(MI256, length))
      })
    }
  })

  describe('StunMessage.verifyIntegrity', () => {
    it('a 0-byte MESSAGE-INTEGRITY-SHA256 never verifies (the reported forgery)', () => {
      const m = StunMessage.decode(messageWith('u', MI256, new Uint8Array(0)))
      expect(m.verifyIntegrity(Buffer.from('any key'))).to.equal(false)
    })

    it('verifies only the exact MAC of an allowed length, for every length 0-64, both attributes', () => {
      fc.assert(fc.property(
        fc.string({ minLength: 1, maxLength: 40 }), fc.uint8Array({ minLength: 1, maxLength: 64 }),
        fc.constantFrom(MI, MI256), fc.integer({ min: 0, max: 64 }),
        fc.constantFrom('exact', 'prefix-of-full', 'zeros', 'random', 'one-bit-flipped'), fc.uint8Array({ minLength: 64, maxLength: 64 }),
        (username, key, type, length, kind, noise) => {
          const placeholder = messageWith(username, type, new Uint8Array(length))
          const full = createHmac(type === MI ? 'sha1' : 'sha256', key)
          const truth = length <= (type === MI ? 20 : 32) ? oracleMac(placeholder, type, length, key) : undefined
          let value: Buffer
          switch (kind) {
            case 'exact': value = truth !== undefined && truth.length === length ? Buffer.from(truth) : Buffer.from(noise.subarray(0, length)); break
            case 'prefix-of-full': value = Buffer.concat([full.update(placeholder).digest(), Buffer.alloc(64)]).subarray(0, length); break
            case 'zeros': value = Buffer.alloc(length); break
            case 'random': value = Buffer.from(noise.subarray(0, length)); break
            default: value = truth !== undefined && truth.length === length ? Buffer.from(truth) : Buffer.from(noise.subarray(0, length))
              if (length > 0) value[length - 1] ^= 1
          }
          const message = messageWith(username, type, value)
          const correct = allowed(type, length) && truth !== undefined && truth.length === length && truth.equals(value)
          expect(StunMessage.decode(message).verifyIntegrity(key)).to.equal(correct)
        }), { numRuns: 4000 })
    })

    it('the exact MAC verifies at every allowed length (so the property above is not vacuous)', () => {
      const key = Buffer.from('long-term key')
      for (const [type, lengths] of [[MI, [20]], [MI256, [16, 20, 24, 28, 32]]] as const) {
        for (const length of lengths) {
          const mac = oracleMac(messageWith('alice', type, new Uint8Array(length)), type, length, key)
          expect(StunMessage.decode(messageWith('alice', type, mac)).verifyIntegrity(key), `${type} ${length}`).to.equal(true)
        }
      }
    })
  })

  describe('ICE connectivity checks (the agent\'s gate, isAuthenticCheck)', () => {
    it('accept only the exact short-term MAC, for every MESSAGE-INTEGRITY length 0-64', () => {
      fc.assert(fc.property(fc.string({ minLength: 4, maxLength: 8 }), fc.uint8Array({ minLength: 16, maxLength: 32 }),
        fc.integer({ min: 0, max: 64 }), fc.boolean(), fc.uint8Array({ minLength: 64, maxLength: 64 }),
        (ufrag, key, length, useTruth, noise) => {
          const username = `${ufrag}:peer`
          const placeholder = messageWith(username, MI, new Uint8Array(length))
          const truth = length <= 20 ? oracleMac(placeholder, MI, length, key) : undefined
          const value = useTruth && truth !== undefined ? truth.subarray(0, length) : Buffer.from(noise.subarray(0, length))
          const m = StunMessage.decode(messageWith(username, MI, value))
          expect(m.method).to.equal(Method.Binding)
          expect(m.cls).to.equal(MessageClass.Request)
          expect(m.get(Username)).to.equal(username)
          const correct = length === 20 && truth !== undefined && truth.equals(value)
          expect(isAuthenticCheck(m, ufrag, key)).to.equal(correct)
        }), { numRuns: 3000 })
    })
  })
})
