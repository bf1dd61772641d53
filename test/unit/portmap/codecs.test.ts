import { expect } from 'chai'
import { PortMapDecodeError } from '../../../src/errors.js'
import { parseProcNetRoute } from '../../../src/portmap/gateway.js'
import { decodeNatPmpResponse, encodeNatPmpExternalRequest, encodeNatPmpMapRequest, natPmpResultName } from '../../../src/portmap/natpmp.js'
import { decodePcpResponse, encodePcpMapRequest, pcpEpochValid, pcpResultName } from '../../../src/portmap/pcp.js'
import { findWanService, parseSoapResponse, parseSsdpResponse, soapRequest, ssdpSearch } from '../../../src/portmap/upnp.js'

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex')

describe('portmap codecs', () => {
  describe('NAT-PMP (RFC 6886)', () => {
    it('encodes the §3.2 external address request and a §3.3 UDP mapping request byte for byte', () => {
      expect(Buffer.from(encodeNatPmpExternalRequest()).toString('hex')).to.equal('0000')
      expect(Buffer.from(encodeNatPmpMapRequest({ protocol: 'udp', internalPort: 40000, externalPort: 40001, lifetimeS: 7200 })).toString('hex'))
        .to.equal('00010000' + '9c40' + '9c41' + '00001c20')
      expect(encodeNatPmpMapRequest({ protocol: 'tcp', internalPort: 1, externalPort: 0, lifetimeS: 0 })[1]).to.equal(2)
    })
    it('decodes responses, including miniupnpd\'s 12-byte NETWORK_FAILURE answers', () => {
      expect(decodeNatPmpResponse(hex('0080 0000 00000064 c6336401'))).to.deep.equal({ kind: 'external', result: 0, epoch: 100, externalIp: '198.51.100.1' })
      expect(decodeNatPmpResponse(hex('0081 0000 00000064 9c40 c350 00000e10'))).to.deep.equal({ kind: 'map', protocol: 'udp', result: 0, epoch: 100, internalPort: 40000, externalPort: 50000, lifetimeS: 3600 })
      // Captured from miniupnpd 2.3.1 with a reserved external address.
      expect(decodeNatPmpResponse(hex('008000030000000200000000'))).to.include({ kind: 'external', result: 3 })
      expect(decodeNatPmpResponse(hex('00810003000000029c409c400000003c'))).to.include({ kind: 'map', result: 3 })
      expect(natPmpResultName(3)).to.equal('NETWORK_FAILURE')
    })
    const bad: Array<[string, string]> = [['too short', '0080 0000'], ['a PCP version', '0280 0000 00000000 00000000'], ['a request opcode', '0001 0000 00000000 00000000'],
      ['a successful mapping cut short', '0081 0000 00000064 9c40']]
    for (const [name, h] of bad) it(`rejects ${name}`, () => { expect(() => decodeNatPmpResponse(hex(h))).to.throw(PortMapDecodeError) })
  })

  describe('PCP (RFC 6887)', () => {
    const nonce = hex('0102030405060708090a0b0c')
    it('encodes a MAP request: §7.1 header, IPv4-mapped client address, §11.1 payload', () => {
      const b = Buffer.from(encodePcpMapRequest({ clientIp: '10.0.1.10', nonce, protocol: 'udp', internalPort: 40000, externalPort: 0, lifetimeS: 60 }))
      expect(b.length).to.equal(60)
      expect(b.subarray(0, 8).toString('hex')).to.equal('02010000' + '0000003c')
      expect(b.subarray(8, 24).toString('hex')).to.equal('00000000000000000000ffff0a00010a')
      expect(b.subarray(24, 36)).to.deep.equal(nonce)
      expect(b.subarray(36, 44).toString('hex')).to.equal('11000000' + '9c40' + '0000')
      expect(b.subarray(44, 60).toString('hex')).to.equal('00000000000000000000ffff00000000')
    })
    it('decodes a MAP success response with the assigned external address and port', () => {
      const res = Buffer.concat([hex('02810000 00000e10 00000abc 000000000000000000000000'), nonce, hex('11000000 9c40 c350 00000000000000000000ffffc6336401')])
      const r = decodePcpResponse(res)
      expect(r).to.include({ version: 2, opcode: 1, result: 0, lifetimeS: 3600, epoch: 0xabc })
      expect(r.map).to.deep.include({ protocol: 17, internalPort: 40000, externalPort: 50000, externalIp: '198.51.100.1' })
      expect(Buffer.from(r.map?.nonce ?? [])).to.deep.equal(nonce)
    })
    it('returns a NAT-PMP server\'s version-0 UNSUPPORTED_VERSION answer so the caller can fall back (§9)', () => {
      expect(decodePcpResponse(hex('0081 0001 00000005'))).to.include({ version: 0, result: 1 })
    })
    it('rejects a request echoed back, a short or misaligned packet', () => {
      expect(() => decodePcpResponse(hex('02010000'.padEnd(48, '0')))).to.throw(PortMapDecodeError)
      expect(() => decodePcpResponse(hex('0281'))).to.throw(PortMapDecodeError)
      expect(() => decodePcpResponse(hex('02810000'.padEnd(50, '0')))).to.throw(PortMapDecodeError)
    })
    it('names result codes', () => { expect([0, 7, 8, 11].map(pcpResultName)).to.deep.equal(['SUCCESS', 'NETWORK_FAILURE', 'NO_RESOURCES', 'CANNOT_PROVIDE_EXTERNAL']) })
    describe('epoch check (§8.5)', () => {
      const cases: Array<[string, { epoch: number, atS: number }, { epoch: number, atS: number }, boolean]> = [
        ['advancing with the client clock', { epoch: 1000, atS: 50 }, { epoch: 1060, atS: 110 }, true],
        ['within the 1/16 + 2 s slack', { epoch: 1000, atS: 50 }, { epoch: 1062, atS: 110 }, true],
        ['gone backwards (server restarted)', { epoch: 1000, atS: 50 }, { epoch: 5, atS: 110 }, false],
        ['lagging far behind the client clock (restarted)', { epoch: 1000, atS: 50 }, { epoch: 1010, atS: 400 }, false]
      ]
      for (const [name, prev, cur, want] of cases) it(name, () => { expect(pcpEpochValid(prev, cur)).to.equal(want) })
    })
  })

  describe('UPnP IGD', () => {
    it('builds an SSDP M-SEARCH and reads LOCATION from a response, ignoring anything else', () => {
      expect(Buffer.from(ssdpSearch('urn:schemas-upnp-org:device:InternetGatewayDevice:2')).toString()).to.match(/^M-SEARCH \* HTTP\/1\.1\r\nHOST: 239\.255\.255\.250:1900\r\nMAN: "ssdp:discover"\r\nMX: 1\r\nST: urn:schemas-upnp-org:device:InternetGatewayDevice:2\r\n\r\n$/)
      const res = Buffer.from('HTTP/1.1 200 OK\r\nCACHE-CONTROL: max-age=120\r\nST: urn:schemas-upnp-org:device:InternetGatewayDevice:2\r\nLocation: http://10.0.1.1:42805/rootDesc.xml\r\n\r\n')
      expect(parseSsdpResponse(res)).to.deep.equal({ location: 'http://10.0.1.1:42805/rootDesc.xml', st: 'urn:schemas-upnp-org:device:InternetGatewayDevice:2' })
      expect(parseSsdpResponse(Buffer.from('NOTIFY * HTTP/1.1\r\nLOCATION: http://x/\r\n\r\n'))).to.equal(undefined)
      expect(parseSsdpResponse(Buffer.from('HTTP/1.1 200 OK\r\nLOCATION: file:///etc/passwd\r\n\r\n'))).to.equal(undefined)
      expect(parseSsdpResponse(Buffer.from([0xff, 0x00, 0x13]))).to.equal(undefined)
    })
    it('finds the best WAN connection service and resolves its control URL', () => {
      const xml = '<root><device><serviceList>' +
        '<service><serviceType>urn:schemas-upnp-org:service:Layer3Forwarding:1</serviceType><controlURL>/ctl/L3F</controlURL></service>' +
        '<service><serviceType>urn:schemas-upnp-org:service:WANIPConnection:1</serviceType><controlURL>/ctl/IP1</controlURL></service>' +
        '<service><serviceType>urn:schemas-upnp-org:service:WANIPConnection:2</serviceType><controlURL>/ctl/IPConn</controlURL></service>' +
        '</serviceList></device></root>'
      expect(findWanService(xml, 'http://10.0.1.1:42805/rootDesc.xml')).to.deep.equal({ serviceType: 'urn:schemas-upnp-org:service:WANIPConnection:2', controlUrl: 'http://10.0.1.1:42805/ctl/IPConn', version: 2 })
      expect(findWanService('<URLBase>http://10.0.1.1:5000/</URLBase><service><serviceType>urn:schemas-upnp-org:service:WANPPPConnection:1</serviceType><controlURL>ppp</controlURL></service>', 'http://10.0.1.1:42805/d.xml').controlUrl).to.equal('http://10.0.1.1:5000/ppp')
      expect(() => findWanService('<root/>', 'http://10.0.1.1/')).to.throw(PortMapDecodeError)
    })
    it('builds a SOAP request with escaped arguments and reads results and UPnP errors', () => {
      const r = soapRequest('urn:schemas-upnp-org:service:WANIPConnection:1', 'AddPortMapping', [['NewExternalPort', 40000], ['NewPortMappingDescription', 'a<b&c']])
      expect(r.soapAction).to.equal('"urn:schemas-upnp-org:service:WANIPConnection:1#AddPortMapping"')
      expect(r.body).to.include('<u:AddPortMapping xmlns:u="urn:schemas-upnp-org:service:WANIPConnection:1"><NewExternalPort>40000</NewExternalPort><NewPortMappingDescription>a&lt;b&amp;c</NewPortMappingDescription></u:AddPortMapping>')
      expect(parseSoapResponse(200, '<s:Envelope><s:Body><u:GetExternalIPAddressResponse><NewExternalIPAddress>198.51.100.1</NewExternalIPAddress></u:GetExternalIPAddressResponse></s:Body></s:Envelope>'))
        .to.deep.equal({ ok: true, values: { NewExternalIPAddress: '198.51.100.1' } })
      expect(parseSoapResponse(500, '<s:Envelope><s:Body><s:Fault><detail><UPnPError><errorCode>718</errorCode><errorDescription>ConflictInMappingEntry</errorDescription></UPnPError></detail></s:Fault></s:Body></s:Envelope>'))
        .to.deep.equal({ ok: false, errorCode: 718, errorDescription: 'ConflictInMappingEntry' })
      expect(parseSoapResponse(404, 'not found')).to.deep.equal({ ok: false, errorCode: -1, errorDescription: 'HTTP 404' })
    })
  })

  it('reads the default gateway from /proc/net/route', () => {
    const text = 'Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n' +
      'eth0\t0001000A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n' +
      'eth0\t00000000\t0101000A\t0003\t0\t0\t0\t00000000\t0\t0\t0\n'
    expect(parseProcNetRoute(text)).to.equal('10.0.1.1')
    expect(parseProcNetRoute(text.split('\n').slice(0, 2).join('\n'))).to.equal(undefined)
  })
})
