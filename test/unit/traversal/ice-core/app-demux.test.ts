import { expect } from 'chai'
import { MessageBuilder, MessageClass, Method } from '../../../../src/stun/index.js'
import { classifyIceDatagram, isStunDatagram } from '../../../../src/traversal/index.js'

describe('classifyIceDatagram (RFC 7983 demultiplexing on an ICE base)', () => {
  const stun = new MessageBuilder(Method.Binding, MessageClass.Indication).fingerprint().build()
  const cases: Array<{ name: string, bytes: Uint8Array, known: boolean, kind: string }> = [
    { name: 'a STUN indication from a known peer', bytes: stun, known: true, kind: 'stun' },
    { name: 'a STUN indication from anyone', bytes: stun, known: false, kind: 'stun' },
    { name: 'an RTP packet (0x80) from a known peer', bytes: Buffer.from('80600001000000640000abcd', 'hex'), known: true, kind: 'app' },
    { name: 'an RTCP packet (0x81, PT 200) from a known peer', bytes: Buffer.from('81c8000c', 'hex'), known: true, kind: 'app' },
    { name: 'a DTLS ClientHello (22) from a known peer', bytes: Buffer.from('16fefd0000', 'hex'), known: true, kind: 'app' },
    { name: 'ChannelData-shaped bytes (0x40) from a known peer', bytes: Buffer.from('40000004deadbeef', 'hex'), known: true, kind: 'app' },
    { name: 'a first byte 0-3 without the magic cookie', bytes: Buffer.alloc(24, 0), known: true, kind: 'app' },
    { name: 'a STUN header whose length field does not match', bytes: Buffer.concat([stun, Buffer.alloc(4)]), known: true, kind: 'app' },
    { name: 'a 0xFF byte (natkit\'s old framing) from a known peer', bytes: Buffer.from([0xff, 1, 2]), known: true, kind: 'app' },
    { name: 'an RTP packet from an unknown source', bytes: Buffer.from('8060000100000064', 'hex'), known: false, kind: 'ignore' },
    { name: 'an empty datagram', bytes: Buffer.alloc(0), known: true, kind: 'ignore' }
  ]
  for (const c of cases) {
    it(`${c.kind}: ${c.name}`, () => { expect(classifyIceDatagram(c.bytes, c.known)).to.equal(c.kind) })
  }

  it('isStunDatagram needs the 20-byte header', () => {
    expect(isStunDatagram(stun.subarray(0, 19))).to.equal(false)
    expect(isStunDatagram(stun)).to.equal(true)
  })
})
