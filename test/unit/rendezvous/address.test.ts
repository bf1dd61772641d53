import { expect } from 'chai'
import type { IncomingMessage } from 'node:http'
import { ipv4Address } from '../../../src/net/endpoint.js'
import { observedAddress, parseForwardedElement } from '../../../src/rendezvous/address.js'

const req = (remoteAddress: string, remotePort: number, xff?: string | string[]): IncomingMessage =>
  ({ socket: { remoteAddress, remotePort }, headers: xff === undefined ? {} : { 'x-forwarded-for': xff } }) as unknown as IncomingMessage

describe('rendezvous observed address', () => {
  it('unmaps IPv4-mapped IPv6 addresses', () => {
    expect(ipv4Address('::ffff:192.0.2.1')).to.equal('192.0.2.1')
    expect(ipv4Address('2001:db8::1')).to.equal('2001:db8::1')
  })

  const elements: Array<[string, { address: string, port: number } | undefined]> = [
    ['192.0.2.1', { address: '192.0.2.1', port: 0 }],
    [' 192.0.2.1:5000 ', { address: '192.0.2.1', port: 5000 }],
    ['2001:db8::1', { address: '2001:db8::1', port: 0 }],
    ['[2001:db8::1]:443', { address: '2001:db8::1', port: 443 }],
    ['"[2001:db8::1]"', { address: '2001:db8::1', port: 0 }],
    ['unknown', undefined],
    ['example.org', undefined],
    ['192.0.2.1:99999', undefined]
  ]
  for (const [text, want] of elements) {
    it(`parses X-Forwarded-For element ${JSON.stringify(text)}`, () => { expect(parseForwardedElement(text)).to.deep.equal(want) })
  }

  it('uses the TCP source unless the proxy is trusted, then the rightmost X-Forwarded-For element', () => {
    expect(observedAddress(req('::ffff:127.0.0.1', 5555, '198.51.100.1'), false)).to.deep.equal({ address: '127.0.0.1', port: 5555 })
    expect(observedAddress(req('127.0.0.1', 5555, '6.6.6.6, 198.51.100.1'), true)).to.deep.equal({ address: '198.51.100.1', port: 0 })
    expect(observedAddress(req('127.0.0.1', 5555, ['6.6.6.6', '198.51.100.2:7']), true)).to.deep.equal({ address: '198.51.100.2', port: 7 })
    expect(observedAddress(req('127.0.0.1', 5555, 'garbage'), true)).to.deep.equal({ address: '127.0.0.1', port: 5555 })
    expect(observedAddress(req('127.0.0.1', 5555), true)).to.deep.equal({ address: '127.0.0.1', port: 5555 })
  })
})
