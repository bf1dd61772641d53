import { expect } from 'chai'
import { createSocket, type Socket } from 'node:dgram'
import { mkdtempSync, rmSync } from 'node:fs'
import { createServer, type Server } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { StunErrorResponse } from '../../src/errors.js'
import { AlternateServer, ErrorCode, MessageBuilder, MessageClass, Method, StunMessage } from '../../src/stun/index.js'
import type { Endpoint } from '../../src/net/endpoint.js'
import { TurnClient } from '../../src/relay/turn-client.js'
import { TurnServer } from '../../src/relay/turn-server.js'
import { expectRejection } from '../support/assert.js'
import { hasCommand, requireOrSkip } from '../support/env.js'
import { freePort } from '../support/net.js'
import { echoPeer, roundTrip } from './relay/support.js'
import { start, type Started } from '../support/process.js'

const USER = { username: 'alice', password: 'wonderland' }
const REALM = 'natkit.test'

describe('TurnClient against natkit\'s TurnServer', function () {
  this.timeout(30_000)
  let server: TurnServer
  let peer: Awaited<ReturnType<typeof echoPeer>>

  before(async () => {
    peer = await echoPeer()
    server = await TurnServer.start({ listen: [{ address: '127.0.0.1', port: 0 }], realm: REALM, users: { alice: 'wonderland' }, authSecret: 'rest-secret', allowPeer: ['127.0.0.0/8'] })
  })
  after(async () => { await server?.close(); await peer?.close() })

  const port = (): number => server.addresses.udp[0].port

  for (const transport of ['udp', 'tcp'] as const) {
    it(`allocates over ${transport.toUpperCase()}, relays with Send indications, then over a channel, and releases on close`, async () => {
      const client = await TurnClient.allocate({ server: `127.0.0.1:${port()}`, transport, credentials: USER })
      try {
        expect(client.allocation.relayed.address).to.equal('127.0.0.1')
        expect(client.allocation.lifetimeS).to.equal(600)
        expect(await roundTrip(client, peer.endpoint, 50)).to.equal(50)
        await client.bindChannel(peer.endpoint)
        expect(await roundTrip(client, peer.endpoint, 200)).to.equal(200)
        expect(server.stats().allocations).to.equal(1)
      } finally {
        await client.close()
      }
      expect(server.stats().allocations).to.equal(0)
    })
  }

  it('authenticates with the TURN REST API shared secret', async () => {
    const client = await TurnClient.allocate({ server: `127.0.0.1:${port()}`, credentials: { authSecret: 'rest-secret', user: 'bob' } })
    try {
      expect(await roundTrip(client, peer.endpoint, 10)).to.equal(10)
    } finally { await client.close() }
  })

  it('rejects wrong credentials with 401', async () => {
    const err = await expectRejection(TurnClient.allocate({ server: `127.0.0.1:${port()}`, credentials: { username: 'alice', password: 'nope' } }), StunErrorResponse)
    expect(err.errorCode).to.equal(401)
  })

  it('follows 300 Try Alternate to the ALTERNATE-SERVER', async () => {
    // A stand-in "overloaded" server that redirects every Allocate to natkit's relay.
    const redirector = createSocket('udp4')
    await new Promise<void>(resolve => redirector.bind(0, '127.0.0.1', () => { resolve() }))
    let redirected = 0
    redirector.on('message', (msg, rinfo) => {
      const req = StunMessage.decode(msg)
      if (req.method !== Method.Allocate || req.cls !== MessageClass.Request) return
      redirected++
      const res = new MessageBuilder(Method.Allocate, MessageClass.ErrorResponse, req.transactionId)
        .add(ErrorCode, { code: 300, reason: 'Try Alternate' }).add(AlternateServer, { address: '127.0.0.1', port: port() }).fingerprint().build()
      redirector.send(res, rinfo.port, rinfo.address)
    })
    try {
      const client = await TurnClient.allocate({ server: `127.0.0.1:${redirector.address().port}`, credentials: USER })
      try {
        expect(redirected).to.equal(1)
        expect(client.allocation.server.port).to.equal(port())
        expect(await roundTrip(client, peer.endpoint, 10)).to.equal(10)
      } finally { await client.close() }
    } finally {
      redirector.close()
    }
  })

  it('allocates again by itself when the server restarts, and says so', async () => {
    const restartPort = await freePort()
    let s1: TurnServer | undefined = await TurnServer.start({ listen: [{ address: '127.0.0.1', port: restartPort }], realm: REALM, users: { alice: 'wonderland' }, allowPeer: ['127.0.0.0/8'], defaultLifetime: 4 })
    const client = await TurnClient.allocate({ server: `127.0.0.1:${restartPort}`, credentials: USER, lifetimeS: 4, retransmit: { rtoMs: 100, rc: 3, rm: 4 } })
    let s2: TurnServer | undefined
    try {
      const reallocated = new Promise<string>(resolve => client.once('reallocated', (_a, reason) => { resolve(reason) }))
      await s1.close(); s1 = undefined
      s2 = await TurnServer.start({ listen: [{ address: '127.0.0.1', port: restartPort }], realm: REALM, users: { alice: 'wonderland' }, allowPeer: ['127.0.0.0/8'], defaultLifetime: 4 })
      const reason = await reallocated
      expect(reason).to.match(/437|refresh failed/)
      expect(s2.stats().allocations).to.equal(1)
      expect(await roundTrip(client, peer.endpoint, 10)).to.equal(10)
    } finally {
      await client.close(); await s1?.close(); await s2?.close()
    }
  })
})

describe('TurnClient against coturn\'s turnserver', function () {
  this.timeout(30_000)
  const servers: Started[] = []
  let peer: Awaited<ReturnType<typeof echoPeer>>
  let ltPort: number
  let restPort: number
  let dir: string

  before(async function () {
    requireOrSkip(this, hasCommand('turnserver'), 'coturn is not installed (apt-get install coturn)')
    peer = await echoPeer()
    dir = mkdtempSync(join(tmpdir(), 'natkit-coturn-'))
    ltPort = await freePort(); restPort = await freePort()
    const common = ['-c', '/dev/null', '-n', '--no-cli', '--listening-ip', '127.0.0.1', '--relay-ip', '127.0.0.1', '--allow-loopback-peers',
      '--realm', REALM, '--no-tls', '--no-dtls', '--simple-log', '--log-file', 'stdout', '--min-port', '50000', '--max-port', '50999']
    servers.push(await start('turnserver', [...common, '--listening-port', String(ltPort), '--lt-cred-mech', '--user', 'alice:wonderland', '--pidfile', join(dir, 'lt.pid')], { ready: /Total (UDP|General) servers|IPv4. UDP listener opened/, timeoutMs: 10_000 }))
    servers.push(await start('turnserver', [...common, '--listening-port', String(restPort), '--use-auth-secret', '--static-auth-secret', 'rest-secret', '--pidfile', join(dir, 'rest.pid')], { ready: /Total (UDP|General) servers|IPv4. UDP listener opened/, timeoutMs: 10_000 }))
  })
  after(async () => {
    for (const s of servers) await s.stop()
    await peer?.close()
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true })
  })

  for (const transport of ['udp', 'tcp'] as const) {
    it(`long-term credentials over ${transport.toUpperCase()}: Send indications and a channel relay every datagram`, async () => {
      const client = await TurnClient.allocate({ server: `127.0.0.1:${ltPort}`, transport, credentials: USER })
      try {
        expect(await roundTrip(client, peer.endpoint, 50)).to.equal(50)
        await client.bindChannel(peer.endpoint)
        expect(await roundTrip(client, peer.endpoint, 200)).to.equal(200)
        await client.refresh()
      } finally { await client.close() }
    })
  }

  for (const transport of ['udp', 'tcp'] as const) {
    it(`REST shared secret over ${transport.toUpperCase()}`, async () => {
      const client = await TurnClient.allocate({ server: `127.0.0.1:${restPort}`, transport, credentials: { authSecret: 'rest-secret', user: 'carol' } })
      try {
        expect(await roundTrip(client, peer.endpoint, 20)).to.equal(20)
      } finally { await client.close() }
    })
  }

  it('gets 401 for a wrong REST secret', async () => {
    const err = await expectRejection(TurnClient.allocate({ server: `127.0.0.1:${restPort}`, credentials: { authSecret: 'wrong', user: 'carol' } }), StunErrorResponse)
    expect(err.errorCode).to.equal(401)
  })

  it('RFC 6062: opens a TCP connection to a peer through the relay', async () => {
    // Resets are expected when the allocation is torn down: both ends ignore socket errors.
    const echo: Server = createServer(sock => { sock.on('error', () => {}); sock.pipe(sock) })
    await new Promise<void>(resolve => echo.listen(0, '127.0.0.1', () => { resolve() }))
    const address = echo.address()
    const peerTcp = { address: '127.0.0.1', port: typeof address === 'object' && address !== null ? address.port : 0 }
    const client = await TurnClient.allocate({ server: `127.0.0.1:${ltPort}`, transport: 'tcp', relayTransport: 'tcp', credentials: USER })
    try {
      const data = await client.connectTcp(peerTcp)
      data.on('error', () => {})
      const got = new Promise<string>(resolve => { let s = ''; data.on('data', (d: Buffer) => { s += d.toString(); if (s.length >= 11) resolve(s) }) })
      data.resume()
      data.write('hello relay')
      expect(await got).to.equal('hello relay')
      data.destroy()
    } finally {
      await client.close()
      await new Promise<void>(resolve => echo.close(() => { resolve() }))
    }
  })
})
