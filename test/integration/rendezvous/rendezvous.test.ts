import { expect } from 'chai'
import { spawn } from 'node:child_process'
import { createServer as createHttpServer, request } from 'node:http'
import { connect as tcpConnect } from 'node:net'
import { fileURLToPath } from 'node:url'
import { expectRejection } from '../../support/assert.js'
import { RendezvousClient } from '../../../src/rendezvous/client.js'
import { RendezvousClosedError, RendezvousRemoteError } from '../../../src/rendezvous/errors.js'
import { RendezvousServer } from '../../../src/rendezvous/server.js'
import { rendezvousToken } from '../../../src/rendezvous/token.js'
import { waitForMessage } from '../../../src/rendezvous/wait.js'
import { WebSocket } from 'ws'
import { RawPeer, TcpProxy, once } from './support.js'

const SECRET = 'integration-secret'
const LOOPBACK = { address: '127.0.0.1', port: 0 }

describe('rendezvous over WebSockets (127.0.0.1)', function () {
  this.timeout(20_000)
  const cleanup: Array<() => Promise<void> | void> = []
  afterEach(async () => {
    for (const c of cleanup.splice(0).reverse()) await c()
  })

  async function server (options: Partial<Parameters<typeof RendezvousServer.start>[0]> = {}): Promise<RendezvousServer> {
    const s = await RendezvousServer.start({ listen: LOOPBACK, authSecret: SECRET, ...options })
    cleanup.push(async () => { await s.close() })
    return s
  }
  async function client (url: string, id: string, extra: Partial<Parameters<typeof RendezvousClient.connect>[0]> = {}): Promise<RendezvousClient> {
    const c = await RendezvousClient.connect({ url, id, token: rendezvousToken(SECRET, id, 300), ...extra })
    cleanup.push(async () => { await c.close() })
    return c
  }
  async function raw (url: string): Promise<RawPeer> {
    const p = await RawPeer.open(url)
    cleanup.push(() => { p.close() })
    return p
  }

  it('two clients register, see each other online, exchange messages and see the other leave', async () => {
    const s = await server()
    const url = s.url as string
    expect(url).to.match(/^ws:\/\/127\.0\.0\.1:\d+\/$/)
    const alice = await client(url, 'alice')
    expect(alice.observed?.address).to.equal('127.0.0.1')
    expect(alice.observed?.port).to.be.greaterThan(0)
    expect(alice.session).to.be.a('string')
    const online = once<[string, boolean]>(alice, 'presence')
    alice.watch(['bob'])
    expect(await online).to.deep.equal(['bob', false])
    const cameOnline = once<[string, boolean]>(alice, 'presence')
    const bob = await client(url, 'bob')
    expect(await cameOnline).to.deep.equal(['bob', true])

    const got = waitForMessage(bob, (from, data) => from === 'alice' && (data as { kind?: string }).kind === 'offer')
    await alice.send('bob', { kind: 'offer', candidates: ['candidate:1 1 udp 2130706431 127.0.0.1 5000 typ host'] })
    const m = await got
    expect(m.data).to.deep.equal({ kind: 'offer', candidates: ['candidate:1 1 udp 2130706431 127.0.0.1 5000 typ host'] })
    expect(m.info.n).to.equal(1)
    const reply = waitForMessage(alice, from => from === 'bob')
    await bob.send('alice', 'answer')
    expect((await reply).data).to.equal('answer')

    const { rttMs, serverTimeOffsetMs } = await alice.ping()
    expect(rttMs).to.be.within(0, 1000)
    expect(Math.abs(serverTimeOffsetMs)).to.be.lessThan(1000)

    const left = once<[string, boolean]>(alice, 'presence')
    await bob.close()
    expect(await left).to.deep.equal(['bob', false])
    expect(s.stats()).to.include({ peersOnline: 1, messagesRelayed: 2 })
  })

  it('keeps messages queued for a peer until its first listener, even if they arrive with registered', async () => {
    const s = await server()
    const url = s.url as string
    const alice = await client(url, 'alice')
    for (let i = 0; i < 3; i++) await alice.send('bob', { i })
    const bob = await client(url, 'bob')
    // Listen only after connect() resolved and a macrotask passed: the queued frames have long arrived by now.
    await new Promise(resolve => setTimeout(resolve, 100))
    const got: unknown[] = []
    bob.on('message', (_from, data) => { got.push(data) })
    await new Promise(resolve => setTimeout(resolve, 50))
    expect(got).to.deep.equal([{ i: 0 }, { i: 1 }, { i: 2 }])
  })

  it('refuses a bad token (unauthorized) and an expired one (expired), with typed errors', async () => {
    const s = await server()
    const bad = await expectRejection(RendezvousClient.connect({ url: s.url as string, id: 'eve', token: rendezvousToken('guess', 'eve', 60) }), RendezvousRemoteError)
    expect(bad.code).to.equal('ERR_RENDEZVOUS_UNAUTHORIZED')
    const old = await expectRejection(RendezvousClient.connect({ url: s.url as string, id: 'eve', token: rendezvousToken(SECRET, 'eve', 60, Date.now() - 3_600_000) }), RendezvousRemoteError)
    expect(old.reason).to.equal('expired')
    for (let i = 0; i < 50 && s.stats().connections > 0; i++) await new Promise(resolve => setTimeout(resolve, 20))
    expect(s.stats()).to.include({ peersOnline: 0, connections: 0 })
  })

  it('a client that drops abruptly resumes its session without losing queued or in-flight messages', async () => {
    const s = await server()
    const proxy = await TcpProxy.start(s.address as { address: string, port: number })
    cleanup.push(async () => { await proxy.close() })
    const alice = await client(s.url as string, 'alice')
    const bob = await client(proxy.url, 'bob', { reconnect: { initialDelayMs: 50, maxDelayMs: 200 } })
    const session = bob.session
    const received: unknown[] = []
    bob.on('message', (_from, data) => { received.push(data) })
    await alice.send('bob', 0)

    alice.watch(['bob'])
    await once(alice, 'presence')
    const offline = once<[string, boolean]>(alice, 'presence')
    proxy.blocked = true
    const disconnected = once(bob, 'disconnected')
    proxy.cut()
    await disconnected
    expect(await offline).to.deep.equal(['bob', false])
    // While bob is away: alice's messages are queued, bob's own send waits in its outbox.
    for (let i = 1; i <= 5; i++) await alice.send('bob', i)
    expect(s.stats().queuedNow).to.equal(5)
    const fromBob = waitForMessage(alice, from => from === 'bob')
    const bobSend = bob.send('alice', 'sent while offline')

    const reconnected = once<[{ resumed: boolean, session: string }]>(bob, 'reconnected', 10_000)
    proxy.blocked = false
    const [info] = await reconnected
    expect(info).to.include({ resumed: true, session })
    await bobSend
    expect((await fromBob).data).to.equal('sent while offline')
    for (let i = 0; i < 100 && received.length < 6; i++) await new Promise(resolve => setTimeout(resolve, 20))
    expect(received).to.deep.equal([0, 1, 2, 3, 4, 5])
    expect(s.stats().queuedNow).to.equal(0)
  })

  it('a second connection with the same id replaces the first, which closes for good', async () => {
    const s = await server()
    const first = await client(s.url as string, 'alice')
    const closed = once<[Error | undefined]>(first, 'close')
    const second = await client(s.url as string, 'alice')
    const [err] = await closed
    expect(err).to.be.instanceOf(RendezvousRemoteError)
    expect((err as RendezvousRemoteError).reason).to.equal('replaced')
    await expectRejection(first.send('x', 1), RendezvousClosedError)
    expect(second.connected).to.equal(true)
    expect(s.stats().peersOnline).to.equal(1)
  })

  it('send rejects with a typed error when the offline peer\'s queue is full', async () => {
    const s = await server({ maxQueuedPerPeer: 1 })
    const alice = await client(s.url as string, 'alice')
    await alice.send('nobody', 1)
    const err = await expectRejection(alice.send('nobody', 2), RendezvousRemoteError)
    expect(err.code).to.equal('ERR_RENDEZVOUS_QUEUE_FULL')
  })

  it('answers an oversized frame with too_large, closes a huge one with 1009, and stays up', async () => {
    const s = await server({ open: true, authSecret: undefined, maxMessageBytes: 8 * 1024, maxPayloadBytes: 32 * 1024 })
    const p = await raw(s.url as string)
    p.send({ type: 'register', id: 'big' })
    await p.until(() => p.frames.length === 1)
    p.send({ type: 'send', to: 'x', data: 'y'.repeat(10 * 1024), seq: 1 })
    await p.until(() => p.frames.length === 2)
    expect(p.frames[1]).to.include({ type: 'error', code: 'too_large' })
    p.send({ type: 'ping', t: 1 })
    await p.until(() => p.frames.length === 3)
    expect(p.frames[2]).to.include({ type: 'pong', t: 1 })
    p.send({ type: 'send', to: 'x', data: 'y'.repeat(64 * 1024) })
    expect(await p.closed()).to.equal(1009)
    const q = await raw(s.url as string)
    q.send({ type: 'register', id: 'after' })
    await q.until(() => q.frames.length === 1)
    expect(q.frames[0]).to.include({ type: 'registered', id: 'after' })
  })

  it('answers invalid JSON and binary garbage with error frames, and survives garbage TCP bytes', async () => {
    const s = await server({ open: true })
    const p = await raw(s.url as string)
    p.send({ type: 'register', id: 'g' })
    p.send('{{{ not json')
    p.send(Buffer.from([0x00, 0xff, 0x13, 0x37]))
    p.send({ type: 'warp', seq: 3 })
    await p.until(() => p.frames.length === 4)
    expect(p.frames.slice(1).map(f => [f.type, f.code, f.ref])).to.deep.equal([['error', 'bad_json', undefined], ['error', 'bad_json', undefined], ['error', 'unknown_type', 3]])
    const sock = tcpConnect((s.address as { port: number }).port, '127.0.0.1')
    sock.on('error', () => {})
    await new Promise<void>((resolve) => { sock.on('connect', resolve) })
    let answer = ''
    sock.on('data', (d: Buffer) => { answer += d.toString('latin1') })
    sock.write(Buffer.from('\x16\x03\x01garbage\r\n\r\n\x00\x01\x02'))
    await new Promise<void>((resolve) => { sock.on('close', () => { resolve() }) })
    expect(answer).to.match(/^HTTP\/1\.1 400/)
    const status = await new Promise<number | undefined>((resolve, reject) => {
      request({ host: '127.0.0.1', port: (s.address as { port: number }).port, path: '/' }, (res) => { res.resume(); resolve(res.statusCode) }).on('error', reject).end()
    })
    expect(status).to.equal(426)
    p.send({ type: 'ping', t: 9 })
    await p.until(() => p.frames.length === 5)
    expect(p.frames[4]).to.include({ type: 'pong', t: 9 })
  })

  it('rate limits a flooding peer while another pair keeps talking', async () => {
    const s = await server({ rateLimit: { messagesPerSecond: 20, messageBurst: 20 } })
    const url = s.url as string
    const flood = await raw(url)
    flood.send({ type: 'register', id: 'flood', token: rendezvousToken(SECRET, 'flood', 60) })
    await flood.until(() => flood.frames.length === 1)
    const carol = await client(url, 'carol')
    const dave = await client(url, 'dave')
    const got: unknown[] = []
    dave.on('message', (_f, d) => { got.push(d) })
    for (let i = 0; i < 500; i++) flood.send({ type: 'send', to: 'dave', data: 'spam', seq: i })
    for (let i = 0; i < 10; i++) await carol.send('dave', i)
    await flood.until(() => flood.frames.length >= 501)
    const limited = flood.frames.filter(f => f.type === 'error' && f.code === 'rate_limited').length
    expect(limited).to.be.greaterThan(400)
    for (let i = 0; i < 100 && got.filter(d => d !== 'spam').length < 10; i++) await new Promise(resolve => setTimeout(resolve, 20))
    expect(got.filter(d => d !== 'spam')).to.deep.equal([0, 1, 2, 3, 4, 5, 6, 7, 8, 9])
    expect(s.stats().dropped.rate_limited).to.equal(limited)
  })

  it('closes 200 connections that never register', async () => {
    // The timeout must outlast opening all 200 on a loaded machine, or early ones close before the count is read.
    const s = await server({ registerTimeoutMs: 2000, tickIntervalMs: 50, maxPendingPerIp: 200 })
    const peers = await Promise.all(Array.from({ length: 200 }, async () => await raw(s.url as string)))
    expect(s.stats().pendingConnections).to.equal(200)
    const codes = await Promise.all(peers.map(async p => await p.closed(5000)))
    expect(new Set(codes)).to.deep.equal(new Set([4004]))
    expect(peers.every(p => p.frames[0]?.code === 'register_timeout')).to.equal(true)
    for (let i = 0; i < 50 && s.stats().connections > 0; i++) await new Promise(resolve => setTimeout(resolve, 20))
    expect(s.stats()).to.include({ pendingConnections: 0, connections: 0 })
  })

  it('takes the observed address from X-Forwarded-For only when trustProxy is set', async () => {
    for (const trustProxy of [true, false]) {
      const s = await server({ open: true, trustProxy })
      const ws = new WebSocket(s.url as string, { headers: { 'X-Forwarded-For': '198.51.100.7, 203.0.113.5:4711' } })
      const first = await new Promise<any>((resolve, reject) => {
        ws.on('open', () => { ws.send(JSON.stringify({ type: 'register', id: 'p' })) })
        ws.on('message', (d) => { resolve(JSON.parse(d.toString())) })
        ws.on('error', reject)
      })
      ws.terminate()
      if (trustProxy) expect(first.observed).to.deep.equal({ address: '203.0.113.5', port: 4711 })
      else expect(first.observed.address).to.equal('127.0.0.1')
    }
  })

  it('after a server restart the client gets a new session and re-sends its watches', async () => {
    const s1 = await server()
    const port = (s1.address as { port: number }).port
    const alice = await client(s1.url as string, 'alice', { token: () => rendezvousToken(SECRET, 'alice', 60), reconnect: { initialDelayMs: 50, maxDelayMs: 100 } })
    alice.watch(['bob'])
    await once(alice, 'presence')
    const oldSession = alice.session
    await s1.close()
    const s2 = await server({ listen: { address: '127.0.0.1', port } })
    const [info] = await once<[{ resumed: boolean, session: string }]>(alice, 'reconnected', 10_000)
    expect(info.resumed).to.equal(false)
    expect(info.session).to.not.equal(oldSession)
    const online = once<[string, boolean]>(alice, 'presence')
    const bob = await client(s2.url as string, 'bob')
    expect(bob.connected).to.equal(true)
    // The first presence after the reconnect is the answer to the re-sent watch (offline), then bob arrives.
    const seen = [await online]
    if (seen[0][1] === false) seen.push(await once<[string, boolean]>(alice, 'presence'))
    expect(seen[seen.length - 1]).to.deep.equal(['bob', true])
  })

  it('attaches to an existing HTTP server and leaves its other routes alone', async () => {
    const http = createHttpServer((_req, res) => { res.end('metrics') })
    await new Promise<void>((resolve) => { http.listen(0, '127.0.0.1', resolve) })
    cleanup.push(async () => { await new Promise<void>((resolve) => { http.close(() => { resolve() }); http.closeAllConnections() }) })
    const s = await server({ server: http, path: '/rendezvous' })
    expect(s.url).to.match(/\/rendezvous$/)
    const alice = await client(s.url as string, 'alice')
    expect(alice.connected).to.equal(true)
    const body = await new Promise<string>((resolve, reject) => {
      request({ host: '127.0.0.1', port: (s.address as { port: number }).port, path: '/metrics' }, (res) => {
        let b = ''; res.on('data', (d: Buffer) => { b += d.toString() }); res.on('end', () => { resolve(b) })
      }).on('error', reject).end()
    })
    expect(body).to.equal('metrics')
    await s.close()
    expect(http.listening).to.equal(true)
  })

  it('close() tells clients shutting_down; a client without reconnect then closes', async () => {
    const s = await server()
    const alice = await client(s.url as string, 'alice', { reconnect: false })
    const closed = once<[Error | undefined]>(alice, 'close')
    await s.close()
    await s.close()
    const [err] = await closed
    expect((err as RendezvousRemoteError).reason).to.equal('shutting_down')
    expect(s.stats()).to.include({ connections: 0, peersOnline: 0 })
  })

  it('after close() nothing holds the process: a script using server and clients exits by itself', async () => {
    const script = fileURLToPath(new URL('./fixtures/exit-check.js', import.meta.url))
    const child = spawn(process.execPath, [script], { stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    child.stdout.on('data', (d: Buffer) => { out += d.toString() })
    child.stderr.on('data', (d: Buffer) => { out += d.toString() })
    const timer = setTimeout(() => { child.kill('SIGKILL') }, 10_000)
    const code = await new Promise<number | null>((resolve) => { child.on('close', (c) => { resolve(c) }) })
    clearTimeout(timer)
    expect(out).to.contain('done pending-closed')
    expect(code, out).to.equal(0)
  })
})
