import { expect } from 'chai'
import { InvalidArgumentError, StunDecodeError } from '../../../src/errors.js'
import * as A from '../../../src/stun/attributes/index.js'
import { MessageBuilder, MessageClass, Method, StunMessage, type AttributeCodec } from '../../../src/stun/index.js'

const ctx = { transactionId: Buffer.from('b7e7a701bc34d686fa87dfae', 'hex') }

/** Every codec with a representative value: each must survive encode → message → decode unchanged. */
const roundTrips: Array<{ codec: AttributeCodec<any>, value: unknown }> = [
  { codec: A.MappedAddress, value: { address: '192.0.2.1', port: 3478 } },
  { codec: A.MappedAddress, value: { address: '2001:db8::1', port: 65535 } },
  { codec: A.XorMappedAddress, value: { address: '203.0.113.9', port: 0 } },
  { codec: A.XorMappedAddress, value: { address: '2001:db8:1234:5678:11:2233:4455:6677', port: 32853 } },
  { codec: A.AlternateServer, value: { address: '198.51.100.2', port: 5349 } },
  { codec: A.ResponseOrigin, value: { address: '198.51.100.2', port: 3478 } },
  { codec: A.OtherAddress, value: { address: '2001:db8::2', port: 3479 } },
  { codec: A.SourceAddress, value: { address: '198.51.100.3', port: 1 } },
  { codec: A.ChangedAddress, value: { address: '198.51.100.4', port: 2 } },
  { codec: A.ResponseAddress, value: { address: '198.51.100.5', port: 3 } },
  { codec: A.ReflectedFrom, value: { address: '198.51.100.6', port: 4 } },
  { codec: A.XorPeerAddress, value: { address: '::ffff:192.0.2.1', port: 9 } },
  { codec: A.XorRelayedAddress, value: { address: '192.0.2.200', port: 49152 } },
  { codec: A.Username, value: 'alice:bob' },
  { codec: A.Userhash, value: Buffer.alloc(32, 7) },
  { codec: A.Realm, value: 'example.org' },
  { codec: A.Nonce, value: 'obMatJos2gAAAxyz' },
  { codec: A.Software, value: 'natkit 0.1 \u00e9' },
  { codec: A.AlternateDomain, value: 'turn.example.org' },
  { codec: A.MessageIntegrity, value: Buffer.alloc(20, 1) },
  { codec: A.MessageIntegritySha256, value: Buffer.alloc(32, 2) },
  { codec: A.Fingerprint, value: 0xdeadbeef },
  { codec: A.ErrorCode, value: { code: 438, reason: 'Stale Nonce' } },
  { codec: A.ErrorCode, value: { code: 300, reason: '' } },
  { codec: A.UnknownAttributes, value: [0x7777, 0x0003] },
  { codec: A.PasswordAlgorithms, value: [{ algorithm: 1, parameters: Buffer.alloc(0) }, { algorithm: 2, parameters: Buffer.from([1, 2, 3]) }] },
  { codec: A.PasswordAlgorithm, value: { algorithm: 2, parameters: Buffer.alloc(0) } },
  { codec: A.ChangeRequest, value: { ip: true, port: false } },
  { codec: A.ChangeRequest, value: { ip: false, port: true } },
  { codec: A.ResponsePort, value: 40000 },
  { codec: A.Padding, value: Buffer.alloc(13) },
  { codec: A.ChannelNumber, value: 0x4001 },
  { codec: A.Lifetime, value: 600 },
  { codec: A.Data, value: Buffer.from('hello') },
  { codec: A.RequestedTransport, value: A.TransportProtocol.UDP },
  { codec: A.RequestedAddressFamily, value: 6 },
  { codec: A.AdditionalAddressFamily, value: 6 },
  { codec: A.AddressErrorCode, value: { family: 6, code: 440, reason: 'Address Family not Supported' } },
  { codec: A.EvenPort, value: { reserve: true } },
  { codec: A.DontFragment, value: true },
  { codec: A.ReservationToken, value: Buffer.from('01234567') },
  { codec: A.Icmp, value: { icmpType: 3, icmpCode: 1, errorData: 1280 } },
  { codec: A.ConnectionId, value: 0x12345678 },
  { codec: A.Priority, value: 0x6e0001ff },
  { codec: A.UseCandidate, value: true },
  { codec: A.IceControlled, value: 0xfedcba9876543210n },
  { codec: A.IceControlling, value: 1n }
]

function norm (v: unknown): unknown {
  if (v instanceof Uint8Array) return Buffer.from(v).toString('hex')
  if (typeof v === 'bigint') return `${v}n`
  if (Array.isArray(v)) return v.map(norm)
  if (v !== null && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, norm(x)]))
  return v
}

describe('attribute codecs', () => {
  for (const { codec, value } of roundTrips) {
    it(`${codec.name} round-trips ${JSON.stringify(norm(value))}`, () => {
      const bytes = new MessageBuilder(Method.Binding, MessageClass.Request, ctx.transactionId).add(codec, value).build()
      const m = StunMessage.decode(bytes)
      expect(norm(m.get(codec))).to.deep.equal(norm(value))
      expect(bytes.length % 4).to.equal(0)
    })
  }

  it('XOR-MAPPED-ADDRESS differs on the wire from MAPPED-ADDRESS for the same endpoint', () => {
    const ep = { address: '192.0.2.1', port: 32853 }
    expect(Buffer.from(A.XorMappedAddress.encode(ep, ctx)).toString('hex')).to.equal('0001a147e112a643')
    expect(Buffer.from(A.MappedAddress.encode(ep, ctx)).toString('hex')).to.equal('00018055c0000201')
  })

  const malformed: Array<{ codec: AttributeCodec<any>, bytes: number[] }> = [
    { codec: A.MappedAddress, bytes: [0, 1, 0] },
    { codec: A.MappedAddress, bytes: [0, 3, 0, 1, 1, 2, 3, 4] },
    { codec: A.MappedAddress, bytes: [0, 2, 0, 1, 1, 2, 3, 4] },
    { codec: A.XorMappedAddress, bytes: [0, 1, 0, 1, 1, 2, 3] },
    { codec: A.ErrorCode, bytes: [0, 0, 7, 0] },
    { codec: A.ErrorCode, bytes: [0, 0, 4, 100] },
    { codec: A.ErrorCode, bytes: [0, 0] },
    { codec: A.UnknownAttributes, bytes: [0, 1, 2] },
    { codec: A.Lifetime, bytes: [0, 0, 1] },
    { codec: A.ChangeRequest, bytes: [0, 0, 0, 4, 0] },
    { codec: A.UseCandidate, bytes: [1] },
    { codec: A.IceControlling, bytes: [1, 2, 3, 4] },
    { codec: A.MessageIntegrity, bytes: Array(19).fill(0) },
    { codec: A.MessageIntegritySha256, bytes: Array(18).fill(0) },
    { codec: A.PasswordAlgorithms, bytes: [0, 1, 0, 8, 1, 2] },
    { codec: A.RequestedAddressFamily, bytes: [3, 0, 0, 0] },
    { codec: A.EvenPort, bytes: [0x80, 0] },
    { codec: A.Icmp, bytes: [0, 0, 3] }
  ]
  for (const c of malformed) {
    it(`${c.codec.name} rejects ${Buffer.from(c.bytes).toString('hex') || 'empty'} with StunDecodeError`, () => {
      expect(() => c.codec.decode(Uint8Array.from(c.bytes), ctx)).to.throw(StunDecodeError, c.codec.name)
    })
  }

  it('refuses to encode values that cannot be written, with InvalidArgumentError', () => {
    expect(() => A.XorMappedAddress.encode({ address: 'not-an-ip', port: 1 }, ctx)).to.throw(InvalidArgumentError)
    expect(() => A.MappedAddress.encode({ address: '192.0.2.1', port: 70000 }, ctx)).to.throw(InvalidArgumentError)
    expect(() => A.ErrorCode.encode({ code: 200, reason: '' }, ctx)).to.throw(InvalidArgumentError)
    expect(() => A.Username.encode('x'.repeat(514), ctx)).to.throw(InvalidArgumentError)
    expect(() => A.Lifetime.encode(-1, ctx)).to.throw(InvalidArgumentError)
  })
})
