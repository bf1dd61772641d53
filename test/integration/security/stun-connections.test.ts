import { expect } from 'chai'
import { MessageBuilder, MessageClass, Method, Software } from '../../../src/stun/index.js'
import { natcheckStart } from '../../support/cli.js'
import type { Started } from '../../support/process.js'
import { makeTestCert, type TestCert } from '../../support/tls.js'
import { Conns, pumpNeverReading, sleep, tcpBinding, tlsIdle, waitUntil, type Conn } from './support.js'

/**
 * Connection-level attacks on a real `natcheck server --tcp` process (STUN over TCP and TLS on 127.0.0.1), each while
 * a legitimate client keeps getting Binding answers: idle connections, a slow trickle, more connections from one IP
 * than the cap, and a client that pumps requests and never reads. Short bounds come from the --tcp-* flags.
 */
describe('STUN server: connection-level attacks on a natcheck server process', function () {
  this.timeout(90_000)
  const conns = new Conns()
  const started: Started[] = []
  let cert: TestCert

  before(async () => { cert = await makeTestCert() })
  after(async () => {
    conns.closeAll()
    for (const s of started) await s.stop()
    cert?.remove()
  })

  async function startServer (flags: string[]): Promise<{ pid: number, port: number, tlsPort: number }> {
    const s = await natcheckStart(['server', '--listen', '127.0.0.1:0', '--tcp', '--tls-cert', cert.certFile, '--tls-key', cert.keyFile,
      '--tls-listen', '127.0.0.1:0', ...flags], /STUN on UDP .*TLS 127\.0\.0\.1:\d+/)
    started.push(s)
    const tcp = /TCP 127\.0\.0\.1:(\d+)/.exec(s.output())
    const tls = /TLS 127\.0\.0\.1:(\d+)/.exec(s.output())
    if (tcp === null || tls === null || s.child.pid === undefined) throw new Error(`cannot read the ports from ${s.output()}`)
    return { pid: s.child.pid, port: Number(tcp[1]), tlsPort: Number(tls[1]) }
  }

  /** A legitimate client: one TCP connection asking for its mapped address now and then. */
  async function answered (port: number, times: number, localAddress = '127.0.0.1'): Promise<number> {
    const c = await conns.open(port, localAddress)
    if (c === undefined) return 0
    let n = 0
    for (let i = 0; i < times; i++) {
      if ((await tcpBinding(c.socket, 2000))?.cls === MessageClass.SuccessResponse) n++
    }
    c.socket.destroy()
    return n
  }

  describe('with --tcp-first-message-timeout 1 --tcp-idle-timeout 3', () => {
    let server: Awaited<ReturnType<typeof startServer>>
    before(async () => { server = await startServer(['--tcp-first-message-timeout', '1', '--tcp-idle-timeout', '3', '--tcp-per-ip', '400']) })

    it('closes 200 idle TCP connections, and TLS ones that never finish the handshake or never send, after the bound; a client keeps getting answers', async () => {
      const legit = await conns.open(server.port)
      if (legit === undefined) throw new Error('cannot connect')
      expect((await tcpBinding(legit.socket))?.cls).to.equal(MessageClass.SuccessResponse)

      const idle = await conns.openIdle(server.port, 200)
      const noHandshake = await conns.openIdle(server.tlsPort, 10)
      const quietTls: Conn[] = await Promise.all(Array.from({ length: 5 }, async () => await tlsIdle(server.tlsPort, cert.cert)))
      for (const c of quietTls) conns.all.push(c)
      expect((await tcpBinding(legit.socket))?.cls).to.equal(MessageClass.SuccessResponse)
      expect(await answered(server.port, 5)).to.equal(5)

      const attack = [...idle, ...noHandshake, ...quietTls]
      expect(await waitUntil(() => attack.every(c => c.closedAt !== undefined), 10_000), `${attack.filter(c => c.closedAt === undefined).length} still open`).to.equal(true)
      for (const c of attack) expect((c.closedAt as number) - c.openedAt).to.be.at.least(800)
      expect(legit.closedAt).to.equal(undefined)
      expect((await tcpBinding(legit.socket))?.cls).to.equal(MessageClass.SuccessResponse)
      legit.socket.destroy()
    })

    it('closes a connection --tcp-idle-timeout after its last complete message, however slowly it trickles partial bytes', async () => {
      const c = await conns.open(server.port)
      if (c === undefined) throw new Error('cannot connect')
      expect((await tcpBinding(c.socket))?.cls).to.equal(MessageClass.SuccessResponse)
      const lastAnswer = Date.now()
      // One byte of a 20-byte header every 300 ms: the message never completes.
      const header = new MessageBuilder(Method.Binding, MessageClass.Request).build()
      for (let i = 0; i < header.length - 1 && c.closedAt === undefined; i++) {
        c.socket.write(header.subarray(i, i + 1))
        await sleep(300)
      }
      expect(await waitUntil(() => c.closedAt !== undefined, 3000)).to.equal(true)
      expect((c.closedAt as number) - lastAnswer).to.be.within(2500, 5000)
    })
  })

  describe('with --tcp-per-ip 8 --tcp-max-queued 65536', () => {
    let server: Awaited<ReturnType<typeof startServer>>
    before(async () => { server = await startServer(['--tcp-per-ip', '8', '--tcp-max-queued', '65536']) })

    it('refuses connections beyond the cap from 127.0.0.1 while 127.0.0.2 gets answers', async () => {
      const flood: Array<Conn | undefined> = []
      for (let i = 0; i < 20; i++) flood.push(await conns.open(server.port))
      await sleep(500)
      const open = flood.filter(c => c !== undefined && c.closedAt === undefined)
      expect(open).to.have.length(8)
      expect(flood.slice(0, 8).every(c => c !== undefined && c.closedAt === undefined)).to.equal(true)
      expect(await answered(server.port, 3, '127.0.0.2')).to.equal(3)
      // 127.0.0.1 itself is served again once its connections go.
      for (const c of flood) c?.socket.destroy()
      await sleep(200)
      expect(await answered(server.port, 3)).to.equal(3)
    })

    it('disconnects a client that pumps Binding requests and never reads, with bounded server memory, while another client gets answers', async () => {
      const attacker = await conns.open(server.port)
      if (attacker === undefined) throw new Error('cannot connect')
      // 72 bytes each, so that the server's 1000-messages-per-read limit is not what stops the pump.
      const request = new MessageBuilder(Method.Binding, MessageClass.Request).add(Software, 'x'.repeat(48)).build()
      const [pump, during] = await Promise.all([
        pumpNeverReading(attacker, request, server.pid, 20_000),
        (async () => { await sleep(300); return await answered(server.port, 10, '127.0.0.2') })()
      ])
      expect(pump.closed, `not closed after ${pump.written} request bytes`).to.equal(true)
      expect(during).to.equal(10)
      // Before this limit the queue grew without bound (78 MiB of RSS in 10 s, bench/stream-attacks.ts).
      expect(pump.rssGrowth).to.be.below(48 * 2 ** 20)
      expect(await answered(server.port, 3)).to.equal(3)
    })
  })
})
