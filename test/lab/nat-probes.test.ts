/**
 * Direct empirical checks with the lab's own UDP/TCP probe, for what natdiscovery cannot tell: exact
 * external ports (preservation, +1 allocation, randomness), the source of hairpinned packets,
 * site-to-site hole punching, UDP blocking with TCP 443 still open, and the mapping timeout.
 */
import { expect } from 'chai'
import { Lab } from '../../src/lab/index.js'
import { probeClient, PROBE, requireLab, seen, startEchoServer } from './support/lab-helpers.js'

const S1 = '203.0.113.10'
const S2 = '203.0.113.11'
/** Echo endpoints: index 0..3 = S1:4000, S2:4000, S1:4001, S2:4001. */
const ECHO = [`${S1}:4000`, `${S2}:4000`, `${S1}:4001`, `${S2}:4001`]

function port (ep: string): number {
  return Number(ep.slice(ep.lastIndexOf(':') + 1))
}

describe('Lab NATs probed directly', function () {
  this.timeout(60_000)

  describe('full-cone (A) and symmetric (B), hairpin on', function () {
    let lab: Lab | undefined
    before(async function () {
      requireLab(this, false)
      lab = await Lab.up({ natA: 'full-cone', natB: 'symmetric', hairpin: true })
      await startEchoServer(lab, ECHO)
    })
    after(async function () { await lab?.down() })

    it('full cone keeps the source port and one mapping for every destination, and lets anyone in', async function () {
      const r = await probeClient(lab!, 'a', {
        sockets: 1,
        bind: [41000],
        steps: [...ECHO.map((to) => ({ socket: 0, to })), { socket: 0, to: ECHO[0]!, body: '{"from":3}' }],
        waitMs: 300
      })
      const mapped = new Set(r.replies.map((x) => seen(x.body)))
      expect([...mapped]).to.deep.equal(['198.51.100.1:41000'])
      expect(r.replies.map((x) => x.from)).to.include(`${S2}:4001`)
    })

    it('symmetric gives a different random port to every destination', async function () {
      const r = await probeClient(lab!, 'b', {
        sockets: 2,
        steps: [...ECHO.map((to) => ({ socket: 0, to })), ...ECHO.map((to) => ({ socket: 1, to }))],
        waitMs: 300
      })
      expect(r.replies).to.have.length(8)
      const ports = r.replies.map((x) => port(seen(x.body)))
      expect(new Set(ports).size, `ports ${ports.join(',')}`).to.equal(8)
      expect(ports.every((p) => !r.localPorts.includes(p)), 'source port preserved').to.equal(true)
      const steps = ports.slice(1).map((p, i) => p - ports[i]!)
      expect(steps.every((d) => d === 1), `ports ${ports.join(',')} look sequential`).to.equal(false)
      // and a reply from an endpoint the socket never sent to is filtered (APDF)
      const f = await probeClient(lab!, 'b', { sockets: 1, steps: [{ socket: 0, to: ECHO[0]!, body: '{"from":2}' }], waitMs: 300 })
      expect(f.replies).to.have.length(0)
    })

    it('hairpins a cone mapping, with the sender\'s own mapping as source', async function () {
      const r = await probeClient(lab!, 'a', {
        sockets: 2,
        bind: [41010, 41011],
        steps: [{ socket: 0, to: ECHO[0]! }, { socket: 1, to: ECHO[0]! }, { socket: 1, to: '$seen:0', body: 'hairpin' }],
        waitMs: 300
      })
      const hp = r.replies.filter((x) => x.body === 'hairpin')
      expect(hp).to.deep.equal([{ socket: 0, from: '198.51.100.1:41011', body: 'hairpin' }])
    })

    it('hairpins a symmetric mapping too', async function () {
      const r = await probeClient(lab!, 'b', {
        sockets: 2,
        steps: [{ socket: 0, to: ECHO[0]! }, { socket: 1, to: '$seen:0', body: 'hairpin' }],
        waitMs: 300
      })
      const hp = r.replies.filter((x) => x.body === 'hairpin')
      expect(hp).to.have.length(1)
      expect(hp[0]!.socket).to.equal(0)
      expect(hp[0]!.from.startsWith('192.0.2.1:')).to.equal(true)
    })
  })

  describe('symmetric-sequential (A, hairpin off) and udp-blocked (B)', function () {
    let lab: Lab | undefined
    before(async function () {
      requireLab(this, false)
      lab = await Lab.up({ natA: 'symmetric-sequential', natB: 'udp-blocked', hairpin: false })
      await startEchoServer(lab, ECHO, [`${S1}:443`, `${S1}:8080`])
    })
    after(async function () { await lab?.down() })

    it('symmetric-sequential allocates external ports +1 per new mapping', async function () {
      const r = await probeClient(lab!, 'a', {
        sockets: 2,
        steps: [...ECHO.map((to) => ({ socket: 0, to })), ...ECHO.map((to) => ({ socket: 1, to }))],
        waitMs: 300
      })
      const bySend = [0, 1].flatMap((s) => ECHO.map((ep) => r.replies.find((x) => x.socket === s && x.from === ep)))
      const ports = bySend.map((x) => port(seen(x!.body)))
      const steps = ports.slice(1).map((p, i) => p - ports[i]!)
      expect(steps, `ports ${ports.join(',')}`).to.deep.equal([1, 1, 1, 1, 1, 1, 1])
    })

    it('does not hairpin when hairpinning is off', async function () {
      const r = await probeClient(lab!, 'a', {
        sockets: 2,
        steps: [{ socket: 0, to: ECHO[0]! }, { socket: 1, to: '$seen:0', body: 'hairpin' }],
        waitMs: 400
      })
      expect(r.replies.filter((x) => x.socket === 0)).to.have.length(1)
      expect(r.replies.filter((x) => x.body === 'hairpin')).to.have.length(0)
    })

    it('udp-blocked drops UDP but lets TCP 443 out (NATed), and not TCP 8080', async function () {
      const u = await probeClient(lab!, 'b', { sockets: 1, steps: ECHO.map((to) => ({ socket: 0, to })), waitMs: 400 })
      expect(u.replies).to.have.length(0)
      const ok = await lab!.exec('b', ['node', PROBE, 'tcp-connect', JSON.stringify({ to: `${S1}:443`, timeoutMs: 2000 })])
      const okR = JSON.parse(ok.stdout) as { connected: boolean, data?: string }
      expect(okR.connected).to.equal(true)
      expect(seen(okR.data!.trim()).startsWith('192.0.2.1:')).to.equal(true)
      const no = await lab!.exec('b', ['node', PROBE, 'tcp-connect', JSON.stringify({ to: `${S1}:8080`, timeoutMs: 1000 })])
      expect((JSON.parse(no.stdout) as { connected: boolean }).connected).to.equal(false)
    })
  })

  describe('restricted-cone (A) and port-restricted-cone (B), 2 s UDP timeout', function () {
    let lab: Lab | undefined
    before(async function () {
      requireLab(this, false)
      lab = await Lab.up({ natA: 'restricted-cone', natB: 'port-restricted-cone', udpTimeoutS: 2 })
      await startEchoServer(lab, ECHO)
    })
    after(async function () { await lab?.down() })

    it('restricted cone admits another port of a contacted address but not another address', async function () {
      const r = await probeClient(lab!, 'a', {
        sockets: 1,
        steps: [{ socket: 0, to: ECHO[0]! }, { socket: 0, to: ECHO[0]!, body: '{"from":2}' }, { socket: 0, to: ECHO[0]!, body: '{"from":1}' }],
        waitMs: 300
      })
      expect(r.replies.map((x) => x.from).sort()).to.deep.equal([`${S1}:4000`, `${S1}:4001`])
    })

    it('port-restricted cone admits only the contacted address and port', async function () {
      const r = await probeClient(lab!, 'b', {
        sockets: 1,
        steps: [{ socket: 0, to: ECHO[0]! }, { socket: 0, to: ECHO[0]!, body: '{"from":2}' }, { socket: 0, to: ECHO[0]!, body: '{"from":1}' }],
        waitMs: 300
      })
      expect(r.replies.map((x) => x.from)).to.deep.equal([`${S1}:4000`])
    })

    it('lets the two cone sites punch a hole to each other', async function () {
      const punch = (peer: string): { sockets: number, bind: number[], steps: Array<{ socket: number, to: string, body?: string, delayMs?: number }>, waitMs: number } => ({
        sockets: 1,
        bind: [42000],
        steps: [{ socket: 0, to: ECHO[0]!, delayMs: 200 }, ...[1, 2, 3, 4, 5].map(() => ({ socket: 0, to: `${peer}:42000`, body: 'punch', delayMs: 100 }))],
        waitMs: 300
      })
      const [a, b] = await Promise.all([probeClient(lab!, 'a', punch('192.0.2.1')), probeClient(lab!, 'b', punch('198.51.100.1'))])
      expect(a.replies.some((x) => x.body === 'punch' && x.from === '192.0.2.1:42000'), JSON.stringify(a)).to.equal(true)
      expect(b.replies.some((x) => x.body === 'punch' && x.from === '198.51.100.1:42000'), JSON.stringify(b)).to.equal(true)
    })

    it('applies the UDP timeout to conntrack and expires idle mappings', async function () {
      const sys = await lab!.exec('router-a', ['sysctl', '-n', 'net.netfilter.nf_conntrack_udp_timeout', 'net.netfilter.nf_conntrack_udp_timeout_stream'])
      expect(sys.stdout.trim().split('\n')).to.deep.equal(['2', '2'])
      await probeClient(lab!, 'a', { sockets: 1, bind: [43000], steps: [{ socket: 0, to: ECHO[0]! }], waitMs: 100 })
      const live = await lab!.exec('router-a', ['nft', 'list', 'map', 'ip', 'natkit', 'eim_in'])
      expect(live.stdout).to.include('43000')
      await new Promise((resolve) => setTimeout(resolve, 2600))
      const gone = await lab!.exec('router-a', ['nft', 'list', 'map', 'ip', 'natkit', 'eim_in'])
      expect(gone.stdout).to.not.include('43000')
      // after expiry, the restricted cone no longer admits the second port of the server
      const r = await probeClient(lab!, 'a', { sockets: 1, bind: [43001], steps: [{ socket: 0, to: ECHO[0]!, delayMs: 2600 }, { socket: 0, to: `${S2}:4000`, body: '{"from":2}' }], waitMs: 300 })
      expect(r.replies.map((x) => x.from)).to.deep.equal([`${S1}:4000`])
    })
  })
})
