/**
 * The lab's `tcp-only` type on real kernel NATs: UDP is dropped, outbound TCP to any port is NATed (source port
 * kept), the firewall is stateful (unsolicited inbound TCP is dropped), and two tcp-only sites can still open a
 * TCP connection to each other by simultaneous open (RFC 9293 §3.5), which conntrack follows.
 */
import { expect } from 'chai'
import { fileURLToPath } from 'node:url'
import { Lab, labDown } from '../../src/lab/index.js'
import { CLI } from '../support/cli.js'
import { requireLab } from './support/lab-helpers.js'

const SIMOPEN = fileURLToPath(new URL('./support/tcp-simopen.js', import.meta.url))

describe('lab: tcp-only sites', function () {
  this.timeout(90_000)
  const prefix = `nkhn-t${process.pid % 10000}-`
  let lab: Lab
  before(async function () {
    requireLab(this, false)
    lab = await Lab.up({ natA: 'tcp-only', natB: 'tcp-only', servers: true, prefix })
  })
  after(async function () { await labDown(prefix) })

  it('natcheck sees UDP blocked and TCP out (STUN over TCP answers on 3478, not only 80/443)', async () => {
    const r = await lab.exec('a', [process.execPath, CLI, '--server', lab.info.server.primaryIp, '--json', '--timeout', '1500'], { timeoutMs: 30_000 })
    const doc = JSON.parse(r.stdout) as { udp: boolean, tcp: boolean, nat: { type: string }, tcpPorts: Array<{ port: number, outcome: string }> }
    expect(doc.udp).to.equal(false)
    expect(doc.tcp).to.equal(true)
    expect(doc.nat.type).to.equal('udp-blocked')
    expect(doc.tcpPorts.map(p => `${p.port} ${p.outcome}`)).to.deep.equal(['443 open', '80 open', '3478 open'])
    const tcp3478 = await lab.exec('a', [process.execPath, CLI, 'stun', `${lab.info.server.primaryIp}:3478`, '--tcp', '--json', '--timeout', '2000'], { timeoutMs: 10_000 })
    expect(tcp3478.code, tcp3478.stderr).to.equal(0)
    expect(tcp3478.stdout).to.include(lab.info.a.wanIp)
    const udp = await lab.exec('a', [process.execPath, CLI, 'stun', `${lab.info.server.primaryIp}:3478`, '--timeout', '1000'], { timeoutMs: 10_000 })
    expect(udp.code).to.equal(2)
  })

  it('drops unsolicited inbound TCP (stateful)', async () => {
    const r = await lab.exec('server', [process.execPath, CLI, 'stun', `${lab.info.a.wanIp}:40123`, '--tcp', '--timeout', '1500'], { timeoutMs: 10_000 })
    expect(r.code).to.not.equal(0)
    expect(r.stderr).to.not.match(/refused/i)
  })

  it('two tcp-only sites connect by TCP simultaneous open', async () => {
    const side = async (node: 'a' | 'b', peer: string): Promise<{ ok: boolean, detail: string }> => {
      const r = await lab.exec(node, [process.execPath, SIMOPEN, JSON.stringify({ localPort: 40000, peer, peerPort: 40000, timeoutMs: 10_000 })], { timeoutMs: 20_000 })
      return JSON.parse(r.stdout) as { ok: boolean, detail: string }
    }
    const [a, b] = await Promise.all([side('a', lab.info.b.wanIp), side('b', lab.info.a.wanIp)])
    expect(a, JSON.stringify(a)).to.include({ ok: true, detail: 'hello from 40000' })
    expect(b, JSON.stringify(b)).to.include({ ok: true, detail: 'hello from 40000' })
  })
})
