import { expect } from 'chai'
import { StunServer } from '../../src/stun/index.js'
import { natcheck, natcheckStart } from '../support/cli.js'
import { freePort } from '../support/net.js'

describe('natcheck stun', function () {
  this.timeout(20_000)
  let server: StunServer
  before(async () => { server = await StunServer.start({ listen: { address: '127.0.0.1', port: 0 }, alternate: { address: '127.0.0.2', port: 0 }, tcp: true }) })
  after(async () => { await server?.close() })

  it('prints one JSON document with schemaVersion, mapped and rttMs, and nothing on stderr', async () => {
    const port = server.addresses().udp[0].port
    const r = await natcheck(['stun', `127.0.0.1:${port}`, '--json'])
    expect(r.code, r.stderr).to.equal(0)
    expect(r.stderr).to.equal('')
    const doc = JSON.parse(r.stdout)
    expect(doc.schemaVersion).to.equal(1)
    expect(doc.mapped.address).to.equal('127.0.0.1')
    expect(doc.mapped.port).to.be.within(1, 65535)
    expect(doc.rttMs).to.be.a('number').and.to.be.at.least(0)
    expect(doc.otherAddress).to.deep.equal(server.addresses().udp[3])
  })

  it('works over TCP and prints a readable table by default', async () => {
    const port = server.addresses().tcp[0].port
    const r = await natcheck(['stun', `127.0.0.1:${port}`, '--tcp'])
    expect(r.code, r.stderr).to.equal(0)
    expect(r.stdout).to.match(/^mapped address\s+127\.0\.0\.1:\d+$/m)
    expect(r.stdout).to.match(/^responded from\s+127\.0\.0\.1:\d+ over TCP$/m)
    expect(r.stdout).to.match(/^round trip\s+[\d.]+ ms$/m)
  })

  it('fails fast with exit code 2 and a clear message when nothing answers', async () => {
    const port = await freePort()
    const r = await natcheck(['stun', `127.0.0.1:${port}`, '--timeout', '1500'])
    expect(r.code).to.equal(2)
    expect(r.stdout).to.equal('')
    expect(r.stderr).to.match(/no STUN response from 127\.0\.0\.1:\d+/)
    expect(r.ms).to.be.below(6000)
  })

  it('with --json reports the failure as { error: { code, message } }', async () => {
    const port = await freePort()
    const r = await natcheck(['stun', `127.0.0.1:${port}`, '--timeout', '800', '--json'])
    expect(r.code).to.equal(2)
    expect(JSON.parse(r.stdout)).to.deep.include({ schemaVersion: 1 })
    expect(JSON.parse(r.stdout).error.code).to.equal('ERR_STUN_TIMEOUT')
  })

  const usage = [
    { name: 'no server given', args: ['stun'] },
    { name: 'both --tcp and --tls', args: ['stun', '127.0.0.1', '--tcp', '--tls'] },
    { name: 'a bad port', args: ['stun', '127.0.0.1:99999'] },
    { name: 'a bad timeout', args: ['stun', '127.0.0.1', '--timeout', 'soon'] },
    { name: 'an unknown command', args: ['frobnicate'] }
  ]
  for (const c of usage) {
    it(`exits 1 on a usage error: ${c.name}`, async () => {
      const r = await natcheck(c.args)
      expect(r.code, r.stdout + r.stderr).to.equal(1)
      expect(r.stderr).to.not.equal('')
    })
  }
})

describe('natcheck server', function () {
  this.timeout(20_000)

  it('serves RFC 5780 on 127.0.0.1 + 127.0.0.2, says where on stderr, and stops cleanly on SIGTERM', async () => {
    const proc = await natcheckStart(['server', '--listen', '127.0.0.1:0', '--alternate', '127.0.0.2:0', '--tcp'], /STUN on UDP .*\(RFC 5780\)/)
    try {
      const m = /STUN on UDP 127\.0\.0\.1:(\d+)/.exec(proc.output())
      expect(m).to.not.equal(null)
      const r = await natcheck(['stun', `127.0.0.1:${m?.[1]}`, '--json'])
      expect(r.code, r.stderr).to.equal(0)
      expect(JSON.parse(r.stdout).otherAddress.address).to.equal('127.0.0.2')
    } finally {
      const exited = new Promise<number | null>(resolve => proc.child.once('exit', (code) => { resolve(code) }))
      proc.child.kill('SIGTERM')
      expect(await exited).to.equal(0)
      expect(proc.output()).to.match(/SIGTERM, stopping/)
    }
  })

  it('exits 1 when the alternate shares the primary IP', async () => {
    const r = await natcheck(['server', '--listen', '127.0.0.1:0', '--alternate', '127.0.0.1:0'])
    expect(r.code).to.equal(1)
    expect(r.stderr).to.match(/second IP address/)
  })

  it('exits 1 for a listen address that is not an IP', async () => {
    const r = await natcheck(['server', '--listen', 'localhost'])
    expect(r.code).to.equal(1)
    expect(r.stderr).to.match(/not an IP address/)
  })
})
