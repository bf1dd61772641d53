import { expect } from 'chai'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { StunServer } from '../../src/stun/index.js'
import { natcheck } from '../support/cli.js'
import { freePort } from '../support/net.js'

describe('natcheck (discovery)', function () {
  this.timeout(20_000)
  let server: StunServer
  before(async () => { server = await StunServer.start({ listen: { address: '127.0.0.1', port: 0 }, alternate: { address: '127.0.0.2', port: 0 } }) })
  after(async () => { await server?.close() })

  it('classifies loopback against natkit\'s RFC 5780 server as open, with every field of the JSON contract', async () => {
    const r = await natcheck(['--server', `127.0.0.1:${server.addresses().udp[0].port}`, '--json', '--no-portmap'])
    expect(r.code, r.stderr).to.equal(0)
    const doc = JSON.parse(r.stdout)
    expect(doc.schemaVersion).to.equal(1)
    expect(doc.portMapping, '--no-portmap asks no gateway').to.equal(null)
    expect(doc.nat).to.include({ type: 'open', behindNat: false, mapping: 'endpoint-independent', filtering: 'endpoint-independent', alg: false, portPreservation: true })
    expect(doc.nat.portAllocation).to.include({ pattern: 'preserving' })
    for (const key of ['hairpinning', 'mappingVariesByDestIp', 'mappingLifetimeS']) expect(doc.nat).to.have.property(key)
    expect(doc.publicAddress.address).to.equal('127.0.0.1')
    expect(doc.localAddress.address).to.equal('127.0.0.1')
    expect(doc).to.include({ udp: true, tcp: null, tls: null })
    expect(doc.ipv6).to.have.keys(['available', 'tested', 'mapped'])
    expect(doc.servers).to.have.length(1)
    expect(doc.servers[0]).to.include({ answered: true, rfc5780: true, software: 'natkit' })
    expect(doc.verdict.summary).to.be.a('string').and.not.equal('')
    expect(doc.verdict.advice).to.be.an('array')
    expect(doc.timings.totalMs).to.be.a('number')
  })

  it('prints the verdict on top of a human table, progress on stderr only; asks no gateway when every server is on loopback', async () => {
    // No --no-portmap here: loopback servers alone must keep the gateway (a real device on this machine's network) out.
    const r = await natcheck(['--server', `127.0.0.1:${server.addresses().udp[0].port}`])
    expect(r.code, r.stderr).to.equal(0)
    expect(r.stdout.split('\n')[0]).to.equal('NAT type: open')
    expect(r.stdout).to.match(/^filtering\s+endpoint-independent$/m)
    expect(r.stderr).to.match(/RFC 5780 tests against/)
    expect(r.stdout).to.not.match(/natcheck: /)
    expect(r.stderr).to.match(/every server is on loopback, so the default gateway is not asked/)
    expect(r.stdout).to.not.match(/^port mapping/m)
  })

  it('exits 2 within a few seconds with a clear message when no server answers', async () => {
    // RFC 6761: .invalid never resolves, so nothing can answer over UDP, TCP or TLS.
    const r = await natcheck(['--server', 'natkit-test.invalid', '--timeout', '1000', '--json', '--no-portmap'])
    expect(r.code).to.equal(2)
    expect(r.ms).to.be.below(8000)
    expect(r.stderr).to.match(/no STUN server answered/)
    const doc = JSON.parse(r.stdout)
    expect(doc.udp).to.equal(false)
    expect(doc.nat.type).to.equal('unknown')
    expect(doc.tcpPorts).to.deep.equal([])
    expect(doc.verdict.summary).to.match(/^Offline/)
  })

  it('says no STUN server listens (not "UDP blocked") when UDP to the port comes back as port unreachable', async () => {
    const port = await freePort()
    const r = await natcheck(['--server', `127.0.0.1:${port}`, '--timeout', '1000', '--json', '--no-portmap'])
    expect(r.code).to.equal(2)
    const doc = JSON.parse(r.stdout)
    expect(doc.udp).to.equal(false)
    expect(doc.udpRefused).to.equal(true)
    expect(doc.servers[0].error).to.match(/no response/)
    expect(doc.nat.type).to.equal('unknown')
    // The TCP connects were refused too: the host is there, and nothing claims UDP is blocked.
    expect(doc.tcpPorts.map((p: { port: number, outcome: string }) => `${p.port} ${p.outcome}`)).to.deep.equal(['443 refused', '80 refused', `${port} refused`])
    expect(doc.verdict.summary).to.match(/^No STUN server listens there/)
  })
})

describe('natcheck pair', function () {
  this.timeout(10_000)
  let dir: string
  before(() => { dir = mkdtempSync(join(tmpdir(), 'natkit-pair-')) })
  after(() => { rmSync(dir, { recursive: true, force: true }) })

  function save (name: string, type: string, pattern = 'random'): string {
    const file = join(dir, name)
    writeFileSync(file, JSON.stringify({ schemaVersion: 1, nat: { type, portAllocation: { pattern, delta: pattern === 'sequential' ? 1 : null, samples: [] } }, tcp: null, tls: null }))
    return file
  }

  it('predicts punching for two port-restricted cones', async () => {
    const r = await natcheck(['pair', save('a.json', 'port-restricted-cone'), save('b.json', 'port-restricted-cone'), '--json'])
    expect(r.code, r.stderr).to.equal(0)
    expect(JSON.parse(r.stdout)).to.include({ strategy: 'punch', a: 'port-restricted-cone', b: 'port-restricted-cone' })
  })

  it('predicts a relay for symmetric against port-restricted, naming port prediction when ports are sequential', async () => {
    const r = await natcheck(['pair', save('s.json', 'symmetric', 'sequential'), save('p.json', 'port-restricted-cone')])
    expect(r.code, r.stderr).to.equal(0)
    expect(r.stdout).to.match(/^symmetric \+ port-restricted-cone: relay-udp$/m)
    expect(r.stdout).to.match(/also possible: port-prediction/)
  })

  it('names the birthday spray, its probability and cost, for symmetric with random ports against port-restricted', async () => {
    const r = await natcheck(['pair', save('r.json', 'symmetric', 'random'), save('q.json', 'port-restricted-cone')])
    expect(r.code, r.stderr).to.equal(0)
    expect(r.stdout).to.match(/^symmetric \+ port-restricted-cone: relay-udp$/m)
    expect(r.stdout).to.match(/^ {2}birthday-spray: 256 sockets .*P = 1 − \(1 − N\/R\)\^M = 99\.97%.*at most 2304 packets/m)
    expect(r.stdout).to.match(/^direct with: birthday-spray \(birthdaySpray \/ natcheck connect --birthday-spray \(at both ends\)\)$/m)
    const j = await natcheck(['pair', join(dir, 'r.json'), join(dir, 'q.json'), '--json'])
    const doc = JSON.parse(j.stdout) as { direct?: { strategy: string, spray?: { probability: number, packets: { max: number } } } }
    expect(doc.direct?.strategy).to.equal('birthday-spray')
    expect(doc.direct?.spray?.packets.max).to.equal(2304)
  })

  it('names TCP simultaneous open, with its cost, for a UDP-blocked site whose TCP gets out against a cone', async () => {
    const tcpOnly = join(dir, 'tcp-only.json')
    writeFileSync(tcpOnly, JSON.stringify({ schemaVersion: 1, nat: { type: 'udp-blocked' }, tcp: true, tls: false }))
    const r = await natcheck(['pair', tcpOnly, save('c.json', 'port-restricted-cone')])
    expect(r.code, r.stderr).to.equal(0)
    expect(r.stdout).to.match(/^udp-blocked \+ port-restricted-cone: relay-tcp$/m)
    expect(r.stdout).to.match(/--tcp-punch/)
    expect(r.stdout).to.match(/^also possible: tcp-simultaneous-open/m)
    expect(r.stdout).to.match(/^ {2}tcp-simultaneous-open: one STUN Binding over TCP per side/m)
    expect(r.stdout).to.match(/^direct with: tcp-simultaneous-open \(tcpSimultaneousOpen \/ natcheck connect --tcp-punch \(at both ends\)\)$/m)
  })

  it('exits 1 for a file that is not a report', async () => {
    const bad = join(dir, 'bad.json')
    writeFileSync(bad, '{"hello": 1}')
    const r = await natcheck(['pair', bad, bad])
    expect(r.code).to.equal(1)
    expect(r.stderr).to.match(/no nat.type/)
  })
})

describe('natcheck demo', function () {
  this.timeout(20_000)
  it('runs natkit end to end on loopback with no setup and exits 0', async () => {
    const r = await natcheck(['demo', '--json', '--no-lab'])
    expect(r.code, r.stderr).to.equal(0)
    const doc = JSON.parse(r.stdout)
    expect(doc.stun.udp.mapped.address).to.equal('127.0.0.1')
    expect(doc.stun.tcp.mapped.address).to.equal('127.0.0.1')
    expect(doc.discovery.nat.type).to.equal('open')
    expect(doc.turn.ok).to.equal(true)
    expect(doc.direct.path.type).to.equal('direct')
    expect(doc.relayed.path.type).to.equal('relay')
    expect(doc.matrix).to.equal(null)
  })

  it('prints each part in a human report', async () => {
    const r = await natcheck(['demo', '--no-lab'])
    expect(r.code, r.stderr).to.equal(0)
    for (const heading of ['1. STUN Binding', '2. NAT discovery', '3. TURN check', '4. Two peers connect', '5. The same two peers']) expect(r.stdout).to.include(heading)
    expect(r.stdout).to.match(/path direct: host 127\.0\.0\.1:\d+ → host/)
    expect(r.stdout).to.match(/path relay: relay /)
  })
})

describe('natcheck with plain (non-RFC 5780) servers only', function () {
  this.timeout(20_000)
  it('measures mapping across two server IPs and leaves filtering unknown, never guessed', async () => {
    const s1 = await StunServer.start({ listen: { address: '127.0.0.1', port: 0 } })
    const s2 = await StunServer.start({ listen: { address: '127.0.0.2', port: 0 } })
    try {
      const r = await natcheck(['--server', `127.0.0.1:${s1.addresses().udp[0].port}`, '--server', `127.0.0.2:${s2.addresses().udp[0].port}`, '--json', '--no-portmap'])
      expect(r.code, r.stderr).to.equal(0)
      const doc = JSON.parse(r.stdout)
      expect(doc.servers.map((s: { rfc5780: boolean }) => s.rfc5780)).to.deep.equal([false, false])
      expect(doc.nat.mapping).to.equal('endpoint-independent')
      expect(doc.nat.mappingVariesByDestIp).to.equal(false)
      expect(doc.nat.filtering).to.equal('unknown')
      expect(doc.nat.type).to.equal('unknown')
    } finally {
      await s1.close(); await s2.close()
    }
  })
})
