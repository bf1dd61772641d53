import { expect } from 'chai'
import { InvalidArgumentError } from '../../../src/errors.js'
import {
  AttrType, ChangeRequest, ChangedAddress, ErrorCode, MappedAddress, MessageBuilder, MessageClass, Method, OtherAddress,
  Padding, ResponseOrigin, ResponsePort, SourceAddress, StunMessage, StunServerCore, UnknownAttributes, XorMappedAddress,
  type ChangeRequestValue, type StunServerAction
} from '../../../src/stun/index.js'

const P = { address: '203.0.113.10', port: 3478 }
const A = { address: '203.0.113.11', port: 3479 }
const CLIENT = { address: '198.51.100.7', port: 40000 }

function request (build?: (b: MessageBuilder) => void): Buffer {
  const b = new MessageBuilder(Method.Binding, MessageClass.Request)
  build?.(b)
  return b.fingerprint().build()
}

function sent (action: StunServerAction): { via: unknown, to: unknown, message: StunMessage } {
  if (action.type !== 'send') throw new Error(`expected a send, got ignore ${action.reason}`)
  return { via: action.via, to: action.to, message: StunMessage.decode(action.data) }
}

describe('StunServerCore', () => {
  const core = new StunServerCore({ primary: P, alternate: A })

  it('lists the four RFC 5780 addresses', () => {
    expect(core.localAddresses()).to.deep.equal([P, { address: P.address, port: A.port }, { address: A.address, port: P.port }, A])
  })

  it('answers a Binding request with XOR-MAPPED-ADDRESS, MAPPED-ADDRESS, RESPONSE-ORIGIN and OTHER-ADDRESS', () => {
    const { via, to, message } = sent(core.handle(request(), CLIENT, P))
    expect(via).to.deep.equal(P)
    expect(to).to.deep.equal(CLIENT)
    expect(message.cls).to.equal(MessageClass.SuccessResponse)
    expect(message.get(XorMappedAddress)).to.deep.equal(CLIENT)
    expect(message.get(MappedAddress)).to.deep.equal(CLIENT)
    expect(message.get(ResponseOrigin)).to.deep.equal(P)
    expect(message.get(OtherAddress)).to.deep.equal(A)
    expect(message.verifyFingerprint()).to.equal(true)
  })

  const changes: Array<{ name: string, change: ChangeRequestValue, local: typeof P, via: typeof P }> = [
    { name: 'change IP and port from the primary', change: { ip: true, port: true }, local: P, via: A },
    { name: 'change port only', change: { ip: false, port: true }, local: P, via: { address: P.address, port: A.port } },
    { name: 'change IP only', change: { ip: true, port: false }, local: P, via: { address: A.address, port: P.port } },
    { name: 'change IP and port from the alternate', change: { ip: true, port: true }, local: A, via: P },
    { name: 'no change', change: { ip: false, port: false }, local: A, via: A }
  ]
  for (const c of changes) {
    it(`honours CHANGE-REQUEST: ${c.name}`, () => {
      const { via, message } = sent(core.handle(request(b => b.add(ChangeRequest, c.change)), CLIENT, c.local))
      expect(via).to.deep.equal(c.via)
      expect(message.get(ResponseOrigin)).to.deep.equal(c.via)
      expect(message.get(OtherAddress)).to.deep.equal(c.local === P ? A : P)
    })
  }

  it('sends to RESPONSE-PORT instead of the source port', () => {
    expect(sent(core.handle(request(b => b.add(ResponsePort, 5555)), CLIENT, P)).to).to.deep.equal({ address: CLIENT.address, port: 5555 })
  })

  it('pads the response with as many bytes as the request\'s PADDING', () => {
    const { message } = sent(core.handle(request(b => b.add(Padding, Buffer.alloc(500))), CLIENT, P))
    expect(message.get(Padding)).to.have.length(500)
  })

  const errors: Array<{ name: string, bytes: Buffer, code: number, server?: StunServerCore, reliable?: boolean, unknown?: number[] }> = [
    { name: 'PADDING with RESPONSE-PORT', bytes: request(b => b.add(Padding, Buffer.alloc(4)).add(ResponsePort, 1)), code: 400 },
    { name: 'an unknown comprehension-required attribute', bytes: request(b => b.addRaw(0x7001, Buffer.alloc(4))), code: 420, unknown: [0x7001] },
    { name: 'a method other than Binding', bytes: new MessageBuilder(Method.Allocate, MessageClass.Request).build(), code: 400 },
    { name: 'a malformed CHANGE-REQUEST', bytes: request(b => b.addRaw(AttrType.ChangeRequest, Buffer.alloc(2))), code: 400 },
    { name: 'CHANGE-REQUEST to a server without an alternate', bytes: request(b => b.add(ChangeRequest, { ip: true, port: false })), code: 420, server: new StunServerCore({ primary: P }), unknown: [AttrType.ChangeRequest] },
    { name: 'CHANGE-REQUEST over TCP', bytes: request(b => b.add(ChangeRequest, { ip: true, port: true })), code: 400, reliable: true }
  ]
  for (const c of errors) {
    it(`answers ${c.name} with ${c.code}`, () => {
      const { to, message } = sent((c.server ?? core).handle(c.bytes, CLIENT, P, c.reliable ?? false))
      expect(to).to.deep.equal(CLIENT)
      expect(message.cls).to.equal(MessageClass.ErrorResponse)
      expect(message.require(ErrorCode).code).to.equal(c.code)
      if (c.unknown !== undefined) expect(message.get(UnknownAttributes)).to.deep.equal(c.unknown)
    })
  }

  it('answers classic RFC 3489 clients with MAPPED-ADDRESS, SOURCE-ADDRESS and CHANGED-ADDRESS, echoing the 16-byte id', () => {
    const req = new MessageBuilder(Method.Binding, MessageClass.Request, Buffer.from('000102030405060708090a0b0c0d0e0f', 'hex'))
      .add(ChangeRequest, { ip: true, port: true }).build()
    const { via, message } = sent(core.handle(req, CLIENT, P))
    expect(message.classic).to.equal(true)
    expect(message.raw.subarray(4, 20)).to.deep.equal(req.subarray(4, 20))
    expect(via).to.deep.equal(A)
    expect(message.get(MappedAddress)).to.deep.equal(CLIENT)
    expect(message.get(SourceAddress)).to.deep.equal(A)
    expect(message.get(ChangedAddress)).to.deep.equal(A) // RFC 3489 §11.2.3: relative to where the request arrived
    expect(message.has(AttrType.XorMappedAddress)).to.equal(false)
  })

  const ignored: Array<{ name: string, bytes: Buffer, reason: string }> = [
    { name: 'a 1-byte datagram', bytes: Buffer.from([1]), reason: 'not-stun' },
    { name: 'ChannelData', bytes: Buffer.concat([Buffer.from([0x40, 0, 0, 16]), Buffer.alloc(16)]), reason: 'not-stun' },
    { name: 'a truncated message', bytes: request().subarray(0, 24), reason: 'malformed' },
    { name: 'a success response', bytes: new MessageBuilder(Method.Binding, MessageClass.SuccessResponse).build(), reason: 'not-a-request' },
    { name: 'an indication', bytes: new MessageBuilder(Method.Binding, MessageClass.Indication).build(), reason: 'not-a-request' },
    { name: 'a wrong FINGERPRINT', bytes: (() => { const b = request(); b[b.length - 1] ^= 1; return b })(), reason: 'bad-fingerprint' }
  ]
  for (const c of ignored) {
    it(`ignores ${c.name} (${c.reason}) and counts it`, () => {
      const before = core.stats.ignored[c.reason as keyof typeof core.stats.ignored]
      const action = core.handle(c.bytes, CLIENT, P)
      expect(action).to.include({ type: 'ignore', reason: c.reason })
      expect(core.stats.ignored[c.reason as keyof typeof core.stats.ignored]).to.equal(before + 1)
    })
  }

  it('refuses an alternate that shares the primary\'s IP or port', () => {
    expect(() => new StunServerCore({ primary: P, alternate: { address: P.address, port: 9 } })).to.throw(InvalidArgumentError)
    expect(() => new StunServerCore({ primary: P, alternate: { address: A.address, port: P.port } })).to.throw(InvalidArgumentError)
  })
})
