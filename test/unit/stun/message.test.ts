import { expect } from 'chai'
import { StunDecodeError } from '../../../src/errors.js'
import {
  AttrType, MessageBuilder, MessageClass, Method, Software, StunMessage, Username, XorMappedAddress, MappedAddress,
  encodeMessageType, decodeMessageType, describeType, shortTermKey
} from '../../../src/stun/index.js'

const TXID = Buffer.from('0102030405060708090a0b0c', 'hex')

function header (type: number, length: number, cookie = 0x2112a442): Buffer {
  const b = Buffer.alloc(20)
  b.writeUInt16BE(type, 0); b.writeUInt16BE(length, 2); b.writeUInt32BE(cookie, 4); TXID.copy(b, 8)
  return b
}

describe('StunMessage', () => {
  describe('message type', () => {
    const cases = [
      { name: 'Binding request', method: Method.Binding, cls: MessageClass.Request, type: 0x0001 },
      { name: 'Binding success', method: Method.Binding, cls: MessageClass.SuccessResponse, type: 0x0101 },
      { name: 'Binding error', method: Method.Binding, cls: MessageClass.ErrorResponse, type: 0x0111 },
      { name: 'Allocate request', method: Method.Allocate, cls: MessageClass.Request, type: 0x0003 },
      { name: 'Send indication', method: Method.Send, cls: MessageClass.Indication, type: 0x0016 },
      { name: 'Data indication', method: Method.Data, cls: MessageClass.Indication, type: 0x0017 },
      { name: 'ConnectionAttempt indication', method: Method.ConnectionAttempt, cls: MessageClass.Indication, type: 0x001c },
      { name: 'method 0xfff error', method: 0xfff, cls: MessageClass.ErrorResponse, type: 0x3fff }
    ]
    for (const c of cases) {
      it(`encodes and decodes ${c.name}`, () => {
        expect(encodeMessageType(c.method, c.cls)).to.equal(c.type)
        expect(decodeMessageType(c.type)).to.deep.equal({ method: c.method, cls: c.cls })
      })
    }
    it('describes a type in words', () => {
      expect(describeType(Method.Allocate, MessageClass.ErrorResponse)).to.equal('Allocate error response')
    })
  })

  describe('decode', () => {
    const bad: Array<{ name: string, bytes: Buffer, where: RegExp }> = [
      { name: 'an empty datagram', bytes: Buffer.alloc(0), where: /header/ },
      { name: 'a 1-byte datagram', bytes: Buffer.from([0]), where: /header/ },
      { name: '19 bytes', bytes: Buffer.alloc(19), where: /header/ },
      { name: 'the first two bits set', bytes: Buffer.concat([Buffer.from([0xc0, 1]), header(1, 0).subarray(2)]), where: /header/ },
      { name: 'a length that is not a multiple of 4', bytes: Buffer.concat([header(1, 2), Buffer.alloc(2)]), where: /header/ },
      { name: 'a length longer than the datagram', bytes: header(1, 8), where: /header/ },
      { name: 'a length shorter than the datagram', bytes: Buffer.concat([header(1, 0), Buffer.alloc(4)]), where: /header/ },
      { name: 'an attribute overrunning the message', bytes: Buffer.concat([header(1, 8), Buffer.from([0x80, 0x22, 0, 9, 0, 0, 0, 0])]), where: /SOFTWARE/ },
      { name: 'a truncated attribute header', bytes: Buffer.concat([header(1, 4), Buffer.from([0x80, 0x22, 0, 0])]).subarray(0, 22), where: /header/ },
      { name: 'an attribute after FINGERPRINT', bytes: Buffer.concat([header(1, 16), Buffer.from([0x80, 0x28, 0, 4, 1, 2, 3, 4, 0x80, 0x22, 0, 4, 0x41, 0x41, 0x41, 0x41])]), where: /follows FINGERPRINT/ }
    ]
    for (const c of bad) {
      it(`rejects ${c.name} with StunDecodeError`, () => {
        expect(() => StunMessage.decode(c.bytes)).to.throw(StunDecodeError, c.where)
      })
    }

    it('decodes a classic RFC 3489 message (no magic cookie)', () => {
      const bytes = Buffer.concat([header(0x0101, 12, 0xdeadbeef), Buffer.from([0, 1, 0, 8, 0, 1, 0x1f, 0x90, 192, 0, 2, 7])])
      const m = StunMessage.decode(bytes)
      expect(m.classic).to.equal(true)
      expect(m.get(MappedAddress)).to.deep.equal({ address: '192.0.2.7', port: 8080 })
      expect(m.transactionKey).to.equal(bytes.toString('latin1', 4, 20))
    })

    it('ignores attributes after MESSAGE-INTEGRITY except FINGERPRINT (RFC 8489 §14.5)', () => {
      const key = shortTermKey('secret')
      const built = new MessageBuilder(Method.Binding, MessageClass.Request, TXID).add(Username, 'u').integrity(key).build()
      const extra = Buffer.from([0x80, 0x22, 0, 4, 0x41, 0x41, 0x41, 0x41])
      const bytes = Buffer.concat([built, extra])
      bytes.writeUInt16BE(bytes.length - 20, 2)
      const m = StunMessage.decode(bytes)
      expect(m.get(Software)).to.equal(undefined)
      expect(m.verifyIntegrity(key)).to.equal(true)
    })

    it('reports unknown comprehension-required attributes once each, and not optional ones', () => {
      const m = StunMessage.decode(new MessageBuilder(Method.Binding, MessageClass.Request, TXID)
        .addRaw(0x7777, Buffer.alloc(4)).addRaw(0x7777, Buffer.alloc(0)).addRaw(0xc001, Buffer.alloc(4)).build())
      expect(m.unknownComprehensionRequired()).to.deep.equal([0x7777])
    })

    it('copies the input so that reusing the buffer cannot change the message', () => {
      const bytes = new MessageBuilder(Method.Binding, MessageClass.SuccessResponse, TXID).add(XorMappedAddress, { address: '192.0.2.1', port: 1 }).build()
      const m = StunMessage.decode(bytes)
      bytes.fill(0)
      expect(m.get(XorMappedAddress)).to.deep.equal({ address: '192.0.2.1', port: 1 })
    })

    it('require() throws a StunDecodeError naming the missing attribute', () => {
      const m = StunMessage.decode(header(1, 0))
      expect(() => m.require(XorMappedAddress)).to.throw(StunDecodeError, /XOR-MAPPED-ADDRESS/)
    })
  })

  describe('integrity and fingerprint', () => {
    it('a message without FINGERPRINT does not verify one', () => {
      expect(StunMessage.decode(header(1, 0)).verifyFingerprint()).to.equal(false)
    })
    it('a message without integrity does not verify', () => {
      expect(StunMessage.decode(header(1, 0)).verifyIntegrity(Buffer.from('k'))).to.equal(false)
    })
    it('verifies MESSAGE-INTEGRITY-SHA256 in preference to MESSAGE-INTEGRITY', () => {
      const key = Buffer.from('key')
      const bytes = new MessageBuilder(Method.Binding, MessageClass.Request, TXID).integrity(key).integritySha256(key).fingerprint().build()
      const m = StunMessage.decode(bytes)
      expect(m.has(AttrType.MessageIntegritySha256)).to.equal(true)
      expect(m.verifyIntegrity(key)).to.equal(true)
      expect(m.verifyFingerprint()).to.equal(true)
      bytes[bytes.length - 12] ^= 0xff // inside the SHA-256 HMAC
      expect(StunMessage.decode(bytes).verifyIntegrity(key)).to.equal(false)
    })
  })
})
