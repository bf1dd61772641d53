import { expect } from 'chai'
import fc from 'fast-check'
import { StunDecodeError } from '../../src/errors.js'
import { ipToBytes as ipBytes } from '../../src/net/ip.js'
import {
  ChangeRequest, decodeChannelData, ErrorCode, Lifetime, MessageBuilder, MessageClass, Method, Nonce, Realm, Software,
  StunMessage, StunServerCore, Username, XorMappedAddress, XorPeerAddress, readStreamFrame, type AttributeCodec
} from '../../src/stun/index.js'
import * as v from '../vectors/rfc5769.js'

const RUNS = 3000

/** Decoding must return a message or throw StunDecodeError — never anything else. */
function decodeOrTypedError (bytes: Uint8Array): void {
  try {
    const m = StunMessage.decode(bytes)
    // Touch every attribute through the generic paths the server uses.
    m.unknownComprehensionRequired()
    m.verifyFingerprint()
    m.verifyIntegrity(Buffer.from('k'))
    const codecs: Array<AttributeCodec<unknown>> = [XorMappedAddress, Username, Realm, Nonce, Software, ErrorCode, ChangeRequest, Lifetime, XorPeerAddress]
    for (const codec of codecs) {
      try { m.get(codec) } catch (err) { if (!(err instanceof StunDecodeError)) throw err }
    }
  } catch (err) {
    if (!(err instanceof StunDecodeError)) throw err
  }
}

const seeds = [v.SAMPLE_REQUEST, v.SAMPLE_IPV4_RESPONSE, v.SAMPLE_IPV6_RESPONSE, v.SAMPLE_LONG_TERM_REQUEST, v.SAMPLE_SHA256_REQUEST]

/** A valid message with some bytes overwritten, truncated or extended. */
const mutated = fc.tuple(
  fc.constantFrom(...seeds),
  fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 8 }),
  fc.integer({ min: -8, max: 8 })
).map(([seed, edits, resize]) => {
  let b = Buffer.from(seed)
  for (const [at, value] of edits) b[at % b.length] = value
  if (resize < 0) b = b.subarray(0, Math.max(0, b.length + resize))
  else if (resize > 0) b = Buffer.concat([b, Buffer.alloc(resize, 0x41)])
  return b
})

/** Random header-shaped bytes: a plausible header with a length that matches, and random attribute bytes. */
const framed = fc.uint8Array({ maxLength: 200 }).chain(body => fc.tuple(fc.integer({ min: 0, max: 0x3fff }), fc.boolean()).map(([type, cookie]) => {
  const len = body.length & ~3
  const b = Buffer.alloc(20 + len)
  b.writeUInt16BE(type, 0); b.writeUInt16BE(len, 2)
  if (cookie) b.writeUInt32BE(0x2112a442, 4)
  b.set(body.subarray(0, len), 20)
  return b
}))

describe('fuzz: STUN decoding', () => {
  it('random bytes decode or throw only StunDecodeError', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => { decodeOrTypedError(bytes) }), { numRuns: RUNS })
  })
  it('mutated RFC 5769 vectors decode or throw only StunDecodeError', () => {
    fc.assert(fc.property(mutated, (bytes) => { decodeOrTypedError(bytes) }), { numRuns: RUNS })
  })
  it('well-framed random messages decode or throw only StunDecodeError', () => {
    fc.assert(fc.property(framed, (bytes) => { decodeOrTypedError(bytes) }), { numRuns: RUNS })
  })
  it('ChannelData and stream framing never throw anything but StunDecodeError', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 80 }), (bytes) => {
      try { decodeChannelData(bytes) } catch (err) { if (!(err instanceof StunDecodeError)) throw err }
      const f = readStreamFrame(Buffer.from(bytes))
      expect(['stun', 'channel-data', 'incomplete', 'invalid']).to.include(f.kind)
    }), { numRuns: RUNS })
  })
  it('the server core answers or ignores whatever arrives, and never fails internally (no 500)', () => {
    const core = new StunServerCore({ primary: { address: '127.0.0.1', port: 3478 }, alternate: { address: '127.0.0.2', port: 3479 } })
    fc.assert(fc.property(fc.oneof(mutated, framed, fc.uint8Array({ maxLength: 100 }), fc.constantFrom(...seeds)), (bytes) => {
      const action = core.handle(bytes, { address: '127.0.0.1', port: 5 }, { address: '127.0.0.1', port: 3478 })
      expect(['send', 'ignore']).to.include(action.type)
      if (action.type === 'send') {
        const response = StunMessage.decode(action.data)
        expect(response.get(ErrorCode)?.code, 'an internal error answered as 500').to.not.equal(500)
      }
    }), { numRuns: RUNS })
    expect(core.stats.internalErrors).to.equal(0)
    // Not vacuous: the generators reach the request handler, and some inputs are answered.
    expect(core.stats.requests).to.be.greaterThan(300)
    expect(core.stats.responses + core.stats.errorResponses).to.be.greaterThan(300)
  })
})

describe('property: encode then decode is the identity', () => {
  const endpoint = fc.oneof(fc.ipV4(), fc.ipV6()).chain(address => fc.integer({ min: 0, max: 65535 }).map(port => ({ address, port })))
  it('for messages with addresses, text, error codes and integrity', () => {
    fc.assert(fc.property(
      fc.constantFrom(Method.Binding, Method.Allocate, Method.Refresh, Method.CreatePermission),
      fc.constantFrom(MessageClass.Request, MessageClass.SuccessResponse, MessageClass.ErrorResponse),
      endpoint, fc.string({ maxLength: 60 }), fc.integer({ min: 300, max: 699 }), fc.boolean(),
      (method, cls, ep, text, code, integrity) => {
        const key = Buffer.from('fuzz-key')
        const b = new MessageBuilder(method, cls).add(XorPeerAddress, ep).add(Software, text).add(ErrorCode, { code, reason: text })
        if (integrity) b.integrity(key)
        const m = StunMessage.decode(b.fingerprint().build())
        expect(m.method).to.equal(method)
        expect(m.cls).to.equal(cls)
        const got = m.require(XorPeerAddress)
        expect(got.port).to.equal(ep.port)
        expect(Buffer.compare(ipBytes(got.address), ipBytes(ep.address))).to.equal(0)
        expect(m.get(Software)).to.equal(text)
        expect(m.get(ErrorCode)).to.deep.equal({ code, reason: text })
        expect(m.verifyFingerprint()).to.equal(true)
        expect(m.verifyIntegrity(key)).to.equal(integrity)
      }), { numRuns: 1000 })
  })
})

