import { expect } from 'chai'
import {
  IceControlled, MessageBuilder, MessageClass, Method, Nonce, Priority, Realm, Software, StunMessage, Username,
  Userhash, XorMappedAddress, PasswordAlgorithm, longTermKey, shortTermKey, userhash, prepareCredential,
  decodeNonceCookie, PasswordAlgorithmId
} from '../../src/stun/index.js'
import * as v from './rfc5769.js'

function tampered (bytes: Buffer, index: number): Buffer {
  const copy = Buffer.from(bytes)
  copy[index] ^= 0x01
  return copy
}

describe('RFC 5769 test vectors', () => {
  const shortKey = shortTermKey(v.SHORT_TERM_PASSWORD)

  describe('§2.1 sample request', () => {
    const msg = StunMessage.decode(v.SAMPLE_REQUEST)
    it('decodes every attribute', () => {
      expect(msg.method).to.equal(Method.Binding)
      expect(msg.cls).to.equal(MessageClass.Request)
      expect(msg.transactionId.toString('hex')).to.equal('b7e7a701bc34d686fa87dfae')
      expect(msg.get(Software)).to.equal('STUN test client')
      expect(msg.get(Priority)).to.equal(0x6e0001ff)
      expect(msg.get(IceControlled)).to.equal(0x932ff9b151263b36n)
      expect(msg.get(Username)).to.equal('evtj:h6vY')
    })
    it('verifies MESSAGE-INTEGRITY and FINGERPRINT', () => {
      expect(msg.verifyIntegrity(shortKey)).to.equal(true)
      expect(msg.verifyFingerprint()).to.equal(true)
    })
    it('rejects a wrong password', () => {
      expect(msg.verifyIntegrity(shortTermKey('VOkJxbRl1RmTxUk/WvJxBu'))).to.equal(false)
    })
    it('re-encodes byte for byte (padding aside: RFC 8489 pads with zeros, the vector with spaces)', () => {
      const built = new MessageBuilder(Method.Binding, MessageClass.Request, msg.transactionId)
        .add(Software, 'STUN test client').add(Priority, 0x6e0001ff).add(IceControlled, 0x932ff9b151263b36n)
        .add(Username, 'evtj:h6vY').integrity(shortKey).fingerprint().build()
      const expected = Buffer.from(v.SAMPLE_REQUEST)
      expected.fill(0, 69, 72) // the vector's USERNAME padding is 0x20; the HMAC covers it, so compare up to it
      expect(built.subarray(0, 69)).to.deep.equal(expected.subarray(0, 69))
      expect(StunMessage.decode(built).verifyIntegrity(shortKey)).to.equal(true)
      expect(StunMessage.decode(built).verifyFingerprint()).to.equal(true)
    })
  })

  const responses = [
    { name: '§2.2 IPv4 response', bytes: v.SAMPLE_IPV4_RESPONSE, mapped: { address: '192.0.2.1', port: 32853 } },
    { name: '§2.3 IPv6 response', bytes: v.SAMPLE_IPV6_RESPONSE, mapped: { address: '2001:db8:1234:5678:11:2233:4455:6677', port: 32853 } }
  ]
  for (const c of responses) {
    describe(c.name, () => {
      const msg = StunMessage.decode(c.bytes)
      it('decodes XOR-MAPPED-ADDRESS', () => {
        expect(msg.cls).to.equal(MessageClass.SuccessResponse)
        expect(msg.get(XorMappedAddress)).to.deep.equal(c.mapped)
        expect(msg.get(Software)).to.equal('test vector')
      })
      it('verifies MESSAGE-INTEGRITY and FINGERPRINT', () => {
        expect(msg.verifyIntegrity(shortKey)).to.equal(true)
        expect(msg.verifyFingerprint()).to.equal(true)
      })
      it('re-encodes byte for byte', () => {
        const built = new MessageBuilder(Method.Binding, MessageClass.SuccessResponse, msg.transactionId)
          .add(Software, 'test vector').add(XorMappedAddress, c.mapped).integrity(shortKey).fingerprint().build()
        // The vector pads SOFTWARE with 0x20; RFC 8489 pads with zeros. Patch the one padding byte to compare.
        built[35] = 0x20
        expect(StunMessage.decode(built).get(XorMappedAddress)).to.deep.equal(c.mapped)
        expect(built.subarray(0, built.length - 32)).to.deep.equal(c.bytes.subarray(0, built.length - 32))
      })
      it('rejects any tampered byte after the header', () => {
        for (const index of [25, 30, 44, c.bytes.length - 20]) {
          const bad = StunMessage.decode(tampered(c.bytes, index))
          expect(bad.verifyIntegrity(shortKey), `byte ${index}`).to.equal(false)
          expect(bad.verifyFingerprint(), `byte ${index}`).to.equal(false)
        }
      })
    })
  }

  describe('§2.4 long-term credentials', () => {
    const msg = StunMessage.decode(v.SAMPLE_LONG_TERM_REQUEST)
    it('decodes USERNAME, NONCE, REALM', () => {
      expect(msg.get(Username)).to.equal(v.LONG_TERM_USERNAME)
      expect(msg.get(Nonce)).to.equal('f//499k954d6OL34oL9FSTvy64sA')
      expect(msg.get(Realm)).to.equal(v.LONG_TERM_REALM)
    })
    it('prepares the password with SASLprep to TheMatrIX', () => {
      expect(prepareCredential(v.LONG_TERM_PASSWORD)).to.equal('TheMatrIX')
    })
    it('verifies MESSAGE-INTEGRITY with the MD5 long-term key', () => {
      const key = longTermKey(v.LONG_TERM_USERNAME, v.LONG_TERM_REALM, v.LONG_TERM_PASSWORD)
      expect(msg.verifyIntegrity(key)).to.equal(true)
      expect(StunMessage.decode(tampered(v.SAMPLE_LONG_TERM_REQUEST, 50)).verifyIntegrity(key)).to.equal(false)
    })
  })

  describe('RFC 8489 B.1 SHA-256 request', () => {
    const msg = StunMessage.decode(v.SAMPLE_SHA256_REQUEST)
    it('decodes USERHASH, the nonce cookie and PASSWORD-ALGORITHM', () => {
      expect(Buffer.from(msg.require(Userhash))).to.deep.equal(userhash(v.LONG_TERM_USERNAME, v.LONG_TERM_REALM))
      expect(msg.require(PasswordAlgorithm).algorithm).to.equal(PasswordAlgorithmId.SHA256)
      expect(decodeNonceCookie(msg.require(Nonce))).to.deep.equal({ passwordAlgorithms: false, usernameAnonymity: false })
    })
    it('verifies MESSAGE-INTEGRITY-SHA256 with the SHA-256 long-term key, not the MD5 one', () => {
      const sha = longTermKey(v.LONG_TERM_USERNAME, v.LONG_TERM_REALM, v.LONG_TERM_PASSWORD, 'sha256')
      expect(msg.verifyIntegrity(sha)).to.equal(true)
      expect(msg.verifyIntegrity(longTermKey(v.LONG_TERM_USERNAME, v.LONG_TERM_REALM, v.LONG_TERM_PASSWORD, 'md5'))).to.equal(false)
      expect(StunMessage.decode(tampered(v.SAMPLE_SHA256_REQUEST, 140)).verifyIntegrity(sha)).to.equal(false)
    })
  })
})
