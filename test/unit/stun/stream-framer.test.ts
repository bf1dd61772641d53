import { expect } from 'chai'
import { MessageBuilder, MessageClass, Method, encodeChannelData } from '../../../src/stun/index.js'
import { StreamFramer } from '../../../src/stun/stream-framer.js'

describe('StreamFramer', () => {
  const stun = new MessageBuilder(Method.Binding, MessageClass.Request).fingerprint().build()
  const cd = encodeChannelData(0x4001, Buffer.from('abcde'), { pad: true })

  it('cuts frames from chunks split at every byte, and keeps what follows the last whole frame', () => {
    const stream = Buffer.concat([stun, cd, stun, Buffer.from([1, 2, 3])])
    const framer = new StreamFramer('stun-or-channel-data')
    const kinds: string[] = []
    const lengths: number[] = []
    for (let i = 0; i < stream.length; i++) {
      framer.push(stream.subarray(i, i + 1))
      for (let n = 0; n < 10; n++) {
        const f = framer.next()
        if (f.kind === 'incomplete') break
        if (f.kind === 'invalid') throw new Error(`invalid at byte ${i}: ${f.reason}`)
        kinds.push(f.kind); lengths.push(f.frame.length)
      }
    }
    expect(kinds).to.deep.equal(['stun', 'channel-data', 'stun'])
    // The ChannelData frame is cut without its padding; the stream advanced past it.
    expect(lengths).to.deep.equal([stun.length, 9, stun.length])
    expect(framer.buffered).to.equal(3)
    expect([...framer.take()]).to.deep.equal([1, 2, 3])
    expect(framer.buffered).to.equal(0)
    expect(framer.next()).to.deep.equal({ kind: 'incomplete' })
  })

  it('reports ChannelData on a STUN-only stream, and any byte that starts neither, as invalid at the first byte', () => {
    const stunOnly = new StreamFramer('stun')
    stunOnly.push(cd.subarray(0, 1))
    expect(stunOnly.next().kind).to.equal('invalid')
    const relay = new StreamFramer('stun-or-channel-data')
    relay.push(Buffer.from([0xff]))
    const f = relay.next()
    expect(f.kind).to.equal('invalid')
    if (f.kind === 'invalid') expect(f.reason).to.match(/first byte 0xff/)
    // Invalid leaves the buffer alone (the caller closes the stream).
    expect(relay.buffered).to.equal(1)
  })

  it('reads RFC 5766 channel numbers (first byte 0x50-0x7F) only when asked', () => {
    const legacy = encodeChannelData(0x7000, Buffer.from('abcd'), { pad: true, legacyChannels: true })
    const framer = new StreamFramer('stun-or-channel-data')
    framer.push(legacy)
    expect(framer.next().kind).to.equal('invalid')
    expect(framer.next({ legacyChannels: true })).to.include({ kind: 'channel-data', length: 8 })
  })
})
