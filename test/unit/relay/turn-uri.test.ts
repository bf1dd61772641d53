import { expect } from 'chai'
import { InvalidArgumentError } from '../../../src/errors.js'
import { parseTurnUri } from '../../../src/relay/turn-uri.js'

describe('parseTurnUri (RFC 7065)', () => {
  const cases = [
    ['203.0.113.1:3478', { server: '203.0.113.1:3478', transport: 'udp', tcpFallback: true }],
    ['turn:203.0.113.1', { server: '203.0.113.1', transport: 'udp', tcpFallback: true }],
    ['turn:203.0.113.1:443?transport=udp', { server: '203.0.113.1:443', transport: 'udp' }],
    ['turn:203.0.113.1:443?transport=tcp', { server: '203.0.113.1:443', transport: 'tcp' }],
    ['TURN:turn.example.org?transport=UDP', { server: 'turn.example.org', transport: 'udp' }],
    ['turns:turn.example.org:443', { server: 'turn.example.org:443', transport: 'tls' }],
    ['turns:turn.example.org:443?transport=tcp', { server: 'turn.example.org:443', transport: 'tls' }],
    ['turn:[2001:db8::1]:3478', { server: '[2001:db8::1]:3478', transport: 'udp', tcpFallback: true }]
  ] as const
  for (const [text, want] of cases) it(`parses ${text}`, () => { expect(parseTurnUri(text)).to.deep.equal(want) })
  it('gives a plain HOST:PORT the default transport, with the TCP fallback only for UDP', () => {
    expect(parseTurnUri('203.0.113.1:443', 'tcp')).to.deep.equal({ server: '203.0.113.1:443', transport: 'tcp' })
  })
  for (const bad of ['http://x', 'turn:x?transport=sctp', 'turns:x?transport=udp']) {
    it(`rejects ${bad}`, () => { expect(() => parseTurnUri(bad)).to.throw(InvalidArgumentError) })
  }
})
