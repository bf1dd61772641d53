import { expect } from 'chai'
import { InvalidArgumentError } from '../../../src/errors.js'
import { ipv4Address, parseEndpoint, parseHostPort, formatEndpoint, sameTransportAddress } from '../../../src/net/endpoint.js'
import { bytesToIp, ipToBytes } from '../../../src/net/ip.js'

describe('ip', () => {
  const cases = [
    { text: '0.0.0.0', hex: '00000000' },
    { text: '192.0.2.255', hex: 'c00002ff' },
    { text: '::', hex: '0'.repeat(32) },
    { text: '::1', hex: '0'.repeat(31) + '1' },
    { text: '2001:db8::1', hex: '20010db8' + '0'.repeat(23) + '1' },
    { text: '2001:db8:0:1:1:1:1:1', hex: '20010db8000000010001000100010001' },
    { text: 'fe80::1:0:0:1', hex: 'fe800000000000000001000000000001' },
    { text: '::ffff:192.0.2.1', hex: '00000000000000000000ffffc0000201' }
  ]
  for (const c of cases) {
    it(`converts ${c.text} both ways`, () => {
      expect(ipToBytes(c.text).toString('hex')).to.equal(c.hex)
      expect(bytesToIp(Buffer.from(c.hex, 'hex'))).to.equal(c.text)
    })
  }
  it('prints the canonical RFC 5952 form (longest zero run, leftmost on a tie, lower case)', () => {
    expect(bytesToIp(ipToBytes('2001:0DB8:0000:0000:0001:0000:0000:0001'))).to.equal('2001:db8::1:0:0:1')
  })
  for (const bad of ['', '1.2.3', '1.2.3.256', '1.2.3.4.5', 'a.b.c.d', '1::2::3', 'example.org']) {
    it(`rejects ${JSON.stringify(bad)}`, () => { expect(() => ipToBytes(bad)).to.throw(InvalidArgumentError) })
  }
})

describe('endpoint parsing', () => {
  const cases = [
    { text: 'stun.example.org', host: 'stun.example.org', port: undefined },
    { text: 'stun.example.org:3478', host: 'stun.example.org', port: 3478 },
    { text: '192.0.2.1:1', host: '192.0.2.1', port: 1 },
    { text: '2001:db8::1', host: '2001:db8::1', port: undefined },
    { text: '[2001:db8::1]:5349', host: '2001:db8::1', port: 5349 },
    { text: '[::1]', host: '::1', port: undefined }
  ]
  for (const c of cases) {
    it(`parses ${c.text}`, () => { expect(parseHostPort(c.text)).to.deep.equal({ host: c.host, port: c.port }) })
  }
  for (const bad of ['', ':3478', 'host:99999', 'host:x', '[::1', '[::1]x']) {
    it(`rejects ${JSON.stringify(bad)} with a message saying what to write`, () => {
      expect(() => parseHostPort(bad)).to.throw(InvalidArgumentError)
    })
  }
  it('requires an IP literal for listen addresses', () => {
    expect(parseEndpoint('127.0.0.1', 3478)).to.deep.equal({ address: '127.0.0.1', port: 3478 })
    expect(() => parseEndpoint('localhost:1', 3478)).to.throw(InvalidArgumentError, /not an IP/)
  })
  it('brackets IPv6 when printing', () => {
    expect(formatEndpoint({ address: '::1', port: 3478 })).to.equal('[::1]:3478')
  })
})

describe('IPv4-mapped addresses', () => {
  it('reads ::ffff:a.b.c.d as a.b.c.d and leaves every other address alone', () => {
    expect(ipv4Address('::ffff:192.0.2.1')).to.equal('192.0.2.1')
    expect(ipv4Address('::FFFF:192.0.2.1')).to.equal('192.0.2.1')
    expect(ipv4Address('192.0.2.1')).to.equal('192.0.2.1')
    expect(ipv4Address('2001:db8::1')).to.equal('2001:db8::1')
    expect(ipv4Address('::ffff:999.0.0.1')).to.equal('::ffff:999.0.0.1')
  })
  it('compares transport addresses across the two spellings, port included', () => {
    expect(sameTransportAddress({ address: '::ffff:127.0.0.1', port: 5 }, { address: '127.0.0.1', port: 5 })).to.equal(true)
    expect(sameTransportAddress({ address: '::ffff:127.0.0.1', port: 5 }, { address: '127.0.0.1', port: 6 })).to.equal(false)
    expect(sameTransportAddress({ address: '127.0.0.2', port: 5 }, { address: '127.0.0.1', port: 5 })).to.equal(false)
  })
})
