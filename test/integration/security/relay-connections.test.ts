import { expect } from 'chai'
import { createSocket, type Socket as UdpSocket } from 'node:dgram'
import { createServer, type Server } from 'node:net'
import type { Endpoint } from '../../../src/net/endpoint.js'
import { TurnClient } from '../../../src/relay/turn-client.js'
import { ErrorCode, MessageBuilder, MessageClass, Method, Nonce, Realm, Username, longTermKey } from '../../../src/stun/index.js'
import { expectRejection } from '../../support/assert.js'
import { natcheckStart } from '../../support/cli.js'
import { freePort, relayPortBase } from '../../support/net.js'
import type { Started } from '../../support/process.js'
import { makeTestCert, type TestCert } from '../../support/tls.js'
import { Conns, metric, pumpNeverReading, sleep, tcpBinding, tcpRequest, tlsIdle, waitUntil } from './support.js'

/**
 * Connection-level attacks on a real `natcheck relay` process (TCP and TLS listeners on 127.0.0.1), each while
 * legitimate clients keep allocating and relaying: idle connections, connections that never authenticate, more
 * unauthenticated connections from one IP than the cap, and a client that pumps requests and never reads.
 * Short bounds are set with the --tcp-* flags so that each attack takes seconds.
 */

const USER = { username: 'alice', password: 'wonderland' }

/** Send `count` numbered datagrams to the UDP echo peer through the client; how many came back (bounded wait). */
async function roundTrip (client: TurnClient, peer: Endpoint, count: number): Promise<number> {
  const seen = new Set<number>()
  const onData = (data: Buffer, from: Endpoint): void => { if (from.port === peer.port && data.length === 64) seen.add(data.readUInt32BE(0)) }
  client.on('data', onData)
  try {
    for (let i = 0; i < count; i++) {
      const b = Buffer.alloc(64, 0x61); b.writeUInt32BE(i, 0)
      client.send(b, peer)
      await sleep(2)
    }
    await waitUntil(() => seen.size >= count, 3000)
    return seen.size
  } finally {
    client.off('data', onData)
  }
}

describe('relay: connection-level attacks on a natcheck relay process', function () {
  this.timeout(90_000)
  const conns = new Conns()
  const started: Started[] = []
  const clients: TurnClient[] = []
  let cert: TestCert
  let udpPeer: UdpSocket
  let peer: Endpoint
  let tcpPeer: Server
  let tcpPeerEndpoint: Endpoint

  before(async () => {
    cert = await makeTestCert()
    udpPeer = createSocket('udp4')
    await new Promise<void>(resolve => udpPeer.bind(0, '127.0.0.1', () => { resolve() }))
    udpPeer.on('message', (msg, rinfo) => { udpPeer.send(msg, rinfo.port, rinfo.address) })
    peer = { address: '127.0.0.1', port: udpPeer.address().port }
    tcpPeer = createServer(sock => { sock.on('error', () => {}); sock.pipe(sock) })
    await new Promise<void>(resolve => tcpPeer.listen(0, '127.0.0.1', () => { resolve() }))
    const a = tcpPeer.address()
    tcpPeerEndpoint = { address: '127.0.0.1', port: typeof a === 'object' && a !== null ? a.port : 0 }
  })
  after(async () => {
    conns.closeAll()
    for (const c of clients) await c.close()
    for (const s of started) await s.stop()
    await new Promise<void>(resolve => udpPeer?.close(() => { resolve() }))
    await new Promise<void>(resolve => tcpPeer?.close(() => { resolve() }))
    cert?.remove()
  })

  async function startRelay (flags: string[]): Promise<{ s: Started, pid: number, port: number, tlsPort: number, admin: number }> {
    const port = await freePort()
    const tlsPort = await freePort()
    const admin = await freePort()
    const base = relayPortBase()
    const s = await natcheckStart(['relay', '--listen', `127.0.0.1:${port}`, '--realm', 'natkit.test', '--user', `${USER.username}:${USER.password}`,
      '--allow-peer', '127.0.0.0/8', '--ports', `${base}-${base + 199}`, '--admin', `127.0.0.1:${admin}`,
      '--tls-listen', `127.0.0.1:${tlsPort}`, '--tls-cert', cert.certFile, '--tls-key', cert.keyFile, ...flags], /admin http:\/\/127\.0\.0\.1:\d+\/metrics/)
    started.push(s)
    if (s.child.pid === undefined) throw new Error('relay has no pid')
    return { s, pid: s.child.pid, port, tlsPort, admin }
  }

  async function allocate (port: number, transport: 'udp' | 'tcp' | 'tls', localAddress?: string, relayTransport?: 'tcp'): Promise<TurnClient> {
    const c = await TurnClient.allocate({
      server: `127.0.0.1:${port}`, transport, credentials: USER, localAddress, relayTransport,
      tls: transport === 'tls' ? { ca: cert.cert, servername: 'localhost' } : undefined
    })
    clients.push(c)
    return c
  }

  describe('with --tcp-first-message-timeout 1 --tcp-auth-timeout 3', () => {
    let relay: Awaited<ReturnType<typeof startRelay>>
    before(async () => { relay = await startRelay(['--tcp-first-message-timeout', '1', '--tcp-auth-timeout', '3', '--tcp-unauth-per-ip', '400']) })

    it('closes 200 idle TCP connections, and TLS ones that never finish the handshake or never send, after the bound; TCP and TLS clients keep relaying', async () => {
      const tcpClient = await allocate(relay.port, 'tcp')
      const tlsClient = await allocate(relay.tlsPort, 'tls')
      const allocatedAt = Date.now()

      const idle = await conns.openIdle(relay.port, 200)
      const noHandshake = await conns.openIdle(relay.tlsPort, 10)
      const quietTls = await Promise.all(Array.from({ length: 5 }, async () => await tlsIdle(relay.tlsPort, cert.cert)))
      for (const c of quietTls) conns.all.push(c)
      // Legitimate clients are served during the attack.
      expect(await roundTrip(tcpClient, peer, 20)).to.equal(20)
      expect(await roundTrip(tlsClient, peer, 20)).to.equal(20)

      const attack = [...idle, ...noHandshake, ...quietTls]
      expect(await waitUntil(() => attack.every(c => c.closedAt !== undefined), 10_000), `${attack.filter(c => c.closedAt === undefined).length} still open`).to.equal(true)
      // Closed by the bound (1 s after accept, checked every 200 ms), not refused at once.
      for (const c of attack) expect((c.closedAt as number) - c.openedAt).to.be.at.least(800)
      expect(await metric(relay.admin, 'natkit_relay_connections_closed_total', '{reason="idle"}')).to.be.at.least(215)

      // The authenticated connections outlive the auth bound and still relay.
      await sleep(Math.max(0, allocatedAt + 3500 - Date.now()))
      expect(await roundTrip(tcpClient, peer, 20)).to.equal(20)
      expect(await roundTrip(tlsClient, peer, 20)).to.equal(20)
      expect(await metric(relay.admin, 'natkit_relay_client_connections')).to.equal(2)
    })

    it('closes a connection that never authenticates after --tcp-auth-timeout, answering its Binding requests until then; an RFC 6062 data connection stays', async () => {
      const tcpRelay = await allocate(relay.port, 'tcp', undefined, 'tcp')
      const data = await tcpRelay.connectTcp(tcpPeerEndpoint)
      data.on('error', () => {})
      let echoed = ''
      data.on('data', (d: Buffer) => { echoed += d.toString() })
      data.resume()
      const before = await metric(relay.admin, 'natkit_relay_connections_closed_total', '{reason="auth-timeout"}')

      const c = await conns.open(relay.port)
      if (c === undefined) throw new Error('cannot connect')
      let answered = 0
      for (let i = 0; i < 40 && c.closedAt === undefined; i++) {
        const res = await tcpBinding(c.socket, 1000)
        if (res !== undefined) { expect(res.cls).to.equal(MessageClass.SuccessResponse); answered++ }
        await sleep(200)
      }
      expect(c.closedAt, 'the unauthenticated connection was never closed').to.not.equal(undefined)
      expect(answered).to.be.at.least(5)
      expect((c.closedAt as number) - c.openedAt).to.be.within(2500, 6000)
      expect(await metric(relay.admin, 'natkit_relay_connections_closed_total', '{reason="auth-timeout"}')).to.equal(before + 1)

      // The data connection (authenticated by its ConnectionBind) is now older than the bound, and still relays.
      data.write('after the bound')
      expect(await waitUntil(() => echoed === 'after the bound', 3000)).to.equal(true)
      data.destroy()
    })

    it('closes a connection that authenticates but never allocates (its authenticated Refresh requests answered 437) after --tcp-auth-timeout', async () => {
      const before = await metric(relay.admin, 'natkit_relay_connections_closed_total', '{reason="auth-timeout"}')
      const c = await conns.open(relay.port)
      if (c === undefined) throw new Error('cannot connect')
      const challenge = await tcpRequest(c.socket, new MessageBuilder(Method.Refresh, MessageClass.Request).build(), 1000)
      expect(challenge?.get(ErrorCode)?.code).to.equal(401)
      const realm = challenge?.get(Realm) ?? ''
      const nonce = challenge?.get(Nonce) ?? ''
      const key = longTermKey(USER.username, realm, USER.password, 'md5')
      let mismatches = 0
      for (let i = 0; i < 40 && c.closedAt === undefined; i++) {
        const req = new MessageBuilder(Method.Refresh, MessageClass.Request)
          .add(Username, USER.username).add(Realm, realm).add(Nonce, nonce).integrity(key).build()
        const res = await tcpRequest(c.socket, req, 1000)
        // 437 Allocation Mismatch: the credentials passed (else 401), there is just no allocation to refresh.
        if (res !== undefined) { expect(res.get(ErrorCode)?.code).to.equal(437); mismatches++ }
        await sleep(200)
      }
      expect(c.closedAt, 'the connection that never allocated was never closed').to.not.equal(undefined)
      expect(mismatches).to.be.at.least(5)
      expect((c.closedAt as number) - c.openedAt).to.be.within(2500, 6000)
      expect(await metric(relay.admin, 'natkit_relay_connections_closed_total', '{reason="auth-timeout"}')).to.equal(before + 1)
    })
  })

  describe('with --tcp-unauth-per-ip 8 --tcp-max-queued 65536', () => {
    let relay: Awaited<ReturnType<typeof startRelay>>
    before(async () => { relay = await startRelay(['--tcp-unauth-per-ip', '8', '--tcp-max-queued', '65536']) })

    it('refuses unauthenticated connections beyond the cap from 127.0.0.1, while a TCP client from 127.0.0.2 and a UDP one from 127.0.0.1 allocate and relay', async () => {
      const flood: typeof conns.all = []
      for (let i = 0; i < 20; i++) {
        const c = await conns.open(relay.port)
        if (c !== undefined) flood.push(c)
        else flood.push({ socket: undefined as never, openedAt: Date.now(), closedAt: Date.now(), received: 0 })
      }
      await sleep(500)
      const open = flood.filter(c => c.closedAt === undefined).length
      expect(open).to.equal(8)
      // The oldest keep their places; the newest are refused.
      expect(flood.slice(0, 8).every(c => c.closedAt === undefined)).to.equal(true)
      expect(await metric(relay.admin, 'natkit_relay_connections_closed_total', '{reason="per-ip-limit"}')).to.be.at.least(12)
      expect(await metric(relay.admin, 'natkit_relay_unauthenticated_connections')).to.equal(8)

      const other = await allocate(relay.port, 'tcp', '127.0.0.2')
      expect(await roundTrip(other, peer, 20)).to.equal(20)
      const udp = await allocate(relay.port, 'udp')
      expect(await roundTrip(udp, peer, 20)).to.equal(20)
      // A TLS connection from the capped IP is refused too (counted before its handshake).
      await expectRejection(TurnClient.allocate({ server: `127.0.0.1:${relay.tlsPort}`, transport: 'tls', credentials: USER, tls: { ca: cert.cert, servername: 'localhost' }, retransmit: { reliableTimeoutMs: 2000 } }), Error)
      for (const c of flood) c.socket?.destroy()
      await other.close(); await udp.close()
    })

    it('disconnects a client that pumps Binding requests and never reads, with bounded server memory, while a TCP client relays', async () => {
      const legit = await allocate(relay.port, 'tcp', '127.0.0.2')
      const attacker = await conns.open(relay.port)
      if (attacker === undefined) throw new Error('cannot connect')
      const request = new MessageBuilder(Method.Binding, MessageClass.Request).build()
      const [pump, during] = await Promise.all([
        pumpNeverReading(attacker, request, relay.pid, 20_000),
        (async () => { await sleep(300); return await roundTrip(legit, peer, 20) })()
      ])
      expect(during).to.equal(20)
      expect(pump.closed, `not closed after ${pump.written} request bytes`).to.equal(true)
      expect(await metric(relay.admin, 'natkit_relay_connections_closed_total', '{reason="backpressure"}')).to.equal(1)
      // Before this limit the relay kept ~1 MiB of answers queued per such connection, and never closed it.
      expect(pump.rssGrowth).to.be.below(48 * 2 ** 20)
      expect(await metric(relay.admin, 'natkit_relay_client_queued_bytes')).to.be.below(65536)
      expect(await roundTrip(legit, peer, 20)).to.equal(20)
    })
  })
})
