/**
 * The TCP simultaneous-open building blocks on loopback sockets: the STUN/TCP mapping from a port another connect()
 * can share, connect() outcomes as reason codes, and the ICE check and RFC 4571 framing on a connected stream
 * (authentication both ways, data both ways, the negative space: wrong credentials, data before authentication,
 * malformed frames). The simultaneous open itself across NATs is tested on real kernel NATs (test/lab/tcp-punch).
 */
import { expect } from 'chai'
import { createServer, connect as netConnect, type Server, type Socket } from 'node:net'
import { TcpPunchError } from '../../../src/errors.js'
import { MessageClass, StunMessage, ErrorCode, shortTermKey } from '../../../src/stun/index.js'
import { StunServer } from '../../../src/stun/server.js'
import { buildCheckRequest } from '../../../src/traversal/ice-core/check-messages.js'
import { channelPair } from '../../../src/traversal/signal-channel.js'
import { ConnectError, connect } from '../../../src/traversal/session.js'
import { Rfc4571Decoder, frameRfc4571 } from '../../../src/traversal/rfc4571.js'
import { resolveTcpPunchOptions } from '../../../src/traversal/tcp-punch-link.js'
import {
  TCP_SO_LOCAL_PREFERENCE, TcpIcePath, dialOutcome, dialSimultaneous, learnTcpMapping, tcpSoCandidate, type TcpCheckCredentials
} from '../../../src/traversal/tcp-punch.js'
import { candidateFromSdp, candidateToSdp } from '../../../src/traversal/candidate.js'

const PWD_A = 'aaaaaaaaaaaaaaaaaaaaaa'
const PWD_B = 'bbbbbbbbbbbbbbbbbbbbbb'
const credsA: TcpCheckCredentials = { localUfrag: 'ufA1', localPwd: PWD_A, remoteUfrag: 'ufB1', remotePwd: PWD_B, role: 'controlling', tiebreaker: 1n, priority: 1 }
const credsB: TcpCheckCredentials = { localUfrag: 'ufB1', localPwd: PWD_B, remoteUfrag: 'ufA1', remotePwd: PWD_A, role: 'controlled', tiebreaker: 2n, priority: 1 }

async function listen (onSocket: (s: Socket) => void = () => {}): Promise<Server> {
  const server = createServer(onSocket)
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  return server
}
function portOf (server: Server): number { return (server.address() as { port: number }).port }
async function closeServer (server: Server): Promise<void> { await new Promise<void>(resolve => { server.close(() => { resolve() }) }) }

/** A connected loopback pair of sockets: [client, accepted]. */
async function socketPair (): Promise<[Socket, Socket, Server]> {
  let accepted: (s: Socket) => void = () => {}
  const got = new Promise<Socket>(resolve => { accepted = resolve })
  const server = await listen((s) => { accepted(s) })
  const client = netConnect({ host: '127.0.0.1', port: portOf(server) })
  await new Promise<void>((resolve, reject) => { client.once('connect', resolve); client.once('error', reject) })
  return [client, await got, server]
}

describe('TCP simultaneous open: building blocks on loopback', function () {
  this.timeout(20_000)

  describe('learnTcpMapping', () => {
    let stun: StunServer
    before(async () => { stun = await StunServer.start({ listen: { address: '127.0.0.1', port: 0 }, tcp: true }) })
    after(async () => { await stun.close() })

    it('learns the public endpoint over STUN/TCP from a port a second connect() can share while it stays open', async () => {
      const server = `127.0.0.1:${stun.addresses().tcp[0].port}`
      const m = await learnTcpMapping([server], { localAddress: '127.0.0.1', timeoutMs: 2000 })
      const other = await listen()
      try {
        expect(m.mapped).to.deep.equal(m.local)
        expect(m.server).to.equal(server)
        const c = tcpSoCandidate(m)
        expect(candidateToSdp(c)).to.match(/ TCP \d+ 127\.0\.0\.1 \d+ typ srflx raddr 127\.0\.0\.1 rport \d+ tcptype so$/)
        expect(candidateFromSdp(candidateToSdp(c))).to.deep.include({ transport: 'tcp', tcpType: 'so', port: m.mapped.port })
        expect((c.priority >> 8) & 0xffff).to.equal(TCP_SO_LOCAL_PREFERENCE)
        const d = await dialSimultaneous({ address: '127.0.0.1', port: portOf(other) }, { localAddress: '127.0.0.1', localPort: m.local.port, timeoutMs: 2000 })
        expect(d.outcome, d.detail ?? '').to.equal('tcp-so-connected')
        expect(d.socket?.localPort).to.equal(m.local.port)
        d.socket?.destroy()
      } finally {
        m.close()
        await closeServer(other)
      }
    })

    it('fails with the last error when no server answers over TCP', async () => {
      const closed = await listen(); const port = portOf(closed); await closeServer(closed)
      const err = await learnTcpMapping([`127.0.0.1:${port}`], { localAddress: '127.0.0.1', timeoutMs: 500 }).then(() => undefined, (e: unknown) => e)
      expect((err as Error | undefined)?.message).to.match(/ECONNREFUSED/)
    })
  })

  describe('dialSimultaneous', () => {
    it('names a refused connect() tcp-so-refused and an aborted one tcp-so-cancelled', async () => {
      const closed = await listen(); const port = portOf(closed); await closeServer(closed)
      const refused = await dialSimultaneous({ address: '127.0.0.1', port }, { localAddress: '127.0.0.1', localPort: 0, timeoutMs: 1000 })
      expect(refused.outcome).to.equal('tcp-so-refused')
      expect(refused.socket).to.equal(undefined)
      const ac = new AbortController(); ac.abort()
      const cancelled = await dialSimultaneous({ address: '127.0.0.1', port }, { localAddress: '127.0.0.1', localPort: 0, timeoutMs: 1000, signal: ac.signal })
      expect(cancelled.outcome).to.equal('tcp-so-cancelled')
    })

    it('maps errno names to reason codes', () => {
      const table: Array<[string | undefined, string]> = [
        ['ECONNREFUSED', 'tcp-so-refused'], ['ECONNRESET', 'tcp-so-reset'], ['ETIMEDOUT', 'tcp-so-timeout'], ['ERR_TCP_PUNCH_TIMEOUT', 'tcp-so-timeout'],
        ['EHOSTUNREACH', 'tcp-so-unreachable'], ['EADDRINUSE', 'tcp-so-bind-failed'], ['ABORT_ERR', 'tcp-so-cancelled'], ['EWHATEVER', 'tcp-so-error'], [undefined, 'tcp-so-error']
      ]
      for (const [code, want] of table) expect(dialOutcome(code), String(code)).to.equal(want)
    })
  })

  describe('TcpIcePath', () => {
    it('authenticates both ends with the session credentials and carries packets both ways, framed per RFC 4571', async () => {
      const [client, accepted, server] = await socketPair()
      try {
        const [a, b] = await Promise.all([TcpIcePath.establish(client, credsA), TcpIcePath.establish(accepted, credsB)])
        expect(a.open && b.open).to.equal(true)
        const gotB = new Promise<Buffer>(resolve => b.once('message', resolve))
        const gotA = new Promise<Buffer>(resolve => a.once('message', resolve))
        expect(a.send(Buffer.from('to b'))).to.equal(true)
        expect(b.send(Buffer.from('to a'))).to.equal(true)
        expect((await gotB).toString()).to.equal('to b')
        expect((await gotA).toString()).to.equal('to a')
        // A packet that looks like STUN by its first byte but is not one is still the app's.
        const odd = Buffer.from([0x00, 0x01, 0x00, 0x00, 0xde, 0xad])
        const gotOdd = new Promise<Buffer>(resolve => b.once('message', resolve))
        a.send(odd)
        expect([...await gotOdd]).to.deep.equal([...odd])
        const closed = new Promise<string>(resolve => b.once('closed', resolve))
        a.close()
        expect(await closed).to.be.a('string')
        expect(a.send(Buffer.from('late'))).to.equal(false)
      } finally {
        client.destroy(); accepted.destroy(); await closeServer(server)
      }
    })

    it('answers a check with the wrong credentials 401, drops data sent before authentication, and gives up tcp-so-unauthenticated', async () => {
      const [client, accepted, server] = await socketPair()
      try {
        const decoder = new Rfc4571Decoder()
        const answers: StunMessage[] = []
        client.on('data', (d: Buffer) => { for (const p of decoder.push(d)) answers.push(StunMessage.decode(p)) })
        const pending = TcpIcePath.establish(accepted, credsB, { timeoutMs: 400 })
        // A stranger: right username layout, wrong key; then app data and a malformed STUN frame.
        client.write(frameRfc4571(buildCheckRequest({ localUfrag: 'ufA1', remoteUfrag: 'ufB1', remoteKey: shortTermKey('not-the-password-at-all'), priority: 1, role: 'controlling', tiebreaker: 3n, nominate: false })))
        client.write(frameRfc4571(Buffer.from('sneaky data')))
        const broken = Buffer.alloc(20); broken.writeUInt16BE(0x0001, 0); broken.writeUInt32BE(0x2112a442, 4)
        broken.writeUInt16BE(4, 2)
        client.write(frameRfc4571(Buffer.concat([broken, Buffer.from([0xff, 0xff, 0x00, 0x09])])))
        const err = await pending.then(() => undefined, (e: unknown) => e)
        expect(err).to.be.instanceOf(TcpPunchError)
        expect((err as TcpPunchError).outcome).to.equal('tcp-so-unauthenticated')
        const e401 = answers.find(m => m.cls === MessageClass.ErrorResponse)
        expect(e401?.get(ErrorCode)?.code).to.equal(401)
        // Our own check went out too (keyed with the peer's password, which the stranger does not have).
        expect(answers.some(m => m.cls === MessageClass.Request)).to.equal(true)
        expect(accepted.destroyed).to.equal(true)
      } finally {
        client.destroy(); accepted.destroy(); await closeServer(server)
      }
    })

    it('rejects tcp-so-reset when the connection ends during the check', async () => {
      const [client, accepted, server] = await socketPair()
      try {
        const pending = TcpIcePath.establish(accepted, credsB, { timeoutMs: 3000 })
        client.destroy()
        const err = await pending.then(() => undefined, (e: unknown) => e)
        expect((err as TcpPunchError).outcome).to.equal('tcp-so-reset')
      } finally {
        accepted.destroy(); await closeServer(server)
      }
    })
  })

  describe('options', () => {
    it('defaults and validates tcpSimultaneousOpen', () => {
      expect(resolveTcpPunchOptions(true)).to.deep.equal({ attempts: 3, attemptTimeoutMs: 2500, checkTimeoutMs: 2000, mappingTimeoutMs: 1500 })
      expect(() => resolveTcpPunchOptions({ attempts: 0 })).to.throw(/attempts/)
      expect(() => resolveTcpPunchOptions({ attempts: 11 })).to.throw(/attempts/)
      expect(() => resolveTcpPunchOptions({ attemptTimeoutMs: 10 })).to.throw(/attemptTimeoutMs/)
    })
  })

  describe('in a session (connect)', () => {
    let stun: StunServer
    before(async () => { stun = await StunServer.start({ listen: { address: '127.0.0.1', port: 0 }, tcp: true }) })
    after(async () => { await stun.close() })

    it('offers tcptype so candidates, paces a bounded number of attempts over the signalling and reports each with its reason code', async () => {
      // No UDP path (relay-only policy without a TURN server) and, on loopback, no NAT to hold back the first SYN: the
      // peer's port answers RST until its own connect() runs, so attempts end tcp-so-refused — or connect.
      const [ca, cb] = channelPair()
      const common = { stunServers: [`127.0.0.1:${stun.addresses().tcp[0].port}`], bindAddress: '127.0.0.1', policy: 'relay' as const, timeoutMs: 5000, gatherTimeoutMs: 300, tcpSimultaneousOpen: { attempts: 3, attemptTimeoutMs: 500, checkTimeoutMs: 500 } }
      const outcome = async (p: ReturnType<typeof connect>): Promise<{ report: NonNullable<ConnectError['report']>, connected: boolean }> => {
        try {
          const s = await p
          const report = s.report()
          await s.close()
          return { report, connected: true }
        } catch (err) {
          expect(err).to.be.instanceOf(ConnectError)
          return { report: (err as ConnectError).report, connected: false }
        }
      }
      const [a, b] = await Promise.all([outcome(connect({ ...common, channel: ca, role: 'controlling' })), outcome(connect({ ...common, channel: cb, role: 'controlled' }))])
      for (const [me, peer] of [[a, b], [b, a]] as const) {
        const t = me.report.tcpPunch
        expect(t?.mapping?.mapped).to.match(/^127\.0\.0\.1:\d+$/)
        expect(me.report.localCandidates.some(c => c.transport === 'tcp' && c.tcpType === 'so')).to.equal(true)
        expect(t?.remoteCandidate?.port).to.equal(peer.report.tcpPunch?.localCandidate?.port)
        expect(t?.attempts.length).to.be.within(1, 3)
        if (me.connected) {
          expect(t?.result).to.equal('tcp-so-connected')
          expect(me.report.path?.local.transport).to.equal('tcp')
        } else {
          expect(t?.attempts.map(x => x.n)).to.deep.equal([1, 2, 3])
          for (const x of t?.attempts ?? []) expect(['tcp-so-refused', 'tcp-so-timeout', 'tcp-so-reset']).to.include(x.outcome)
        }
      }
      // Stopped sessions keep nothing open: the STUN/TCP connections that held the mappings are closed.
      for (let i = 0; i < 50 && stun.connectionStats.open > 0; i++) await new Promise(resolve => setTimeout(resolve, 20))
      expect(stun.connectionStats.open).to.equal(0)
    })
  })
})
