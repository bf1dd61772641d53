import { expect } from 'chai'
import { createServer, type Server } from 'node:net'
import { verdictFor } from '../../../src/discovery/classify.js'
import { openTcpPorts, outcomeForError, probeTcpPort, probeTcpPorts, probeUdpRefusal, type TcpPortProbe } from '../../../src/discovery/tcp-reach.js'
import { createSocket } from 'node:dgram'
import { InvalidArgumentError } from '../../../src/errors.js'

const NO_ALLOC = { pattern: 'unknown' as const, delta: null, samples: [] }

describe('tcp-reach', () => {
  describe('outcomeForError', () => {
    const cases: Array<[string | undefined, string]> = [
      ['ECONNREFUSED', 'refused'], ['ETIMEDOUT', 'timeout'], ['EHOSTUNREACH', 'unreachable'], ['ENETUNREACH', 'unreachable'],
      ['EACCES', 'unreachable'], ['EADDRNOTAVAIL', 'error'], [undefined, 'error']
    ]
    for (const [code, want] of cases) it(`${String(code)} is ${want}`, () => { expect(outcomeForError(code)).to.equal(want) })
  })

  describe('probes on loopback', () => {
    let server: Server
    let openPort = 0
    let closedPort = 0
    before(async () => {
      server = createServer((s) => { s.destroy() })
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
      openPort = (server.address() as { port: number }).port
      // A port that was just free: bind, note, close.
      const tmp = createServer()
      await new Promise<void>((resolve) => tmp.listen(0, '127.0.0.1', resolve))
      closedPort = (tmp.address() as { port: number }).port
      await new Promise<void>((resolve) => tmp.close(() => { resolve() }))
    })
    after(async () => { await new Promise<void>((resolve) => server.close(() => { resolve() })) })

    it('a listening port is open, a closed one refused, and both count as an open path', async () => {
      const r = await probeTcpPorts(['127.0.0.1'], { ports: [openPort, closedPort], timeoutMs: 2000 })
      expect(r.map(p => [p.port, p.outcome])).to.deep.equal([[openPort, 'open'], [closedPort, 'refused']])
      expect(openTcpPorts(r)).to.deep.equal([openPort, closedPort])
    })

    it('an aborted probe ends at once as an error', async () => {
      const ac = new AbortController()
      ac.abort()
      const p = await probeTcpPort('127.0.0.1', openPort, { signal: ac.signal, timeoutMs: 5000 })
      expect(p.ms).to.be.below(1000)
    })

    it('UDP to a closed port is refused (ICMP port unreachable); to a listener that answers, open', async () => {
      const closed = createSocket('udp4')
      await new Promise<void>((resolve) => closed.bind(0, '127.0.0.1', resolve))
      const closedPort = closed.address().port
      await new Promise<void>((resolve) => closed.close(() => { resolve() }))
      expect(await probeUdpRefusal('127.0.0.1', closedPort, Uint8Array.of(1, 2, 3), { timeoutMs: 1500 })).to.equal('refused')
      const echo = createSocket('udp4')
      echo.on('message', (d, r) => { echo.send(d, r.port, r.address) })
      await new Promise<void>((resolve) => echo.bind(0, '127.0.0.1', resolve))
      try {
        expect(await probeUdpRefusal('127.0.0.1', echo.address().port, Uint8Array.of(1, 2, 3), { timeoutMs: 1500 })).to.equal('open')
      } finally {
        await new Promise<void>((resolve) => echo.close(() => { resolve() }))
      }
    })

    it('rejects a port outside 1..65535', async () => {
      let err: unknown
      try { await probeTcpPorts(['127.0.0.1'], { ports: [0] }) } catch (e) { err = e }
      expect(err).to.be.instanceOf(InvalidArgumentError)
    })
  })

  describe('verdict', () => {
    const base = { udp: false, hairpinning: null, portAllocation: NO_ALLOC, alg: null, mappingLifetimeS: null, lifetimeIsLowerBound: true }
    it('says "UDP blocked, TCP 443 open" and advises TURN over TLS on 443', () => {
      const v = verdictFor({ ...base, type: 'udp-blocked', tcp: false, tls: false, tcpOpenPorts: [443, 80] })
      expect(v.summary).to.match(/^UDP blocked, TCP 443 and 80 open/)
      expect(v.advice[0]).to.match(/TURN over TLS on port 443/)
    })
    it('says offline when the TCP connects got no answer either', () => {
      const v = verdictFor({ ...base, type: 'unknown', tcp: false, tls: false, tcpOpenPorts: [] })
      expect(v.summary).to.match(/^Offline/)
    })
    it('counts only open and refused probes as open paths', () => {
      const probes: TcpPortProbe[] = ['open', 'refused', 'timeout', 'unreachable', 'error'].map((outcome, i) => ({ address: '192.0.2.1', port: 1000 + i, outcome: outcome as TcpPortProbe['outcome'], ms: 1 }))
      expect(openTcpPorts(probes)).to.deep.equal([1000, 1001])
    })
  })
})
