import { expect } from 'chai'
import { InvalidArgumentError } from '../../../src/errors.js'
import { PeerPolicy, parseCidr, unmapIPv4 } from '../../../src/relay/peer-policy.js'

describe('PeerPolicy', () => {
  const policy = new PeerPolicy({ ownAddresses: ['203.0.113.10'], ownEndpoints: [{ address: '198.18.0.1', port: 3478 }] })
  const cases: Array<[string, 'allowed' | 'denied']> = [
    ['8.8.8.8', 'allowed'],
    ['1.1.1.1', 'allowed'],
    ['2606:4700::1111', 'allowed'],
    ['127.0.0.1', 'denied'],
    ['127.255.255.254', 'denied'],
    ['10.0.0.1', 'denied'],
    ['172.16.5.5', 'denied'],
    ['172.31.255.255', 'denied'],
    ['172.32.0.1', 'allowed'],
    ['192.168.1.1', 'denied'],
    ['100.64.0.1', 'denied'],
    ['100.127.255.255', 'denied'],
    ['100.128.0.1', 'allowed'],
    ['169.254.169.254', 'denied'],
    ['169.254.1.1', 'denied'],
    ['224.0.0.251', 'denied'],
    ['239.255.255.250', 'denied'],
    ['0.0.0.0', 'denied'],
    ['0.1.2.3', 'denied'],
    ['240.0.0.1', 'denied'],
    ['255.255.255.255', 'denied'],
    ['203.0.113.10', 'denied'], // the server's own address (also TEST-NET-3)
    ['::', 'denied'],
    ['::1', 'denied'],
    ['fc00::1', 'denied'],
    ['fd12:3456::1', 'denied'],
    ['fe80::1', 'denied'],
    ['ff02::1', 'denied'],
    ['::ffff:127.0.0.1', 'denied'],
    ['::ffff:10.0.0.1', 'denied'],
    ['::ffff:a9fe:a9fe', 'denied'], // 169.254.169.254, hex spelling
    ['0:0:0:0:0:ffff:c0a8:0101', 'denied'], // 192.168.1.1, long spelling
    ['::ffff:8.8.8.8', 'allowed'],
    ['64:ff9b::a00:1', 'denied'], // NAT64 of 10.0.0.1
    ['not-an-ip', 'denied']
  ]
  for (const [address, verdict] of cases) {
    it(`${verdict === 'allowed' ? 'allows' : 'denies'} ${address}`, () => {
      expect(policy.checkAddress(address)).to.equal(verdict)
    })
  }

  it('always denies the server\'s own listener endpoints, even when allowPeer covers the address', () => {
    const p = new PeerPolicy({ allowPeer: ['127.0.0.0/8'], ownEndpoints: [{ address: '127.0.0.1', port: 3478 }] })
    expect(p.check({ address: '127.0.0.1', port: 3478 })).to.equal('denied')
    expect(p.check({ address: '127.0.0.1', port: 3479 })).to.equal('allowed')
  })

  it('lets allowPeer override the default list and denyPeer add to it', () => {
    const p = new PeerPolicy({ allowPeer: ['10.1.0.0/16'], denyPeer: ['8.8.8.0/24', '2001:4860::/32'] })
    expect(p.checkAddress('10.1.2.3')).to.equal('allowed')
    expect(p.checkAddress('10.2.0.1')).to.equal('denied')
    expect(p.checkAddress('8.8.8.8')).to.equal('denied')
    expect(p.checkAddress('2001:4860::8888')).to.equal('denied')
    expect(p.checkAddress('8.8.4.4')).to.equal('allowed')
  })

  it('rejects malformed CIDRs with InvalidArgumentError', () => {
    expect(() => parseCidr('10.0.0.0/33')).to.throw(InvalidArgumentError)
    expect(() => parseCidr('banana/8')).to.throw(InvalidArgumentError)
    expect(() => new PeerPolicy({ denyPeer: ['fe80::/129'] })).to.throw(InvalidArgumentError)
    expect(parseCidr('fd00::/8')).to.deep.equal({ address: 'fd00::', prefix: 8, family: 6 })
  })

  it('unmaps IPv4-mapped IPv6 addresses only', () => {
    expect(unmapIPv4('::ffff:1.2.3.4')).to.equal('1.2.3.4')
    expect(unmapIPv4('::ffff:0102:0304')).to.equal('1.2.3.4')
    expect(unmapIPv4('::1.2.3.4')).to.equal(undefined)
    expect(unmapIPv4('1.2.3.4')).to.equal(undefined)
  })
})
