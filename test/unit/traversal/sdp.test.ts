import { expect } from 'chai'
import { InvalidArgumentError } from '../../../src/errors.js'
import { CheckList } from '../../../src/traversal/ice-core/check-list.js'
import { buildIceSdp, formatSdpLines, makeCandidate, parseIceSdp } from '../../../src/traversal/index.js'

/** An offer shaped like Chromium's (one audio section, rtcp-mux, trickle, an mDNS host candidate and a TCP one). */
const CHROMIUM_OFFER = [
  'v=0',
  'o=- 4611731400430051336 2 IN IP4 127.0.0.1',
  's=-',
  't=0 0',
  'a=group:BUNDLE 0',
  'a=extmap-allow-mixed',
  'a=msid-semantic: WMS',
  'm=audio 56143 UDP/TLS/RTP/SAVPF 111',
  'c=IN IP4 203.0.113.5',
  'a=rtcp:9 IN IP4 0.0.0.0',
  'a=candidate:3885250869 1 udp 2122260223 192.168.1.5 56143 typ host generation 0 network-id 1 network-cost 10',
  'a=candidate:2157334355 1 udp 2113937151 c2a0d0e8-1234-4c1b-9a3f-0123456789ab.local 60842 typ host generation 0 network-cost 999',
  'a=candidate:1071006505 1 tcp 1518280447 192.168.1.5 9 typ host tcptype active generation 0 network-id 1 network-cost 10',
  'a=candidate:842163049 1 udp 1686052607 203.0.113.5 56143 typ srflx raddr 192.168.1.5 rport 56143 generation 0 network-id 1 network-cost 10',
  'a=ice-ufrag:Gb5T',
  'a=ice-pwd:Jp0TeSjt0ZQ0Mv4I4R0uAm9V',
  'a=ice-options:trickle',
  'a=fingerprint:sha-256 49:66:12:17:0D:1C:91:AE:57:4C:C6:36:DD:D5:97:D2:7D:62:C9:9A:7F:B9:A3:F4:70:03:E7:43:91:73:23:5E',
  'a=setup:actpass',
  'a=mid:0',
  'a=rtcp-mux',
  'a=rtpmap:111 opus/48000/2',
  'a=end-of-candidates'
].join('\r\n') + '\r\n'

describe('ICE in SDP (RFC 8839, RFC 8840)', () => {
  describe('parseIceSdp', () => {
    it('reads a Chromium-shaped offer: credentials, trickle, candidates incl. TCP and an mDNS host name, end-of-candidates', () => {
      const p = parseIceSdp(CHROMIUM_OFFER)
      expect(p).to.include({ ufrag: 'Gb5T', pwd: 'Jp0TeSjt0ZQ0Mv4I4R0uAm9V', lite: false, endOfCandidates: true })
      expect(p.options).to.deep.equal(['trickle'])
      expect(p.candidates.map(c => `${c.transport} ${c.type} ${c.address}:${c.port}${c.tcpType !== undefined ? ' ' + c.tcpType : ''}`)).to.deep.equal([
        'udp host 192.168.1.5:56143', 'udp host c2a0d0e8-1234-4c1b-9a3f-0123456789ab.local:60842', 'tcp host 192.168.1.5:9 active', 'udp srflx 203.0.113.5:56143'
      ])
      expect(p.candidates[3].related).to.deep.equal({ address: '192.168.1.5', port: 56143 })
      expect(p.skipped).to.deep.equal([])
    })

    it('reads aioice-shaped lines (lower-case transport, hex md5 foundations) from an sdpfrag without m= lines', () => {
      const p = parseIceSdp([
        'a=ice-ufrag:QVn2',
        'a=ice-pwd:pHFfEw4J2Ra0BL3LmQ7vMt',
        'a=candidate:e0a5a4b6b2d1f8bb5b4ba8f3fc0a6e6e 1 udp 2130706431 10.0.1.10 51234 typ host',
        'a=candidate:3a4d4e0d6f1b9b8e2c1a0f9e8d7c6b5a 1 udp 1694498815 198.51.100.1 40001 typ srflx raddr 10.0.1.10 rport 51234',
        'a=candidate:c0ffee 1 udp 16777215 203.0.113.10 49999 typ relay raddr 198.51.100.1 rport 40001'
      ].join('\n'))
      expect(p.ufrag).to.equal('QVn2')
      expect(p.candidates.map(c => c.type)).to.deep.equal(['host', 'srflx', 'relay'])
      expect(p.endOfCandidates).to.equal(false)
    })

    it('takes session-level credentials and ice-lite unless the section overrides them, and picks the asked section', () => {
      const sdp = 'v=0\na=ice-lite\na=ice-ufrag:sess\na=ice-pwd:sessionpasswordsession1\nm=audio 9 RTP/AVP 0\na=ice-ufrag:aaaa\nm=video 9 RTP/AVP 96\na=candidate:1 1 udp 100 192.0.2.1 9 typ host\na=remote-candidates:1 192.0.2.3 45664 2 192.0.2.3 45665\n'
      const audio = parseIceSdp(sdp)
      expect(audio).to.include({ ufrag: 'aaaa', pwd: 'sessionpasswordsession1', lite: true })
      expect(audio.candidates).to.have.length(0)
      const video = parseIceSdp(sdp, { section: 1 })
      expect(video).to.include({ ufrag: 'sess' })
      expect(video.candidates.map(c => c.address)).to.deep.equal(['192.0.2.1'])
      expect(video.remoteCandidates).to.deep.equal([{ component: 1, address: '192.0.2.3', port: 45664 }, { component: 2, address: '192.0.2.3', port: 45665 }])
      expect(() => parseIceSdp(sdp, { section: 2 })).to.throw(InvalidArgumentError)
    })

    it('puts malformed candidate lines in skipped and rejects a malformed remote-candidates', () => {
      const p = parseIceSdp('a=candidate:1 1 udp 100 192.0.2.1 99999 typ host\na=candidate:x\n')
      expect(p.skipped.map(s => s.reason)).to.deep.equal(['invalid', 'invalid'])
      expect(() => parseIceSdp('a=remote-candidates:1 192.0.2.3')).to.throw(InvalidArgumentError)
    })
  })

  describe('buildIceSdp', () => {
    const host = makeCandidate({ type: 'host', address: '192.0.2.10', port: 5000 })
    const relay = makeCandidate({ type: 'relay', address: '203.0.113.1', port: 6000, related: { address: '198.51.100.2', port: 7000 } })
    it('writes credentials, options, candidates, remote-candidates and end-of-candidates, and parses back', () => {
      const lines = buildIceSdp({ ufrag: 'abcd', pwd: 'a'.repeat(22), options: ['trickle'], candidates: [host, relay], endOfCandidates: true, remoteCandidates: [{ component: 1, address: '192.0.2.99', port: 1234 }] })
      expect(lines[0]).to.equal('a=ice-ufrag:abcd')
      expect(lines.at(-1)).to.equal('a=end-of-candidates')
      const back = parseIceSdp(formatSdpLines(lines))
      expect(back.candidates).to.deep.equal([host, relay])
      expect(back).to.include({ ufrag: 'abcd', pwd: 'a'.repeat(22), endOfCandidates: true })
      expect(back.options).to.deep.equal(['trickle'])
      expect(back.remoteCandidates).to.deep.equal([{ component: 1, address: '192.0.2.99', port: 1234 }])
    })
    for (const [name, s] of [['a short ufrag', { ufrag: 'abc', pwd: 'a'.repeat(22) }], ['a short pwd', { ufrag: 'abcd', pwd: 'short' }], ['a bad character', { ufrag: 'ab cd', pwd: 'a'.repeat(22) }]] as const) {
      it(`rejects ${name}`, () => { expect(() => buildIceSdp({ ...s, candidates: [] })).to.throw(InvalidArgumentError) })
    }
  })

  it('never pairs a remote component-2 (RTCP without rtcp-mux) candidate with natkit\'s one component', () => {
    const list = new CheckList()
    const rtcp = parseIceSdp('a=candidate:1 2 udp 100 192.0.2.1 9 typ host').candidates
    expect(rtcp.map(c => c.component)).to.deep.equal([2])
    expect(list.addPairs([makeCandidate({ type: 'host', address: '192.0.2.10', port: 5000 })], rtcp, true)).to.deep.equal([])
  })

  it('never pairs a remote TCP candidate with natkit\'s UDP bases', () => {
    const list = new CheckList()
    const tcp = parseIceSdp('a=candidate:1 1 tcp 100 192.0.2.1 9 typ host tcptype active').candidates
    expect(tcp).to.have.length(1)
    expect(list.addPairs([makeCandidate({ type: 'host', address: '192.0.2.10', port: 5000 })], tcp, true)).to.deep.equal([])
  })

  describe('components and a=rtcp-mux (RFC 5761, RFC 8445 §4)', () => {
    it('writes a=rtcp-mux and component ids, and reads them back', () => {
      const rtp = makeCandidate({ type: 'host', address: '192.0.2.10', port: 5000 })
      const rtcp = makeCandidate({ type: 'host', address: '192.0.2.10', port: 5001, component: 2 })
      const apart = buildIceSdp({ ufrag: 'abcd', pwd: 'abcdefghijklmnopqrstuv', candidates: [rtp, rtcp] })
      expect(apart).to.not.include('a=rtcp-mux')
      expect(apart.filter(l => l.startsWith('a=candidate:')).map(l => l.split(' ')[1])).to.deep.equal(['1', '2'])
      const parsed = parseIceSdp(apart.join('\n'))
      expect([parsed.rtcpMux, parsed.components]).to.deep.equal([false, 2])
      expect(parsed.candidates.map(c => [c.component, c.port, c.priority & 0xff])).to.deep.equal([[1, 5000, 255], [2, 5001, 254]])
      const muxed = parseIceSdp(buildIceSdp({ ufrag: 'abcd', pwd: 'abcdefghijklmnopqrstuv', candidates: [rtp], rtcpMux: true }).join('\n'))
      expect([muxed.rtcpMux, muxed.components]).to.deep.equal([true, 1])
    })

    it('reads a=rtcp-mux only in the chosen media section', () => {
      const sdp = ['v=0', 'm=audio 9 RTP/AVP 0', 'a=rtcp-mux', 'm=video 9 RTP/AVP 96', 'a=ice-ufrag:abcd'].join('\r\n')
      expect(parseIceSdp(sdp, { section: 0 }).rtcpMux).to.equal(true)
      expect(parseIceSdp(sdp, { section: 1 }).rtcpMux).to.equal(false)
    })
  })
})
