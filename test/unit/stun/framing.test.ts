import { expect } from 'chai'
import { InvalidArgumentError, StunDecodeError } from '../../../src/errors.js'
import {
  classifyPacket, decodeChannelData, encodeChannelData, MessageBuilder, MessageClass, Method, readStreamFrame
} from '../../../src/stun/index.js'
import { resolveRetransmit, udpSchedule } from '../../../src/stun/retransmit.js'

describe('ChannelData', () => {
  it('round-trips without padding (UDP) and with padding (TCP)', () => {
    const data = Buffer.from('hello')
    const udp = encodeChannelData(0x4000, data)
    expect(udp.length).to.equal(9)
    expect(decodeChannelData(udp)).to.deep.equal({ channel: 0x4000, data })
    const tcp = encodeChannelData(0x4fff, data, { pad: true })
    expect(tcp.length).to.equal(12)
    expect(Buffer.from(decodeChannelData(tcp).data)).to.deep.equal(data)
  })
  it('refuses channel numbers outside 0x4000-0x4FFF', () => {
    expect(() => encodeChannelData(0x3fff, Buffer.alloc(1))).to.throw(InvalidArgumentError)
    expect(() => encodeChannelData(0x5000, Buffer.alloc(1))).to.throw(InvalidArgumentError)
  })
  for (const [name, bytes] of [['a short header', [0x40, 0]], ['a length overrun', [0x40, 0, 0, 9, 1]], ['a STUN first byte', [0, 1, 0, 0]], ['too much trailing data', [0x40, 0, 0, 0, 1, 2, 3, 4]]] as const) {
    it(`rejects ${name}`, () => { expect(() => decodeChannelData(Uint8Array.from(bytes))).to.throw(StunDecodeError) })
  }
})

describe('demultiplexing (RFC 7983)', () => {
  const cases = [[0, 'stun'], [3, 'stun'], [20, 'dtls'], [63, 'dtls'], [64, 'channel-data'], [79, 'channel-data'], [80, 'other'], [128, 'rtp'], [191, 'rtp'], [200, 'other']] as const
  for (const [byte, kind] of cases) {
    it(`classifies first byte ${byte} as ${kind}`, () => { expect(classifyPacket(Uint8Array.of(byte, 0, 0, 0))).to.equal(kind) })
  }
  it('classifies an empty packet as other', () => { expect(classifyPacket(new Uint8Array(0))).to.equal('other') })

  it('cuts STUN and padded ChannelData frames from a stream, and waits for more when incomplete', () => {
    const stun = new MessageBuilder(Method.Binding, MessageClass.Request).fingerprint().build()
    const cd = encodeChannelData(0x4001, Buffer.from('abcde'), { pad: true })
    const stream = Buffer.concat([stun, cd, stun.subarray(0, 10)])
    const first = readStreamFrame(stream)
    expect(first).to.include({ kind: 'stun', length: stun.length })
    const second = readStreamFrame(stream.subarray(stun.length))
    expect(second).to.include({ kind: 'channel-data', length: 12 })
    if (second.kind === 'channel-data') expect(second.frame.length).to.equal(9)
    expect(readStreamFrame(stream.subarray(stun.length + 12))).to.deep.equal({ kind: 'incomplete' })
    expect(readStreamFrame(Buffer.from([0xff, 0, 0, 0])).kind).to.equal('invalid')
  })
})

describe('retransmission schedule (RFC 8489 §6.2.1)', () => {
  it('sends at 0, 500, 1500, 3500, 7500, 15500, 31500 ms and gives up at 39 500 ms by default', () => {
    expect(udpSchedule(resolveRetransmit())).to.deep.equal({ sends: [0, 500, 1500, 3500, 7500, 15500, 31500], timeout: 39500 })
  })
  it('honours Rc, RTO and Rm', () => {
    expect(udpSchedule(resolveRetransmit({ rtoMs: 100, rc: 3, rm: 2 }))).to.deep.equal({ sends: [0, 100, 300], timeout: 500 })
  })
  it('rejects settings that cannot work', () => {
    expect(() => resolveRetransmit({ rtoMs: 0 })).to.throw(InvalidArgumentError)
    expect(() => resolveRetransmit({ rc: 0 })).to.throw(InvalidArgumentError)
  })
})
