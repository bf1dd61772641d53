/**
 * `natcheck connect --tcp-punch` on loopback: two peers through a loopback rendezvous, with a STUN server that answers
 * over TCP. Each learns its TCP endpoint and offers it as a `tcptype so` candidate; the report (JSON and human) shows
 * the mapping and every attempt with its reason code. On loopback UDP connects directly anyway (and no NAT holds back
 * the first SYN, so a simultaneous open meets RSTs); the punch across real NATs is tested in test/lab/tcp-punch.
 */
import { expect } from 'chai'
import { spawn } from 'node:child_process'
import { RendezvousServer } from '../../src/rendezvous/server.js'
import { StunServer } from '../../src/stun/server.js'
import { CLI } from '../support/cli.js'

interface Run { code: number | null, stdout: string, stderr: string }

async function natcheck (args: string[]): Promise<Run> {
  const child = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, NO_COLOR: '1' }, stdio: ['ignore', 'pipe', 'pipe'] })
  const r: Run = { code: null, stdout: '', stderr: '' }
  child.stdout.on('data', (d: Buffer) => { r.stdout += d.toString() })
  child.stderr.on('data', (d: Buffer) => { r.stderr += d.toString() })
  const timer = setTimeout(() => { child.kill('SIGKILL') }, 25_000)
  r.code = await new Promise(resolve => child.on('exit', (code) => { resolve(code) }))
  clearTimeout(timer)
  return r
}

const OUTCOMES = ['tcp-so-connected', 'tcp-so-refused', 'tcp-so-timeout', 'tcp-so-reset', 'tcp-so-cancelled']

describe('natcheck connect --tcp-punch', function () {
  this.timeout(40_000)
  let rendezvous: RendezvousServer
  let stun: StunServer
  before(async () => {
    rendezvous = await RendezvousServer.start({ listen: { address: '127.0.0.1', port: 0 }, authSecret: 'tcp-punch-test' })
    stun = await StunServer.start({ listen: { address: '127.0.0.1', port: 0 }, tcp: true })
  })
  after(async () => {
    await rendezvous.close()
    await stun.close()
  })

  const peer = (me: string, other: string, json: boolean): Promise<Run> => natcheck([
    'connect', '--rendezvous', rendezvous.url ?? '', '--id', me, '--peer', other, '--auth-secret', 'tcp-punch-test', '--local-address', '127.0.0.1',
    '--stun', `127.0.0.1:${stun.addresses().tcp[0].port}`, '--count', '3', '--settle', '1', '--timeout', '10000', '--tcp-punch', ...(json ? ['--json'] : [])
  ])

  it('offers the public TCP endpoint as a tcptype so candidate and reports the attempts with reason codes', async () => {
    const [a, b] = await Promise.all([peer('alice', 'bob', true), peer('bob', 'alice', false)])
    expect(a.code, a.stderr).to.equal(0)
    expect(b.code, b.stderr).to.equal(0)
    const doc = JSON.parse(a.stdout) as {
      delivered: number
      tcpPunch: { mapping: { local: string, mapped: string, server: string } | null, localCandidate: { transport: string, tcpType: string } | null, remoteCandidate: { port: number } | null, attempts: Array<{ n: number, outcome: string }>, result: string | null }
    }
    expect(doc.delivered).to.equal(3)
    expect(doc.tcpPunch.mapping?.mapped).to.match(/^127\.0\.0\.1:\d+$/)
    expect(doc.tcpPunch.mapping?.mapped).to.equal(doc.tcpPunch.mapping?.local)
    expect(doc.tcpPunch.localCandidate).to.include({ transport: 'tcp', tcpType: 'so' })
    expect(doc.tcpPunch.remoteCandidate?.port).to.be.a('number')
    for (const x of doc.tcpPunch.attempts) expect(OUTCOMES, JSON.stringify(doc.tcpPunch)).to.include(x.outcome)
    // The human report of the other side.
    expect(b.stdout).to.match(/^TCP punch: (tcp-so-[a-z-]+|running), public TCP 127\.0\.0\.1:\d+ \(from 127\.0\.0\.1:\d+\)/m)
  })

  it('rejects --tcp-punch with --manual (exit 1)', async () => {
    const r = await natcheck(['connect', '--manual', '--tcp-punch', '--local-address', '127.0.0.1'])
    expect(r.code).to.equal(1)
    expect(r.stderr).to.match(/--tcp-punch needs --rendezvous/)
  })
})
