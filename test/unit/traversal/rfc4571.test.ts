import { expect } from 'chai'
import fc from 'fast-check'
import { InvalidArgumentError, TransportError } from '../../../src/errors.js'
import { RFC4571_MAX_FRAME, Rfc4571Decoder, frameRfc4571 } from '../../../src/traversal/rfc4571.js'

describe('RFC 4571 framing', () => {
  it('prefixes a 16-bit big-endian length', () => {
    expect([...frameRfc4571(Uint8Array.of(1, 2, 3))]).to.deep.equal([0, 3, 1, 2, 3])
    expect([...frameRfc4571(new Uint8Array(0))]).to.deep.equal([0, 0])
    expect(frameRfc4571(new Uint8Array(300)).readUInt16BE(0)).to.equal(300)
  })

  it('refuses a packet over 65535 bytes', () => {
    expect(frameRfc4571(new Uint8Array(RFC4571_MAX_FRAME)).length).to.equal(RFC4571_MAX_FRAME + 2)
    expect(() => frameRfc4571(new Uint8Array(RFC4571_MAX_FRAME + 1))).to.throw(InvalidArgumentError)
  })

  const cases: Array<{ name: string, chunks: number[][], want: number[][], held: number }> = [
    { name: 'one frame in one chunk', chunks: [[0, 2, 7, 8]], want: [[7, 8]], held: 0 },
    { name: 'two frames in one chunk', chunks: [[0, 1, 9, 0, 2, 5, 6]], want: [[9], [5, 6]], held: 0 },
    { name: 'a length split across chunks', chunks: [[0], [2, 1], [2]], want: [[1, 2]], held: 0 },
    { name: 'a zero-length frame', chunks: [[0, 0, 0, 1, 4]], want: [[], [4]], held: 0 },
    { name: 'an incomplete frame held back', chunks: [[0, 5, 1, 2]], want: [], held: 4 }
  ]
  for (const c of cases) {
    it(`decodes ${c.name}`, () => {
      const d = new Rfc4571Decoder()
      const got = c.chunks.flatMap(ch => d.push(Uint8Array.from(ch)).map(b => [...b]))
      expect(got).to.deep.equal(c.want)
      expect(d.buffered).to.equal(c.held)
    })
  }

  it('says when the stream ended inside a frame', () => {
    const d = new Rfc4571Decoder()
    d.push(Uint8Array.of(0, 4, 1))
    expect(() => { d.end() }).to.throw(TransportError)
    expect(() => { new Rfc4571Decoder().end() }).to.not.throw()
  })

  it('returns every framed packet whole however the stream is cut (property)', () => {
    fc.assert(fc.property(fc.array(fc.uint8Array({ maxLength: 300 }), { maxLength: 8 }), fc.array(fc.integer({ min: 1, max: 50 }), { minLength: 1, maxLength: 20 }), (packets, cuts) => {
      const stream = Buffer.concat(packets.map(p => frameRfc4571(p)))
      const d = new Rfc4571Decoder()
      const out: Buffer[] = []
      let at = 0
      for (let i = 0; at < stream.length; i++) {
        const n = cuts[i % cuts.length]
        out.push(...d.push(stream.subarray(at, at + n)))
        at += n
      }
      expect(out.map(b => [...b])).to.deep.equal(packets.map(p => [...p]))
      expect(d.buffered).to.equal(0)
    }), { numRuns: 200 })
  })
})
