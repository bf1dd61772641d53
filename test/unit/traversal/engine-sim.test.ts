import { expect } from 'chai'
import type { Endpoint } from '../../../src/net/endpoint.js'
import type { DatagramSocket } from '../../../src/net/udp.js'
import { MATRIX_TYPES, punchable } from '../../../src/lab/matrix.js'
import type { LabNatType } from '../../../src/lab/types.js'
import { SimNetwork, SimTurnServer, natPreset, type SimHost } from '../../../src/sim/index.js'
import { channelPair, connect, type ConnectOptions, type PeerSession, type SignalChannel, type SignalMessage } from '../../../src/traversal/index.js'

const TURN_IP = '203.0.113.10'
const CREDS = { username: 'sim', password: 'sim-pass' }

/** A socket wrapper whose traffic with some remotes can be cut, to kill a path mid-session. */
class CuttableSocket implements DatagramSocket {
  cut: (remote: Endpoint) => boolean = () => false
  constructor (private readonly inner: DatagramSocket) {}
  get local (): Endpoint { return this.inner.local }
  send (data: Uint8Array, to: Endpoint): void { if (!this.cut(to)) this.inner.send(data, to) }
  onMessage (handler: (data: Buffer, from: Endpoint) => void): void { this.inner.onMessage((d, f) => { if (!this.cut(f)) handler(d, f) }) }
  async close (): Promise<void> { await this.inner.close() }
}

interface World { net: SimNetwork, hosts: [SimHost, SimHost], turn: SimTurnServer }

async function world (a: LabNatType, b: LabNatType): Promise<World> {
  const net = new SimNetwork({ latencyMs: 2, seed: 7 })
  const turnHost = net.addHost(TURN_IP)
  const turn = await SimTurnServer.start(turnHost, { users: { sim: 'sim-pass' } })
  const site = (nat: LabNatType, publicIp: string, lan: string): SimHost => nat === 'none'
    ? net.addHost(publicIp.replace(/\.1$/, '.130'))
    : net.addHost(lan, { behind: net.addNat(`nat-${publicIp}`, publicIp, natPreset(nat as Exclude<LabNatType, 'none' | 'tcp-only'>)) })
  return { net, turn, hosts: [site(a, '198.51.100.1', '10.0.1.10'), site(b, '192.0.2.1', '10.0.2.10')] }
}

async function connectBoth (w: World, extra: Partial<ConnectOptions> = {}, channels?: [SignalChannel, SignalChannel], sockets?: [DatagramSocket, DatagramSocket]): Promise<[PeerSession, PeerSession]> {
  const [ca, cb] = channels ?? channelPair(3)
  const [sa, sb] = sockets ?? await Promise.all([w.hosts[0].bind(), w.hosts[1].bind()])
  const common: Partial<ConnectOptions> = {
    stunServers: [`${TURN_IP}:3478`],
    turnServers: [{ server: `${TURN_IP}:3478`, credentials: CREDS }],
    gatherTimeoutMs: 800,
    timeoutMs: 8000,
    ...extra
  }
  return await Promise.all([
    connect({ ...common, socket: sa, channel: ca, role: 'controlling' }),
    connect({ ...common, socket: sb, channel: cb, role: 'controlled' })
  ])
}

async function deliveredCount (from: PeerSession, to: PeerSession, count: number): Promise<number> {
  const seen = new Set<number>()
  const on = (d: Buffer): void => { if (d.length === 4) seen.add(d.readUInt32BE(0)) }
  to.on('message', on)
  for (let i = 0; i < count; i++) { const b = Buffer.alloc(4); b.writeUInt32BE(i); from.send(b) }
  for (let i = 0; i < 100 && seen.size < count; i++) await new Promise(resolve => setTimeout(resolve, 10))
  to.off('message', on)
  return seen.size
}

describe('traversal engine on the NAT simulator', function () {
  this.timeout(30_000)

  for (let i = 0; i < MATRIX_TYPES.length; i++) {
    for (let j = i; j < MATRIX_TYPES.length; j++) {
      const a = MATRIX_TYPES[i]; const b = MATRIX_TYPES[j]
      // udp-blocked and tcp-only sites need TCP (TURN over TCP, TCP punching), which the simulator does not carry: the
      // lab covers them.
      if (a === 'udp-blocked' || b === 'udp-blocked' || a === 'tcp-only' || b === 'tcp-only') continue
      const expected = punchable(a, b) ? 'direct' : 'relay'
      it(`${a} × ${b}: ${expected}, datagrams both ways`, async () => {
        const w = await world(a, b)
        const [sa, sb] = await connectBoth(w)
        try {
          await Promise.all([sa.settle(2000), sb.settle(2000)])
          expect(sa.path.type, JSON.stringify(sa.report().attempts)).to.equal(expected)
          expect(sb.path.type).to.equal(expected)
          expect(await deliveredCount(sa, sb, 50)).to.equal(50)
          expect(await deliveredCount(sb, sa, 50)).to.equal(50)
        } finally {
          await sa.close(); await sb.close(); await w.turn.close(); await w.net.close()
        }
      })
    }
  }

  it('relay first, then upgrade: data flows over the relay, then moves to a direct path found later, without loss', async () => {
    const w = await world('port-restricted-cone', 'port-restricted-cone')
    // Trickle: relayed candidates go through at once; every other candidate (in the offer/answer or trickled) 300 ms later.
    const [ca, cb] = channelPair(3)
    const delayed = (c: SignalChannel): SignalChannel => ({
      subscribe: c.subscribe,
      send: (m: SignalMessage) => {
        if (m.t === 'natkit/candidate' && !/ typ relay/.test(m.candidate)) { setTimeout(() => { void c.send(m) }, 300).unref(); return }
        if (m.t !== 'natkit/offer' && m.t !== 'natkit/answer') return c.send(m)
        const late = m.candidates.filter(x => !/ typ relay/.test(x))
        setTimeout(() => { for (const candidate of late) void c.send({ t: 'natkit/candidate', sid: m.sid, candidate }) }, 300).unref()
        return c.send({ ...m, candidates: m.candidates.filter(x => / typ relay/.test(x)) })
      }
    })
    const [sa, sb] = await connectBoth(w, {}, [delayed(ca), delayed(cb)])
    try {
      expect(sa.path.type).to.equal('relay')
      const paths: string[] = [sa.path.type]
      sa.on('path', (p) => { paths.push(p.type) })
      const seen = new Set<number>()
      sb.on('message', (d) => { if (d.length === 4) seen.add(d.readUInt32BE(0)) })
      for (let i = 0; i < 100; i++) {
        const buf = Buffer.alloc(4); buf.writeUInt32BE(i); sa.send(buf)
        await new Promise(resolve => setTimeout(resolve, 10))
      }
      await new Promise(resolve => setTimeout(resolve, 100))
      expect(paths).to.deep.equal(['relay', 'direct'])
      expect(sa.report().timings.directMs).to.be.a('number')
      expect(seen.size).to.be.at.least(98)
    } finally {
      await sa.close(); await sb.close(); await w.turn.close(); await w.net.close()
    }
  })

  it('falls back to the relay when the direct path dies (consent lost, RFC 7675), and data keeps flowing', async () => {
    const w = await world('full-cone', 'restricted-cone')
    const cuttable = new CuttableSocket(await w.hosts[0].bind())
    const [sa, sb] = await connectBoth(w, { consentIntervalMs: 100, consentTimeoutMs: 600 }, undefined, [cuttable, await w.hosts[1].bind()])
    try {
      await sa.settle(2000)
      expect(sa.path.type).to.equal('direct')
      const moved = new Promise<string>(resolve => sa.on('path', (p) => { resolve(p.type) }))
      // Everything between A and anyone but the TURN server is now lost.
      const cutAt = performance.now()
      cuttable.cut = (remote) => remote.address !== TURN_IP
      expect(await moved).to.equal('relay')
      const lost = sa.report().attempts.find(x => x.state === 'failed' && x.detail?.startsWith('consent lost') === true)
      expect(lost, JSON.stringify(sa.report().attempts)).to.not.equal(undefined)
      expect(performance.now() - cutAt).to.be.at.least(500) // no sooner than the consent timeout allows
      expect(await deliveredCount(sa, sb, 20)).to.equal(20)
    } finally {
      await sa.close(); await sb.close(); await w.turn.close(); await w.net.close()
    }
  })
})
