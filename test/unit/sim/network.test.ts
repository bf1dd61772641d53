import { expect } from 'chai'
import { InvalidArgumentError, TransportError } from '../../../src/errors.js'
import { SimNetwork, type SimNetworkOptions, type SimPacketEvent, type SimSocket } from '../../../src/sim/index.js'
import { expectRejection } from '../../support/assert.js'
import { Inbox } from './helpers.js'

const A = '198.51.100.1'
const B = '198.51.100.2'

async function pair (options: SimNetworkOptions = {}): Promise<{ net: SimNetwork, a: SimSocket, b: SimSocket, inB: Inbox }> {
  const net = new SimNetwork(options)
  const a = await net.addHost(A).bind(1000)
  const b = await net.addHost(B).bind(2000)
  return { net, a, b, inB: new Inbox(b) }
}

describe('SimNetwork', () => {
  describe('hosts and sockets', () => {
    it('port 0 binds the next free ephemeral port from 49152, per host', async () => {
      const net = new SimNetwork()
      const h = net.addHost(A)
      const s1 = await h.bind()
      const s2 = await h.bind(0)
      const other = await net.addHost(B).bind()
      expect([s1.local.port, s2.local.port, other.local.port]).to.deep.equal([49152, 49153, 49152])
      expect(s1.local.address).to.equal(A)
      await s1.close()
      expect((await h.bind()).local.port).to.equal(49154)
      await net.close()
    })

    it('binding a port in use rejects with TransportError; after close the port is free again', async () => {
      const net = new SimNetwork()
      const h = net.addHost(A)
      const s = await h.bind(3478)
      expect((await expectRejection(h.bind(3478), TransportError)).message).to.match(/in use/)
      await s.close()
      await s.close() // idempotent
      expect((await h.bind(3478)).local.port).to.equal(3478)
      await expectRejection(h.bind(70000), InvalidArgumentError)
      await net.close()
    })

    it('rejects bad options, bad and duplicate addresses, and NATs of another network', () => {
      const net = new SimNetwork()
      const other = new SimNetwork()
      const foreign = other.addNat('x', '203.0.113.9', 'full-cone')
      const nat = net.addNat('nat', '203.0.113.1', 'full-cone')
      net.addHost(A)
      net.addHost('10.0.0.2', { behind: nat })
      const cases: Array<[string, () => unknown]> = [
        ['loss > 1', () => new SimNetwork({ loss: 1.5 })],
        ['negative latency', () => new SimNetwork({ latencyMs: -1 })],
        ['non-integer seed', () => new SimNetwork({ seed: 0.5 })],
        ['not an IP', () => net.addHost('example.org')],
        ['duplicate public IP', () => net.addHost(A)],
        ['a host on the NAT\'s address', () => net.addHost('203.0.113.1')],
        ['duplicate private IP', () => net.addHost('10.0.0.2', { behind: nat })],
        ['the NAT\'s own public IP in its LAN', () => net.addHost('203.0.113.1', { behind: nat })],
        ['duplicate NAT name', () => net.addNat('nat', '203.0.113.2', 'full-cone')],
        ['a foreign NAT', () => net.addHost('10.0.0.3', { behind: foreign })],
        ['bad mapping', () => net.addNat('n2', '203.0.113.3', { mapping: 'cone' as 'endpoint-independent', filtering: 'endpoint-independent' })],
        ['zero sequential step', () => net.addNat('n3', '203.0.113.4', { ...{ mapping: 'endpoint-independent', filtering: 'endpoint-independent' } as const, sequentialStep: 0 })],
        ['bad port range', () => net.addNat('n4', '203.0.113.5', { mapping: 'endpoint-independent', filtering: 'endpoint-independent', portRange: [2000, 1000] })],
        ['zero timeout', () => net.addNat('n5', '203.0.113.6', { mapping: 'endpoint-independent', filtering: 'endpoint-independent', mappingTimeoutMs: 0 })]
      ]
      for (const [name, f] of cases) expect(f, name).to.throw(InvalidArgumentError)
    })
  })

  describe('delivery', () => {
    it('never delivers inside send(); delivers a copy of the data afterwards', async () => {
      const { net, a, b, inB } = await pair()
      const data = Buffer.from('hello')
      a.send(data, b.local)
      data.write('HELLO')
      expect(inB.messages).to.have.length(0)
      await net.idle()
      expect(inB.texts).to.deep.equal(['hello'])
      expect(inB.froms).to.deep.equal([`${A}:1000`])
      expect(net.stats()).to.include({ sent: 1, delivered: 1, inFlight: 0 })
      await net.close()
    })

    it('takes latencyMs one way', async () => {
      const { net, a, b } = await pair({ latencyMs: 25 })
      const start = performance.now()
      const arrived = new Promise<number>(resolve => { b.onMessage(() => { resolve(performance.now() - start) }) })
      a.send(Buffer.from('x'), b.local)
      const elapsed = await arrived
      expect(elapsed).to.be.within(24, 1000) // never early; the upper bound only guards against a stuck loop
      await net.close()
    })

    it('keeps the order of datagrams without jitter; jitter spreads arrivals within [latency, latency + jitter)', async () => {
      const ordered = await pair({ latencyMs: 1 })
      for (let i = 0; i < 50; i++) ordered.a.send(Buffer.from(String(i)), ordered.b.local)
      await ordered.net.idle()
      expect(ordered.inB.texts).to.deep.equal(Array.from({ length: 50 }, (_, i) => String(i)))
      await ordered.net.close()

      const { net, a, b, inB } = await pair({ latencyMs: 5, jitterMs: 20, seed: 3 })
      let first = 0
      const start = performance.now()
      b.onMessage((data, from) => { first ||= performance.now() - start; inB.messages.push({ data, from }) })
      for (let i = 0; i < 40; i++) a.send(Buffer.from(String(i)), b.local)
      await net.idle()
      expect(inB.messages).to.have.length(40)
      expect(first).to.be.at.least(4) // never before latencyMs
      expect(inB.texts).to.not.deep.equal(Array.from({ length: 40 }, (_, i) => String(i))) // reordered
      await net.close()
    })

    it('loses about `loss` of the datagrams, reproducibly by seed', async () => {
      const run = async (seed: number): Promise<{ got: string[], dropped: number, delivered: number }> => {
        const { net, a, b, inB } = await pair({ latencyMs: 0, loss: 0.3, seed })
        for (let i = 0; i < 2000; i++) a.send(Buffer.from(String(i)), b.local)
        await net.idle()
        const s = net.stats()
        await net.close()
        return { got: inB.texts, dropped: s.dropped.loss, delivered: s.delivered }
      }
      const r = await run(11)
      expect(r.dropped + r.delivered).to.equal(2000)
      expect(r.dropped / 2000).to.be.within(0.26, 0.34)
      expect((await run(11)).got).to.deep.equal(r.got)
      expect((await run(12)).got).to.not.deep.equal(r.got)
    })

    it('counts no-listener, and survives a handler that throws', async () => {
      const { net, a, b, inB } = await pair({ latencyMs: 0 })
      a.send(Buffer.from('x'), { address: B, port: 9 })
      a.send(Buffer.from('x'), { address: 'nonsense', port: 1 })
      b.onMessage(() => { throw new Error('boom') })
      a.send(Buffer.from('x'), b.local)
      await net.idle()
      const s = net.stats()
      expect(s.dropped['no-listener']).to.equal(1)
      expect(s.dropped['no-route']).to.equal(1)
      expect(s.delivered).to.equal(1)
      expect(inB.messages).to.have.length(0)
      await net.close()
    })

    it('reports sends, mappings, deliveries and drops to onPacket', async () => {
      const events: SimPacketEvent[] = []
      const net = new SimNetwork({ latencyMs: 0, onPacket: (e) => { events.push(e) } })
      const nat = net.addNat('home', '203.0.113.1', 'port-restricted-cone')
      const a = await net.addHost('10.0.0.2', { behind: nat }).bind(5000)
      const s = await net.addHost(A).bind(7000)
      a.send(Buffer.from('x'), s.local)
      s.send(Buffer.from('y'), { address: '203.0.113.1', port: 6000 })
      await net.idle()
      expect(events.map(e => e.type === 'drop' ? `drop:${e.reason}:${e.nat ?? ''}` : e.type)).to.deep.equal(['send', 'mapping', 'send', 'deliver', 'drop:filtered:home'])
      const mapping = events[1] as Extract<SimPacketEvent, { type: 'mapping' }>
      expect(mapping.external).to.deep.equal({ address: '203.0.113.1', port: 5000 })
      expect(mapping.internal).to.deep.equal({ address: '10.0.0.2', port: 5000 })
      await net.close()
    })
  })

  describe('close', () => {
    it('cancels pending deliveries, closes every socket, and is idempotent', async () => {
      const { net, a, b, inB } = await pair({ latencyMs: 5 })
      a.send(Buffer.from('x'), b.local)
      expect(net.stats().inFlight).to.equal(1)
      const closing = net.close()
      expect(net.close()).to.equal(closing)
      await closing
      expect(net.closed).to.equal(true)
      expect(b.closed).to.equal(true)
      expect(net.stats().inFlight).to.equal(0)
      await new Promise(resolve => setTimeout(resolve, 15))
      expect(inB.messages).to.have.length(0)
      a.send(Buffer.from('x'), b.local) // no throw
      await expectRejection(net.addHost('198.51.100.3').bind(), TransportError)
      await net.idle()
    })
  })
})
