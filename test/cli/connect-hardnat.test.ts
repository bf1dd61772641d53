/**
 * `natcheck connect --port-mapping/--gateway/--port-prediction` on loopback: a PCP/NAT-PMP gateway on loopback (its
 * "external" address is 127.0.0.3, so the peer's checks to the mapped candidate stay on loopback) and an RFC 5780
 * STUN server on 127.0.0.1/127.0.0.2. The default gateway is never asked: --gateway points at the loopback one.
 */
import { expect } from 'chai'
import { spawn } from 'node:child_process'
import { RendezvousServer } from '../../src/rendezvous/server.js'
import { StunServer } from '../../src/stun/server.js'
import { FakeGateway } from '../integration/portmap/fake-gateway.js'
import { CLI } from '../support/cli.js'
import { iceLines, manualSide } from './support/manual-side.js'

interface Doc {
  path: { type: string } | null
  delivered: number
  gathering: Array<{ kind: string, ok: boolean, detail: string, reason?: string }>
  localCandidates: Array<{ type: string, address: string, port: number }>
}

describe('natcheck connect --port-mapping / --port-prediction', function () {
  this.timeout(30_000)
  let gw: FakeGateway
  let stun: StunServer
  beforeEach(async () => {
    gw = await FakeGateway.start('127.0.0.3')
    stun = await StunServer.start({ listen: { address: '127.0.0.1', port: 0 }, alternate: { address: '127.0.0.2', port: 0 } })
  })
  afterEach(async () => {
    await gw.close()
    await stun.close()
  })

  it('offers the mapped port as a candidate, reports the prediction, connects, and removes the mapping on exit', async () => {
    const stunAt = `127.0.0.1:${stun.addresses().udp[0].port}`
    const a = manualSide(['--json', '--port-mapping', 'pcp,nat-pmp', '--gateway', `127.0.0.1:${gw.port}`, '--port-prediction', '--stun', stunAt], 3)
    const b = manualSide([], 3)
    try {
      const la = await iceLines(a, 'stderr')
      const lb = await iceLines(b, 'stdout')
      expect(la.some(l => / 127\.0\.0\.3 \d+ typ srflx raddr 127\.0\.0\.1/.test(l)), la.join('\n')).to.equal(true)
      a.child.stdin.end(lb.join('\n') + '\n\n')
      b.child.stdin.end(la.join('\n') + '\n\n')
      const [ca, cb] = await Promise.all([a.exit, b.exit])
      expect(ca, a.stderr).to.equal(0)
      expect(cb, b.stderr).to.equal(0)
      const doc = JSON.parse(a.stdout) as Doc
      expect(doc.path?.type).to.equal('direct')
      expect(doc.delivered).to.equal(3)
      const pm = doc.gathering.find(g => g.kind === 'portmap')
      expect(pm?.ok, JSON.stringify(doc.gathering)).to.equal(true)
      const mapped = doc.localCandidates.find(c => c.type === 'srflx' && c.address === '127.0.0.3')
      expect(mapped, JSON.stringify(doc.localCandidates)).to.not.equal(undefined)
      expect(doc.gathering.find(g => g.kind === 'prediction')?.reason).to.equal('endpoint-independent')
      expect(gw.requests.some(r => r.internalPort === mapped?.port && r.lifetimeS > 0)).to.equal(true)
      expect(gw.live(), 'the mapping is removed when natcheck exits').to.deep.equal([])
    } finally {
      for (const s of [a, b]) if (s.child.exitCode === null) s.child.kill('SIGKILL')
    }
  })

  for (const [args, message] of [
    [['--port-mapping', 'pcp,smoke-signals'], /--port-mapping takes a comma-separated subset of pcp, nat-pmp, upnp, not smoke-signals/],
    [['--gateway', '127.0.0.1'], /--gateway goes with --port-mapping/],
    [['--port-mapping', '--gateway', 'router.local'], /--gateway takes an IPv4 address/]
  ] as const) {
    it(`rejects ${args.join(' ')} (exit 1)`, async () => {
      const s = manualSide([...args], 3)
      s.child.stdin.end()
      expect(await s.exit, s.stderr).to.equal(1)
      expect(s.stderr).to.match(message)
      expect(gw.requests).to.deep.equal([])
    })
  }
})

describe('natcheck connect --port-mapping: SIGINT while connecting', function () {
  this.timeout(30_000)
  let gw: FakeGateway
  let rendezvous: RendezvousServer
  beforeEach(async () => {
    gw = await FakeGateway.start('127.0.0.3')
    rendezvous = await RendezvousServer.start({ listen: { address: '127.0.0.1', port: 0 }, authSecret: 'hardnat-test' })
  })
  afterEach(async () => {
    await rendezvous.close()
    await gw.close()
  })

  it('removes the mapping before the signal ends the process', async () => {
    // No peer ever comes: natcheck holds the mapping while it waits, until SIGINT.
    const child = spawn(process.execPath, [CLI, 'connect', '--rendezvous', rendezvous.url ?? '', '--id', 'alice', '--peer', 'bob', '--auth-secret', 'hardnat-test',
      '--local-address', '127.0.0.1', '--timeout', '20000', '--port-mapping', 'pcp,nat-pmp', '--gateway', `127.0.0.1:${gw.port}`], { env: { ...process.env, NO_COLOR: '1' }, stdio: ['ignore', 'pipe', 'pipe'] })
    let stderr = ''
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString() })
    const exit = new Promise<NodeJS.Signals | number | null>(resolve => child.on('exit', (code, signal) => { resolve(signal ?? code) }))
    try {
      for (let i = 0; i < 200 && gw.live().length === 0; i++) await new Promise(resolve => setTimeout(resolve, 25))
      expect(gw.live().length, stderr).to.equal(1)
      child.kill('SIGINT')
      expect(await exit, stderr).to.equal('SIGINT')
      expect(gw.live(), 'removed before exit').to.deep.equal([])
      expect(gw.requests.some(r => r.lifetimeS === 0)).to.equal(true)
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
    }
  })
})
