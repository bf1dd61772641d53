import { expect } from 'chai'
import { InvalidArgumentError } from '../../../src/errors.js'
import { candidateFromSdp, candidatePriority, candidateToSdp, makeCandidate } from '../../../src/traversal/index.js'
import { pairPriority } from '../../../src/traversal/candidate.js'
import { CheckList } from '../../../src/traversal/ice-core/check-list.js'

describe('candidates (RFC 8445 §5.1.2, RFC 8839)', () => {
  it('computes priorities: host > prflx > srflx > relay, and IPv6 above IPv4 within a type', () => {
    expect(candidatePriority('host', 65535, 1)).to.equal(126 * 2 ** 24 + 65535 * 256 + 255)
    expect(candidatePriority('relay', 0, 1)).to.equal(255)
    const order = ['host', 'prflx', 'srflx', 'relay'] as const
    for (let i = 1; i < order.length; i++) expect(candidatePriority(order[i - 1])).to.be.above(candidatePriority(order[i]))
    expect(makeCandidate({ type: 'host', address: '2001:db8::1', port: 1 }).priority).to.be.above(makeCandidate({ type: 'host', address: '192.0.2.1', port: 1 }).priority)
    expect(() => candidatePriority('host', 70000)).to.throw(InvalidArgumentError)
  })

  it('computes pair priorities per §6.1.2.3 (order-independent in value ranking, tie broken towards the controlling side)', () => {
    expect(pairPriority(10, 20)).to.equal((1n << 32n) * 10n + 40n + 0n)
    expect(pairPriority(20, 10)).to.equal((1n << 32n) * 10n + 40n + 1n)
  })

  it('gives equal foundations to candidates of the same type, base and server, and different ones otherwise', () => {
    const a = makeCandidate({ type: 'srflx', address: '203.0.113.1', port: 1, base: '10.0.0.2', server: 's:3478' })
    const b = makeCandidate({ type: 'srflx', address: '203.0.113.1', port: 2, base: '10.0.0.2', server: 's:3478' })
    const c = makeCandidate({ type: 'srflx', address: '203.0.113.1', port: 2, base: '10.0.0.3', server: 's:3478' })
    expect(a.foundation).to.equal(b.foundation)
    expect(a.foundation).to.not.equal(c.foundation)
  })

  const lines = [
    'candidate:1a2b3c4d 1 UDP 2130706431 192.0.2.10 50000 typ host',
    'candidate:aa 1 UDP 1694498815 203.0.113.7 61000 typ srflx raddr 10.0.1.10 rport 50000',
    'candidate:bb 1 UDP 16777215 198.51.100.9 49200 typ relay raddr 203.0.113.7 rport 61000',
    'candidate:cc 1 UDP 2130706431 2001:db8::5 50000 typ host',
    'candidate:dd 1 TCP 1518280447 192.0.2.10 9 typ host tcptype active',
    'candidate:ee 1 TCP 1518214911 192.0.2.10 50001 typ host tcptype passive'
  ]
  for (const line of lines) {
    it(`round-trips ${line.split(' typ ')[1]} through SDP`, () => {
      const c = candidateFromSdp(`a=${line}`)
      expect(candidateToSdp(c)).to.equal(line)
    })
  }
  it('ignores unknown extension attributes (RFC 8839 §5.1)', () => {
    const c = candidateFromSdp('candidate:1 1 udp 100 192.0.2.1 9 typ host generation 0 ufrag abcd network-id 1')
    expect(c).to.include({ address: '192.0.2.1', port: 9, type: 'host', priority: 100 })
  })
  it('takes a host candidate named by an mDNS .local name (draft-ietf-mmusic-mdns-ice-candidates), the name as its address', () => {
    const c = candidateFromSdp('candidate:1 1 udp 2113937151 c2a0d0e8-1234-4c1b-9a3f-0123456789ab.local 60842 typ host generation 0')
    expect(c).to.include({ address: 'c2a0d0e8-1234-4c1b-9a3f-0123456789ab.local', port: 60842, type: 'host' })
  })
  const bad = [
    ['not a candidate', 'hello'],
    ['TCP candidates without a tcptype', 'candidate:1 1 TCP 100 192.0.2.1 9 typ host'],
    ['a bad tcptype', 'candidate:1 1 TCP 100 192.0.2.1 9 typ host tcptype sideways'],
    ['an SCTP candidate', 'candidate:1 1 SCTP 100 192.0.2.1 9 typ host'],
    ['an mDNS name on a non-host candidate', 'candidate:1 1 UDP 100 abcd.local 9 typ srflx raddr 0.0.0.0 rport 0'],
    ['a DNS name that is not mDNS', 'candidate:1 1 UDP 100 host.example.org 9 typ host'],
    ['a multi-label .local name', 'candidate:1 1 UDP 100 a.b.local 9 typ host'],
    ['an unknown type', 'candidate:1 1 UDP 100 192.0.2.1 9 typ weird'],
    ['a bad port', 'candidate:1 1 UDP 100 192.0.2.1 99999 typ host'],
    ['too few fields', 'candidate:1 1 UDP 100 192.0.2.1']
  ]
  for (const [name, line] of bad) {
    it(`rejects ${name} with InvalidArgumentError`, () => { expect(() => candidateFromSdp(line)).to.throw(InvalidArgumentError) })
  }
})

describe('check list (RFC 8445 §6.1.2)', () => {
  it('replaceRemote: a peer-reflexive remote that is later signalled takes the signalled type and priority, state kept, re-sorted', () => {
    const list = new CheckList()
    const local = makeCandidate({ type: 'host', address: '10.0.0.2', port: 1 })
    const learnt = makeCandidate({ type: 'prflx', address: '10.0.1.2', port: 4 })
    const other = makeCandidate({ type: 'host', address: '10.0.1.3', port: 5, localPreference: 40000 })
    list.addPairs([local], [learnt, other], true)
    expect(list.pairs.map(p => p.remote.port)).to.deep.equal([5, 4])
    list.pairs[1].state = 'succeeded'
    const signalled = makeCandidate({ type: 'host', address: '10.0.1.2', port: 4 })
    const changed = list.replaceRemote(learnt, signalled, true)
    expect(changed).to.have.length(1)
    expect(changed[0].remote).to.equal(signalled)
    expect(list.pairs.map(p => [p.remote.port, p.remote.type])).to.deep.equal([[4, 'host'], [5, 'host']])
    expect(list.pairs.map(p => p.state)).to.deep.equal(['succeeded', 'waiting'])
    expect(list.replaceRemote(learnt, signalled, true)).to.deep.equal([])
  })

  it('pairs host and relay bases with remote candidates of the same family, highest priority first, skipping srflx locals', () => {
    const list = new CheckList()
    const locals = [
      makeCandidate({ type: 'host', address: '10.0.0.2', port: 1 }),
      makeCandidate({ type: 'srflx', address: '203.0.113.1', port: 2, base: '10.0.0.2' }),
      makeCandidate({ type: 'relay', address: '198.51.100.1', port: 3 })
    ]
    const remotes = [
      makeCandidate({ type: 'host', address: '10.0.1.2', port: 4 }),
      makeCandidate({ type: 'host', address: '2001:db8::1', port: 5 }),
      makeCandidate({ type: 'relay', address: '198.51.100.2', port: 6 })
    ]
    list.addPairs(locals, remotes, true)
    expect(list.pairs.map(p => `${p.local.type}>${p.remote.type}`)).to.deep.equal(['host>host', 'host>relay', 'relay>host', 'relay>relay'])
    expect(list.next()?.remote.address).to.equal('10.0.1.2')
    list.trigger(list.pairs[3])
    expect(list.next()).to.equal(list.pairs[3])
  })

  it('freezes all but one pair per foundation, unfreezes the foundation on success, and checks frozen pairs when none waits (§6.1.2.6, §6.1.4.2)', () => {
    const list = new CheckList()
    const local = makeCandidate({ type: 'host', address: '10.0.0.2', port: 1 })
    // Two remote host candidates on one base address share a foundation; the relay has its own.
    const r1 = makeCandidate({ type: 'host', address: '10.0.1.2', port: 4 })
    const r2 = makeCandidate({ type: 'host', address: '10.0.1.2', port: 5, localPreference: 100 })
    const r3 = makeCandidate({ type: 'relay', address: '198.51.100.2', port: 6 })
    expect(r1.foundation).to.equal(r2.foundation)
    list.addPairs([local], [r1, r2, r3], true)
    expect(list.pairs.map(p => `${p.remote.port}:${p.state}`)).to.deep.equal(['4:waiting', '5:frozen', '6:waiting'])
    const first = list.next() as typeof list.pairs[0]
    expect(first.remote.port).to.equal(4)
    first.state = 'in-progress'
    const second = list.next() as typeof list.pairs[0]
    expect(second.remote.port).to.equal(6)
    second.state = 'in-progress'
    // Nothing waits: the frozen pair is next.
    expect(list.next()?.remote.port).to.equal(5)
    first.state = 'succeeded'
    list.unfreeze(first)
    expect(list.pairs[1].state).to.equal('waiting')
    expect(list.active).to.equal(true)
  })
})
