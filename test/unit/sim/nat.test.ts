import { expect } from 'chai'
import { LAB_NAT_FILTERING, LAB_NAT_MAPPING, LAB_NAT_TYPES, type LabNatType } from '../../../src/lab/types.js'
import {
  SIM_NAT_PRESETS, SimNat, SimNetwork, natPreset, type SimBehaviour, type SimNatOptions, type SimNatPreset, type SimSocket
} from '../../../src/sim/index.js'
import { Inbox, ManualClock, ep } from './helpers.js'

const NAT_IP = '203.0.113.1'
const S1 = '198.51.100.1'
const S2 = '198.51.100.2'
const BEHAVIOURS: SimBehaviour[] = ['endpoint-independent', 'address-dependent', 'address-and-port-dependent']

/** A NAT with host A (10.0.0.2:5000) behind it; public hosts S1 (ports 7000, 7001) and S2 (port 7000). */
async function world (nat: SimNatOptions, extra: { now?: () => number, seed?: number } = {}): Promise<{
  net: SimNetwork, nat: SimNat, a: SimSocket, s1a: SimSocket, s1b: SimSocket, s2: SimSocket, inA: Inbox, in1a: Inbox, in1b: Inbox, in2: Inbox
}> {
  const net = new SimNetwork({ latencyMs: 0, ...extra })
  const n = net.addNat('nat', NAT_IP, nat)
  const a = await net.addHost('10.0.0.2', { behind: n }).bind(5000)
  const h1 = net.addHost(S1)
  const s1a = await h1.bind(7000)
  const s1b = await h1.bind(7001)
  const s2 = await net.addHost(S2).bind(7000)
  return { net, nat: n, a, s1a, s1b, s2, inA: new Inbox(a), in1a: new Inbox(s1a), in1b: new Inbox(s1b), in2: new Inbox(s2) }
}

const data = (s: string): Uint8Array => new TextEncoder().encode(s)

/** Observe the mapping behaviour: the external endpoints S1:7000, S1:7001 and S2:7000 see. */
async function observeMapping (w: Awaited<ReturnType<typeof world>>): Promise<[string, string, string]> {
  w.a.send(data('1'), w.s1a.local)
  w.a.send(data('2'), w.s1b.local)
  w.a.send(data('3'), w.s2.local)
  await w.net.idle()
  return [w.in1a.froms[0], w.in1b.froms[0], w.in2.froms[0]]
}

function mappingOf ([m1, m2, m3]: [string, string, string]): SimBehaviour {
  if (m1 === m3 && m1 === m2) return 'endpoint-independent'
  if (m1 === m2) return 'address-dependent'
  return 'address-and-port-dependent'
}

/** Observe the filtering behaviour: after A sent to S1:7000, who of S1:7000, S1:7001, S2:7000 gets in. */
async function observeFiltering (w: Awaited<ReturnType<typeof world>>): Promise<{ admitted: string[], external: string }> {
  w.a.send(data('open'), w.s1a.local)
  await w.net.idle()
  const external = w.in1a.messages[0].from
  w.s1a.send(data('same ip and port'), external)
  w.s1b.send(data('same ip, other port'), external)
  w.s2.send(data('other ip'), external)
  await w.net.idle()
  return { admitted: w.inA.texts, external: ep(external) }
}

function filteringOf (admitted: string[]): SimBehaviour | 'broken' {
  const key = admitted.join('|')
  if (key === 'same ip and port|same ip, other port|other ip') return 'endpoint-independent'
  if (key === 'same ip and port|same ip, other port') return 'address-dependent'
  if (key === 'same ip and port') return 'address-and-port-dependent'
  return 'broken'
}

describe('SimNat', () => {
  describe('mapping behaviour (RFC 4787 §4.1)', () => {
    for (const mapping of BEHAVIOURS) {
      it(`${mapping}: external endpoints per destination are as specified`, async () => {
        const w = await world({ mapping, filtering: 'endpoint-independent' })
        const seen = await observeMapping(w)
        expect(mappingOf(seen)).to.equal(mapping)
        // Port preservation: the first mapping keeps the internal port; later ones take the next free port.
        expect(seen[0]).to.equal(`${NAT_IP}:5000`)
        if (mapping === 'address-dependent') expect(seen[2]).to.equal(`${NAT_IP}:5001`)
        if (mapping === 'address-and-port-dependent') expect(seen.slice(1)).to.deep.equal([`${NAT_IP}:5001`, `${NAT_IP}:5002`])
        expect(w.nat.mappings()).to.have.length(mapping === 'endpoint-independent' ? 1 : mapping === 'address-dependent' ? 2 : 3)
        await w.net.close()
      })
    }
  })

  describe('filtering behaviour (RFC 4787 §5)', () => {
    for (const filtering of BEHAVIOURS) {
      it(`${filtering}: admits exactly the permitted remotes`, async () => {
        const w = await world({ mapping: 'endpoint-independent', filtering })
        const { admitted } = await observeFiltering(w)
        expect(filteringOf(admitted)).to.equal(filtering)
        const dropped = { 'endpoint-independent': 0, 'address-dependent': 1, 'address-and-port-dependent': 2 }[filtering]
        expect(w.net.stats().dropped.filtered).to.equal(dropped)
        await w.net.close()
      })
    }

    it('drops unsolicited packets to a port with no mapping, even with endpoint-independent filtering', async () => {
      const w = await world(natPreset('full-cone'))
      w.s1a.send(data('hello?'), { address: NAT_IP, port: 5000 })
      await w.net.idle()
      expect(w.inA.messages).to.have.length(0)
      expect(w.net.stats().dropped.filtered).to.equal(1)
      await w.net.close()
    })
  })

  describe('presets', () => {
    it('cover the lab NAT types (all but none, and tcp-only: the simulator carries UDP only)', () => {
      const lab = LAB_NAT_TYPES.filter((t): t is Exclude<LabNatType, 'none' | 'tcp-only'> => t !== 'none' && t !== 'tcp-only')
      expect([...SIM_NAT_PRESETS]).to.deep.equal(lab)
      expect(Object.keys(SimNat.presets)).to.deep.equal(lab)
    })

    for (const preset of SIM_NAT_PRESETS.filter(p => p !== 'udp-blocked')) {
      it(`${preset}: behaves as the lab's ${preset} (mapping ${LAB_NAT_MAPPING[preset]}, filtering ${LAB_NAT_FILTERING[preset]})`, async () => {
        const m = await world(natPreset(preset))
        expect(mappingOf(await observeMapping(m))).to.equal(LAB_NAT_MAPPING[preset])
        await m.net.close()
        const f = await world(natPreset(preset))
        expect(filteringOf((await observeFiltering(f)).admitted)).to.equal(LAB_NAT_FILTERING[preset])
        await f.net.close()
      })
    }

    it('udp-blocked: every outbound datagram is dropped; the LAN still works', async () => {
      const net = new SimNetwork({ latencyMs: 0 })
      const nat = net.addNat('nat', NAT_IP, 'udp-blocked')
      const a = await net.addHost('10.0.0.2', { behind: nat }).bind(5000)
      const b = await net.addHost('10.0.0.3', { behind: nat }).bind(5000)
      const s = await net.addHost(S1).bind(7000)
      const inS = new Inbox(s); const inB = new Inbox(b)
      for (let i = 0; i < 5; i++) a.send(data(`${i}`), s.local)
      a.send(data('lan'), b.local)
      await net.idle()
      expect(inS.messages).to.have.length(0)
      expect(inB.texts).to.deep.equal(['lan'])
      expect(net.stats().dropped['udp-blocked']).to.equal(5)
      expect(nat.mappings()).to.have.length(0)
      await net.close()
    })

    it('natPreset returns a copy and rejects unknown names', () => {
      const p = natPreset('full-cone')
      ;(p as { hairpin?: boolean }).hairpin = true
      expect(natPreset('full-cone').hairpin).to.equal(undefined)
      expect(() => natPreset('open' as SimNatPreset)).to.throw(/unknown NAT preset/)
    })
  })

  describe('port allocation (RFC 4787 §4.2)', () => {
    it('preserving: keeps the internal port when free, else takes the next free one', async () => {
      const net = new SimNetwork({ latencyMs: 0 })
      const nat = net.addNat('nat', NAT_IP, 'full-cone')
      const a = await net.addHost('10.0.0.2', { behind: nat }).bind(5000)
      const b = await net.addHost('10.0.0.3', { behind: nat }).bind(5000)
      const inS = new Inbox(await net.addHost(S1).bind(7000))
      a.send(data('a'), { address: S1, port: 7000 })
      b.send(data('b'), { address: S1, port: 7000 })
      await net.idle()
      expect(inS.froms).to.deep.equal([`${NAT_IP}:5000`, `${NAT_IP}:5001`])
      await net.close()
    })

    for (const step of [1, 2, -3]) {
      it(`sequential: each new mapping (of any host) takes the previous port ${step > 0 ? '+' : ''}${step}`, async () => {
        const net = new SimNetwork({ latencyMs: 0 })
        const nat = net.addNat('nat', NAT_IP, { ...natPreset('symmetric-sequential'), sequentialStep: step })
        const a = await net.addHost('10.0.0.2', { behind: nat }).bind(5000)
        const b = await net.addHost('10.0.0.3', { behind: nat }).bind(6000)
        const s = net.addHost(S1)
        const ins = [new Inbox(await s.bind(7000)), new Inbox(await s.bind(7001)), new Inbox(await s.bind(7002))]
        a.send(data('x'), { address: S1, port: 7000 })
        a.send(data('x'), { address: S1, port: 7001 })
        b.send(data('x'), { address: S1, port: 7002 })
        a.send(data('x'), { address: S1, port: 7000 }) // an existing mapping: no new port
        await net.idle()
        const ports = ins.map(i => i.messages[0].from.port)
        expect(ports).to.deep.equal([50000, 50000 + step, 50000 + 2 * step])
        expect(ins[0].messages[1].from.port).to.equal(50000)
        await net.close()
      })
    }

    it('random: reproducible from the seed, different for another seed, within the port range', async () => {
      const run = async (seed: number): Promise<number[]> => {
        const net = new SimNetwork({ latencyMs: 0, seed, loss: 0.2 })
        const nat = net.addNat('nat', NAT_IP, { ...natPreset('symmetric'), portRange: [20000, 29999] })
        const a = await net.addHost('10.0.0.2', { behind: nat }).bind(5000)
        for (let p = 7000; p < 7020; p++) a.send(data('x'), { address: S1, port: p })
        await net.idle()
        const ports = nat.mappings().map(m => m.external.port)
        await net.close()
        return ports
      }
      const first = await run(42)
      expect(first).to.have.length(20)
      expect(new Set(first).size).to.equal(20)
      for (const p of first) expect(p).to.be.within(20000, 29999)
      expect(await run(42)).to.deep.equal(first)
      expect(await run(43)).to.not.deep.equal(first)
    })
  })

  describe('hairpinning (RFC 4787 §6)', () => {
    async function twoOnOneLan (hairpin: boolean, preset: SimNatPreset = 'port-restricted-cone'): Promise<{ net: SimNetwork, a: SimSocket, b: SimSocket, inA: Inbox, inB: Inbox, bExternal: { address: string, port: number }, aExternal: { address: string, port: number } }> {
      const net = new SimNetwork({ latencyMs: 0 })
      const nat = net.addNat('nat', NAT_IP, { ...natPreset(preset), hairpin })
      const a = await net.addHost('10.0.0.2', { behind: nat }).bind(5000)
      const b = await net.addHost('10.0.0.3', { behind: nat }).bind(6000)
      const inS = new Inbox(await net.addHost(S1).bind(7000))
      a.send(data('a'), { address: S1, port: 7000 })
      b.send(data('b'), { address: S1, port: 7000 })
      await net.idle()
      return { net, a, b, inA: new Inbox(a), inB: new Inbox(b), aExternal: inS.messages[0].from, bExternal: inS.messages[1].from }
    }

    it('on: a LAN packet to the NAT\'s public address comes back in, from the sender\'s mapping', async () => {
      const w = await twoOnOneLan(true)
      w.a.send(data('to b'), w.bExternal)
      await w.net.idle()
      expect(w.inB.texts).to.deep.equal(['to b'])
      expect(w.inB.froms).to.deep.equal([ep(w.aExternal)])
      w.b.send(data('back'), w.inB.messages[0].from)
      await w.net.idle()
      expect(w.inA.texts).to.deep.equal(['back'])
      expect(w.inA.froms).to.deep.equal([ep(w.bExternal)])
      await w.net.close()
    })

    it('on, symmetric NAT: the hairpinned source is a new mapping, and the packet is not filtered (as in the lab)', async () => {
      const w = await twoOnOneLan(true, 'symmetric')
      w.a.send(data('to b'), w.bExternal)
      await w.net.idle()
      expect(w.inB.texts).to.deep.equal(['to b'])
      expect(w.inB.messages[0].from.address).to.equal(NAT_IP)
      expect(w.inB.messages[0].from.port).to.not.equal(w.aExternal.port)
      await w.net.close()
    })

    it('on, with hairpinFiltering: hairpinned packets pass the inbound filter', async () => {
      const net = new SimNetwork({ latencyMs: 0 })
      const nat = net.addNat('nat', NAT_IP, { ...natPreset('symmetric'), hairpin: true, hairpinFiltering: true })
      const a = await net.addHost('10.0.0.2', { behind: nat }).bind(5000)
      const b = await net.addHost('10.0.0.3', { behind: nat }).bind(6000)
      const inS = new Inbox(await net.addHost(S1).bind(7000))
      const inB = new Inbox(b)
      b.send(data('b'), { address: S1, port: 7000 })
      await net.idle()
      a.send(data('to b'), inS.messages[0].from)
      await net.idle()
      expect(inB.messages).to.have.length(0)
      expect(net.stats().dropped.filtered).to.equal(1)
      await net.close()
    })

    it('off: the packet is dropped as hairpin-disabled', async () => {
      const w = await twoOnOneLan(false)
      w.a.send(data('to b'), w.bExternal)
      await w.net.idle()
      expect(w.inB.messages).to.have.length(0)
      expect(w.net.stats().dropped['hairpin-disabled']).to.equal(1)
      await w.net.close()
    })

    it('hosts on one LAN reach each other directly by private address', async () => {
      const w = await twoOnOneLan(false)
      w.a.send(data('direct'), w.b.local)
      await w.net.idle()
      expect(w.inB.froms).to.deep.equal(['10.0.0.2:5000'])
      await w.net.close()
    })
  })

  describe('mapping lifetime (RFC 4787 REQ-5, REQ-6)', () => {
    it('a mapping idle for mappingTimeoutMs expires (real clock, small timeout)', async () => {
      const w = await world({ ...natPreset('full-cone'), mappingTimeoutMs: 30 })
      const { external } = await observeFiltering(w)
      w.inA.clear()
      await new Promise(resolve => setTimeout(resolve, 40))
      const [address, port] = external.split(':')
      w.s1a.send(data('late'), { address, port: Number(port) })
      await w.net.idle()
      expect(w.inA.messages).to.have.length(0)
      expect(w.net.stats().dropped['mapping-expired']).to.equal(1)
      expect(w.nat.mappings()).to.have.length(0)
      await w.net.close()
    })

    const cases = [
      { name: 'outbound packets refresh the mapping', inboundRefresh: true, refresh: 'out', at: 45, admitted: true },
      { name: 'admitted inbound packets refresh it too (inboundRefresh, the default)', inboundRefresh: true, refresh: 'in', at: 45, admitted: true },
      { name: 'without inboundRefresh, inbound packets do not', inboundRefresh: false, refresh: 'in', at: 45, admitted: false },
      { name: 'without traffic it expires at the timeout', inboundRefresh: true, refresh: 'none', at: 30, admitted: false },
      { name: 'and lives until just before', inboundRefresh: true, refresh: 'none', at: 29, admitted: true }
    ]
    for (const c of cases) {
      it(c.name, async () => {
        const clock = new ManualClock()
        const w = await world({ ...natPreset('port-restricted-cone'), mappingTimeoutMs: 30, inboundRefresh: c.inboundRefresh }, { now: clock.now })
        const { external } = await observeFiltering(w)
        w.inA.clear()
        const to = { address: NAT_IP, port: Number(external.split(':')[1]) }
        clock.advance(20)
        if (c.refresh === 'out') w.a.send(data('keepalive'), w.s1a.local)
        if (c.refresh === 'in') w.s1a.send(data('keepalive'), to)
        await w.net.idle()
        w.inA.clear()
        clock.advance(c.at - 20)
        w.s1a.send(data('probe'), to)
        await w.net.idle()
        expect(w.inA.texts).to.deep.equal(c.admitted ? ['probe'] : [])
        if (!c.admitted) expect(w.net.stats().dropped['mapping-expired']).to.equal(1)
        await w.net.close()
      })
    }

    it('a permission (remote) idle for the timeout closes even while the mapping lives on', async () => {
      const clock = new ManualClock()
      const w = await world({ ...natPreset('restricted-cone'), mappingTimeoutMs: 30 }, { now: clock.now })
      w.a.send(data('to s2'), w.s2.local)
      w.a.send(data('to s1'), w.s1a.local)
      await w.net.idle()
      const external = w.in1a.messages[0].from
      clock.advance(20)
      w.a.send(data('keep s1'), w.s1a.local)
      clock.advance(20)
      w.s2.send(data('from s2'), external)
      w.s1b.send(data('from s1'), external)
      await w.net.idle()
      expect(w.inA.texts).to.deep.equal(['from s1'])
      expect(w.net.stats().dropped.filtered).to.equal(1)
      await w.net.close()
    })

    it('after expiry an outbound packet makes a new mapping', async () => {
      const clock = new ManualClock()
      const w = await world({ ...natPreset('symmetric'), mappingTimeoutMs: 30 }, { now: clock.now, seed: 7 })
      w.a.send(data('1'), w.s1a.local)
      clock.advance(31)
      w.a.send(data('2'), w.s1a.local)
      await w.net.idle()
      expect(w.in1a.messages).to.have.length(2)
      expect(w.in1a.froms[0]).to.not.equal(w.in1a.froms[1])
      expect(w.nat.mappings()).to.have.length(1)
      await w.net.close()
    })

    it('clearMappings forgets every mapping (a NAT reboot)', async () => {
      const w = await world(natPreset('full-cone'))
      const { external } = await observeFiltering(w)
      w.inA.clear()
      w.nat.clearMappings()
      w.s1a.send(data('after reboot'), { address: NAT_IP, port: Number(external.split(':')[1]) })
      await w.net.idle()
      expect(w.inA.messages).to.have.length(0)
      await w.net.close()
    })
  })

  describe('topologies', () => {
    it('double NAT: a host behind two NATs is seen at the outer NAT\'s address and gets replies', async () => {
      const net = new SimNetwork({ latencyMs: 0 })
      const cgn = net.addNat('cgn', NAT_IP, 'port-restricted-cone')
      const home = net.addNat('home', '100.64.0.2', 'port-restricted-cone', { behind: cgn })
      const host = net.addHost('192.168.1.2', { behind: home })
      const a = await host.bind(5000)
      const s = await net.addHost(S1).bind(7000)
      const inA = new Inbox(a); const inS = new Inbox(s)
      expect(host.publicIp).to.equal(NAT_IP)
      a.send(data('out'), s.local)
      await net.idle()
      expect(inS.froms).to.deep.equal([`${NAT_IP}:5000`])
      s.send(data('in'), inS.messages[0].from)
      await net.idle()
      expect(inA.texts).to.deep.equal(['in'])
      expect(inA.froms).to.deep.equal([`${S1}:7000`])
      expect(home.mappings()[0].external).to.deep.equal({ address: '100.64.0.2', port: 5000 })
      await net.close()
    })

    it('separate LANs may reuse private addresses', async () => {
      const net = new SimNetwork({ latencyMs: 0 })
      const n1 = net.addNat('n1', '203.0.113.1', 'full-cone')
      const n2 = net.addNat('n2', '203.0.113.2', 'full-cone')
      const a = await net.addHost('10.0.0.2', { behind: n1 }).bind(5000)
      const b = await net.addHost('10.0.0.2', { behind: n2 }).bind(5000)
      const inB = new Inbox(b)
      b.send(data('open'), { address: '203.0.113.1', port: 5000 }) // opens b's mapping; dropped at n1 (no mapping)
      a.send(data('open'), { address: '203.0.113.2', port: 5000 })
      await net.idle()
      a.send(data('hi'), { address: '203.0.113.2', port: 5000 })
      await net.idle()
      expect(inB.texts).to.deep.equal(['open', 'hi'])
      expect(inB.froms[0]).to.equal('203.0.113.1:5000')
      await net.close()
    })

    it('a private address is not routable from the internet; unknown addresses are no-route', async () => {
      const w = await world(natPreset('full-cone'))
      w.s1a.send(data('x'), { address: '10.0.0.2', port: 5000 })
      w.a.send(data('x'), { address: '198.51.100.99', port: 1 })
      await w.net.idle()
      expect(w.net.stats().dropped['no-route']).to.equal(2)
      await w.net.close()
    })
  })
})
