import { expect } from 'chai'
import fc from 'fast-check'
import { createHash, createHmac } from 'node:crypto'
import { InvalidArgumentError } from '../../../src/errors.js'
import {
  decodeNonceCookie, encodeNonceCookie, longTermKey, prepareCredential, shortTermKey, userhash
} from '../../../src/stun/index.js'
import { HmacKey } from '../../../src/stun/integrity.js'
import { Sha1HmacKey } from '../../../src/stun/sha1-hmac.js'

describe('credentials', () => {
  describe('prepareCredential (SASLprep / OpaqueString)', () => {
    const cases = [
      { name: 'keeps ASCII as is', input: 'VOkJxbRl1RmTxUk/WvJxBt', output: 'VOkJxbRl1RmTxUk/WvJxBt' },
      { name: 'maps a soft hyphen to nothing', input: 'I\u00ADX', output: 'IX' },
      { name: 'maps a non-ASCII space to a space', input: 'a\u00A0b', output: 'a b' },
      { name: 'applies NFKC (RFC 5769 §2.4)', input: 'The\u00ADM\u00AAtr\u2168', output: 'TheMatrIX' },
      { name: 'keeps non-Latin letters', input: '\u30DE\u30C8\u30EA\u30C3\u30AF\u30B9', output: '\u30DE\u30C8\u30EA\u30C3\u30AF\u30B9' }
    ]
    for (const c of cases) it(c.name, () => { expect(prepareCredential(c.input)).to.equal(c.output) })
    for (const bad of ['a\u0007b', 'tab\there', 'priv\uE000', 'del\u007F']) {
      it(`rejects ${JSON.stringify(bad)}`, () => { expect(() => prepareCredential(bad)).to.throw(InvalidArgumentError) })
    }
  })

  it('derives the MD5 long-term key as MD5(user:realm:pass)', () => {
    expect(longTermKey('user', 'realm', 'pass')).to.deep.equal(createHash('md5').update('user:realm:pass').digest())
    expect(longTermKey('user', 'realm', 'pass', 'sha256')).to.deep.equal(createHash('sha256').update('user:realm:pass').digest())
    expect(shortTermKey('pass')).to.deep.equal(Buffer.from('pass'))
    expect(userhash('user', 'realm')).to.deep.equal(createHash('sha256').update('user:realm').digest())
  })

  it('HmacKey equals node:crypto HMAC for short, block-size and long keys', () => {
    for (const size of [0, 5, 16, 64, 65, 200]) {
      for (const hash of ['sha1', 'sha256'] as const) {
        const key = Buffer.alloc(size, 0x5a)
        const data = Buffer.from('message to authenticate')
        expect(new HmacKey(key, hash).digest(data.subarray(0, 3), data.subarray(3))).to.deep.equal(createHmac(hash, key).update(data).digest())
      }
    }
  })

  it('Sha1HmacKey equals node:crypto HMAC-SHA1 for random keys and messages of every length up to 300 bytes', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 150 }), fc.uint8Array({ maxLength: 300 }), fc.nat(300), (key, data, cut) => {
      const split = Math.min(cut, data.length)
      const ours = new Sha1HmacKey(key).digest(data.subarray(0, split), data.subarray(split))
      expect(ours.toString('hex')).to.equal(createHmac('sha1', key).update(data).digest('hex'))
    }), { numRuns: 2000 })
  })

  describe('nonce cookie (RFC 8489 §9.2)', () => {
    it('round-trips the feature bits', () => {
      for (const f of [{ passwordAlgorithms: true, usernameAnonymity: false }, { passwordAlgorithms: false, usernameAnonymity: true }, { passwordAlgorithms: true, usernameAnonymity: true }]) {
        const cookie = encodeNonceCookie(f)
        expect(cookie).to.have.length(13)
        expect(decodeNonceCookie(`${cookie}rest-of-nonce`)).to.deep.equal(f)
      }
    })
    it('finds no cookie in an RFC 5389 nonce', () => {
      expect(decodeNonceCookie('f//499k954d6OL34oL9FSTvy64sA')).to.equal(undefined)
      expect(decodeNonceCookie('obMatJos2')).to.equal(undefined)
    })
  })
})
