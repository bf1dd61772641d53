import { expect } from 'chai'
import { StunTimeoutError, TransportError } from '../../src/errors.js'
import { StunServer, stunBinding } from '../../src/stun/index.js'
import { expectRejection } from '../support/assert.js'
import { hasCommand, requireOrSkip } from '../support/env.js'
import { freePort } from '../support/net.js'
import { makeTestCert, type TestCert } from '../support/tls.js'

describe('STUN over UDP, TCP and TLS, IPv4 and IPv6 (loopback)', function () {
  this.timeout(20_000)
  let cert: TestCert
  let server: StunServer

  before(async function () {
    requireOrSkip(this, hasCommand('openssl'), 'openssl is needed to make a test certificate (apt-get install openssl)')
    cert = await makeTestCert()
    const tlsPort = await freePort()
    server = await StunServer.start({
      listen: { address: '127.0.0.1', port: 0 },
      tcp: true,
      tls: { certFile: cert.certFile, keyFile: cert.keyFile, listen: { address: '127.0.0.1', port: tlsPort } }
    })
  })
  after(async () => { await server?.close(); cert?.remove() })

  it('answers over TLS, verifying the certificate against the given CA', async () => {
    const port = server.addresses().tls[0].port
    const r = await stunBinding(`127.0.0.1:${port}`, { transport: 'tls', tls: { ca: cert.cert }, timeoutMs: 5000 })
    expect(r.mapped).to.deep.equal(r.local)
    expect(r.transport).to.equal('tls')
  })

  it('refuses a TLS server whose certificate it cannot verify', async () => {
    const port = server.addresses().tls[0].port
    await expectRejection(stunBinding(`127.0.0.1:${port}`, { transport: 'tls', timeoutMs: 5000 }), TransportError)
  })

  it('reports a refused TCP connection as TransportError', async () => {
    const port = await freePort()
    await expectRejection(stunBinding(`127.0.0.1:${port}`, { transport: 'tcp', timeoutMs: 3000 }), TransportError)
  })

  it('times out with StunTimeoutError within the deadline over UDP', async () => {
    const port = await freePort()
    const started = Date.now()
    await expectRejection(stunBinding(`127.0.0.1:${port}`, { timeoutMs: 700 }), StunTimeoutError)
    expect(Date.now() - started).to.be.below(2000)
  })

  it('resolves localhost by name', async () => {
    const port = server.addresses().udp[0].port
    const r = await stunBinding(`localhost:${port}`, { family: 4, timeoutMs: 3000 })
    expect(r.server.host).to.equal('localhost')
    expect(r.mapped.address).to.equal('127.0.0.1')
  })

  it('works over IPv6 on ::1', async function () {
    let v6: StunServer
    try {
      v6 = await StunServer.start({ listen: { address: '::1', port: 0 } })
    } catch (err) {
      requireOrSkip(this, false, `no IPv6 loopback here: ${(err as Error).message}`)
      return
    }
    try {
      const r = await stunBinding(`[::1]:${v6.addresses().udp[0].port}`, { timeoutMs: 3000 })
      expect(r.mapped.address).to.equal('::1')
    } finally {
      await v6.close()
    }
  })
})

describe('STUN server robustness over TCP', function () {
  this.timeout(10_000)
  it('closes a connection that sends garbage, and keeps serving others', async () => {
    const { connect } = await import('node:net')
    const server = await StunServer.start({ listen: { address: '127.0.0.1', port: 0 }, tcp: true })
    try {
      const port = server.addresses().tcp[0].port
      const closed = await new Promise<boolean>((resolve) => {
        const sock = connect(port, '127.0.0.1', () => { sock.write(Buffer.from('GET / HTTP/1.1\r\n\r\n')) })
        sock.on('error', () => {})
        sock.on('close', () => { resolve(true) })
        setTimeout(() => { sock.destroy(); resolve(false) }, 3000)
      })
      expect(closed, 'the server closed the garbage connection').to.equal(true)
      const r = await stunBinding(`127.0.0.1:${port}`, { transport: 'tcp', timeoutMs: 3000 })
      expect(r.mapped.address).to.equal('127.0.0.1')
      expect(server.stats.ignored['not-stun']).to.equal(1)
    } finally {
      await server.close()
    }
  })
})
