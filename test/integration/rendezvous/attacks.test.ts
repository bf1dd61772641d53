import { relayPortBase } from '../../support/net.js'
import { expect } from 'chai'
import { connect as tcpConnect, type Socket } from 'node:net'
import { WebSocket } from 'ws'
import { StunErrorResponse } from '../../../src/errors.js'
import { restApiPassword } from '../../../src/relay/credentials.js'
import { TurnClient } from '../../../src/relay/turn-client.js'
import { RendezvousClient } from '../../../src/rendezvous/client.js'
import { RendezvousRemoteError } from '../../../src/rendezvous/errors.js'
import { RENDEZVOUS_CLOSE_CODES } from '../../../src/rendezvous/protocol.js'
import { heldSize } from '../../../src/rendezvous/queue.js'
import { rendezvousToken } from '../../../src/rendezvous/token.js'
import { waitForMessage } from '../../../src/rendezvous/wait.js'
import { expectRejection } from '../../support/assert.js'
import { natcheckStart } from '../../support/cli.js'
import type { Started } from '../../support/process.js'
import { freePort } from '../relay/support.js'
import { RawPeer } from './support.js'

/**
 * Attacks on the rendezvous server of a real `natcheck relay --rendezvous` process (loopback only), run while a
 * legitimate pair (alice on 127.0.0.2, bob on 127.0.0.3) keeps signalling through it. Each attack asserts both that
 * it fails and that the pair is still served. The server runs with its defaults (docs/rendezvous.md).
 */

const SECRET = 'attack-suite-secret'
const REALM = 'natkit-attacks'
/** The server's defaults this suite relies on (core-options.ts). */
const MAX_PENDING_PER_IP = 32
const REGISTER_TIMEOUT_MS = 5000
const MAX_UNKNOWN_PER_SENDER = 32
const MAX_UNKNOWN_BYTES_PER_SENDER = 256 * 1024

const sleep = async (ms: number): Promise<void> => { await new Promise(resolve => setTimeout(resolve, ms)) }

/** Ping-pong between alice and bob every 50 ms; `progress()` asserts it advances, in order, without errors. */
class Traffic {
  sent = 0
  echoed = 0
  readonly bobGot: number[] = []
  readonly errors: string[] = []
  private readonly timer: NodeJS.Timeout

  constructor (alice: RendezvousClient, bob: RendezvousClient) {
    bob.on('message', (from, data) => {
      const d = data as { t?: string, i?: number }
      if (from !== 'alice' || d.t !== 'ping' || typeof d.i !== 'number') return
      this.bobGot.push(d.i)
      bob.send('alice', { t: 'pong', i: d.i }).catch((err: Error) => { this.errors.push(`bob send: ${err.message}`) })
    })
    alice.on('message', (from, data) => { if (from === 'bob' && (data as { t?: string }).t === 'pong') this.echoed++ })
    for (const [name, c] of [['alice', alice], ['bob', bob]] as const) {
      c.on('disconnected', (e) => { this.errors.push(`${name} disconnected: ${e.code} ${e.reason}`) })
      c.on('remote-error', (err) => { this.errors.push(`${name} remote error: ${err.message}`) })
    }
    this.timer = setInterval(() => {
      const i = this.sent++
      alice.send('bob', { t: 'ping', i }).catch((err: Error) => { this.errors.push(`alice send: ${err.message}`) })
    }, 50)
  }

  /** Wait (at most `ms`) for `n` more round trips; then no error so far and bob saw 0, 1, 2, … in order. */
  async progress (n = 10, ms = 5000): Promise<void> {
    const target = this.echoed + n
    for (const end = Date.now() + ms; this.echoed < target && Date.now() < end;) await sleep(20)
    expect(this.errors).to.deep.equal([])
    expect(this.echoed, 'round trips of the legitimate pair').to.be.at.least(target)
    expect(this.bobGot).to.deep.equal(this.bobGot.map((_, i) => i))
  }

  stop (): void { clearInterval(this.timer) }
}

/** Outcome of one attacking WebSocket. */
interface Attacker { ws: WebSocket, opened: boolean, closeCode?: number, failed: boolean }

/** Open `count` WebSockets from `localAddress` that never send a frame, `batch` at a time. */
async function idleWebSockets (url: string, localAddress: string, count: number, batch = 100): Promise<Attacker[]> {
  const all: Attacker[] = []
  for (let start = 0; start < count; start += batch) {
    await Promise.all(Array.from({ length: Math.min(batch, count - start) }, async () => {
      const a: Attacker = { ws: new WebSocket(url, { localAddress, perMessageDeflate: false, handshakeTimeout: 5000 }), opened: false, failed: false }
      all.push(a)
      a.ws.on('error', () => { a.failed = true })
      a.ws.on('close', (code) => { a.closeCode = code })
      await new Promise<void>((resolve) => {
        a.ws.once('open', () => { a.opened = true; resolve() })
        a.ws.once('close', () => { resolve() })
      })
    }))
  }
  return all
}

describe('rendezvous attacks against a real natcheck relay --rendezvous process', function () {
  this.timeout(120_000)
  let relay: Started | undefined
  let url = ''
  let turnPort = 0
  const clients: RendezvousClient[] = []
  const sockets: Array<{ terminate?: () => void, destroy?: () => void }> = []
  let traffic: Traffic | undefined

  async function legit (id: string, localAddress: string, token = rendezvousToken(SECRET, id, 600)): Promise<RendezvousClient> {
    const c = await RendezvousClient.connect({ url, id, token, localAddress, reconnect: false, connectTimeoutMs: 5000 })
    clients.push(c)
    return c
  }

  before(async () => {
    turnPort = await freePort()
    const rdvPort = await freePort()
    const base = relayPortBase()
    relay = await natcheckStart(['relay', '--listen', `127.0.0.1:${turnPort}`, '--ports', `${base}-${base + 99}`, '--realm', REALM,
      '--auth-secret', SECRET, '--rendezvous', `127.0.0.1:${rdvPort}`], /rendezvous ws:\/\/127\.0\.0\.1:\d+/)
    url = `ws://127.0.0.1:${rdvPort}/`
    const alice = await legit('alice', '127.0.0.2')
    const bob = await legit('bob', '127.0.0.3')
    traffic = new Traffic(alice, bob)
    await traffic.progress(5)
  })

  after(async () => {
    traffic?.stop()
    for (const s of sockets) { s.terminate?.(); s.destroy?.() }
    for (const c of clients) await c.close()
    await relay?.stop()
  })

  it('1,000 idle WebSockets from 127.0.0.1 hold at most 32 slots; a client from 127.0.0.2 still registers; the idle ones are closed after 5 s', async () => {
    const flood = await idleWebSockets(url, '127.0.0.1', 1000)
    for (const a of flood) sockets.push(a.ws)
    await sleep(300)
    const held = flood.filter(a => a.opened && a.ws.readyState === WebSocket.OPEN)
    const refusedAfterHandshake = flood.filter(a => a.closeCode === RENDEZVOUS_CLOSE_CODES.SERVER_FULL).length
    const refusedBeforeHandshake = flood.filter(a => !a.opened).length
    expect(held.length, 'idle WebSockets one address holds').to.be.at.most(MAX_PENDING_PER_IP).and.at.least(1)
    // On a slow machine the first survivors may already have timed out (4004) while the rest were opening.
    const timedOut = flood.filter(a => a.closeCode === RENDEZVOUS_CLOSE_CODES.REGISTER_TIMEOUT).length
    expect(held.length + timedOut + refusedAfterHandshake + refusedBeforeHandshake).to.equal(1000)

    // While the flood holds its slots: a new client from another address registers, the pair keeps talking.
    const carol = await legit('carol', '127.0.0.2')
    expect(carol.connected).to.equal(true)
    expect(carol.observed?.address).to.equal('127.0.0.2')
    await traffic?.progress()

    // The flood's survivors never registered: each is closed with register_timeout.
    const end = Date.now() + REGISTER_TIMEOUT_MS + 3000
    while (Date.now() < end && held.some(a => a.closeCode === undefined)) await sleep(100)
    expect(new Set(held.map(a => a.closeCode))).to.deep.equal(new Set([RENDEZVOUS_CLOSE_CODES.REGISTER_TIMEOUT]))
    await carol.close()
  })

  it('1,000 idle TCP connections from 127.0.0.1 (no HTTP request) do not lock out a client from 127.0.0.2', async () => {
    const port = Number(new URL(url).port)
    const conns: Array<{ socket: Socket, closed: boolean }> = []
    for (let start = 0; start < 1000; start += 100) {
      await Promise.all(Array.from({ length: 100 }, async () => {
        const socket = tcpConnect({ host: '127.0.0.1', port, localAddress: '127.0.0.1' })
        const c = { socket, closed: false }
        conns.push(c)
        sockets.push(socket)
        socket.on('error', () => {})
        socket.on('close', () => { c.closed = true })
        await new Promise<void>((resolve) => { socket.once('connect', resolve); socket.once('close', () => { resolve() }) })
      }))
    }
    await sleep(300)
    const open = conns.filter(c => !c.closed).length
    expect(open, 'idle TCP connections one address holds').to.be.at.most(MAX_PENDING_PER_IP).and.at.least(1)
    const dave = await legit('dave', '127.0.0.2')
    expect(dave.connected).to.equal(true)
    await traffic?.progress()
    for (const c of conns) c.socket.destroy()
    await dave.close()
  })

  it('refuses forged, truncated, TURN-replayed, far-future and expired tokens for alice without disturbing her', async () => {
    const now = Date.now()
    const expiry = String(Math.floor(now / 1000) + 600)
    const good = rendezvousToken(SECRET, 'alice', 600, now)
    const cases: Array<[string, string, string]> = [
      ['a token made with another secret', rendezvousToken('guessed-secret', 'alice', 600, now), 'unauthorized'],
      ['a truncated token', good.slice(0, -1), 'unauthorized'],
      ['a token with its MAC cut to 20 characters', good.slice(0, expiry.length + 21), 'unauthorized'],
      ['a token with a zeroed MAC', `${expiry}:${'A'.repeat(43)}`, 'unauthorized'],
      ['the TURN REST password of EXPIRY:alice', `${expiry}:${restApiPassword(SECRET, `${expiry}:alice`)}`, 'unauthorized'],
      ['a valid token expiring in 7 days', rendezvousToken(SECRET, 'alice', 7 * 86_400, now), 'unauthorized'],
      ['a valid token expiring in 10 years', rendezvousToken(SECRET, 'alice', 3650 * 86_400, now), 'unauthorized'],
      ['an expired token', rendezvousToken(SECRET, 'alice', 60, now - 3_600_000), 'expired']
    ]
    for (const [name, token, reason] of cases) {
      const err = await expectRejection(RendezvousClient.connect({ url, id: 'alice', token, localAddress: '127.0.0.4', reconnect: false }), RendezvousRemoteError)
      expect(err.reason, name).to.equal(reason)
    }
    // Alice was never replaced by any of them.
    await traffic?.progress()
    expect(clients[0].connected).to.equal(true)
  })

  it('refuses a rendezvous token used as the TURN REST password of EXPIRY:alice (401), while real REST credentials allocate', async () => {
    const now = Date.now()
    const expiry = String(Math.floor(now / 1000) + 600)
    const token = rendezvousToken(SECRET, 'alice', 600, now)
    const mac = token.slice(token.indexOf(':') + 1)
    const err = await expectRejection(TurnClient.allocate({ server: `127.0.0.1:${turnPort}`, credentials: { username: `${expiry}:alice`, password: mac } }), StunErrorResponse)
    expect(err.errorCode).to.equal(401)
    const ok = await TurnClient.allocate({ server: `127.0.0.1:${turnPort}`, credentials: { authSecret: SECRET, user: 'alice', ttlS: 600 } })
    expect(ok.allocation.relayed.port).to.be.greaterThan(0)
    await ok.close()
    await traffic?.progress()
  })

  it('messages to made-up ids stop at the sender\'s share (32 messages, 256 KiB); a late peer still gets its offer', async () => {
    const mallory = await RawPeer.open(url, '127.0.0.5')
    sockets.push(mallory.ws)
    mallory.send({ type: 'register', id: 'mallory', token: rendezvousToken(SECRET, 'mallory', 600) })
    await mallory.until(() => mallory.frames.length === 1)
    expect(mallory.frames[0]).to.include({ type: 'registered' })
    const data = 'x'.repeat(1000)
    // 600 sends at 20 per 100 ms: over the 100-frame burst the server's rate limit drops some; the rest are answered.
    for (let i = 0; i < 600; i++) {
      mallory.send({ type: 'send', to: `ghost-${i}`, data, seq: i })
      if (i % 20 === 19) await sleep(100)
    }
    await mallory.until(() => mallory.frames.length === 601, 10_000)
    const answers = mallory.frames.slice(1)
    // Every answer is a queued ack, unknown_recipient, or rate_limited: nothing else, and no disconnect.
    for (const f of answers) expect(f.type === 'ack' ? f.queued === true : ['unknown_recipient', 'rate_limited'].includes(f.code), JSON.stringify(f)).to.equal(true)
    expect(mallory.closeCode).to.equal(undefined)
    const queued = answers.filter(f => f.type === 'ack').length
    expect(queued).to.equal(MAX_UNKNOWN_PER_SENDER)
    expect(answers.filter(f => f.code === 'unknown_recipient').length).to.be.at.least(100 - MAX_UNKNOWN_PER_SENDER) // the rate limit's burst is 100 frames
    expect(queued * heldSize('mallory', JSON.stringify(data))).to.be.at.most(MAX_UNKNOWN_BYTES_PER_SENDER)

    // Big messages: the byte share binds first.
    const big = 'y'.repeat(30_000)
    const fit = Math.floor(MAX_UNKNOWN_BYTES_PER_SENDER / heldSize('trudy', JSON.stringify(big)))
    const trudy = await RawPeer.open(url, '127.0.0.5')
    sockets.push(trudy.ws)
    trudy.send({ type: 'register', id: 'trudy', token: rendezvousToken(SECRET, 'trudy', 600) })
    await trudy.until(() => trudy.frames.length === 1)
    for (let i = 0; i < 20; i++) trudy.send({ type: 'send', to: `phantom-${i}`, data: big, seq: i })
    await trudy.until(() => trudy.frames.length === 21, 10_000)
    expect(trudy.frames.slice(1).filter(f => f.type === 'ack').length).to.equal(fit)
    expect(trudy.frames.slice(1 + fit).every(f => f.code === 'unknown_recipient')).to.equal(true)

    // Meanwhile alice's offer to a peer that has not registered yet is queued and delivered when it arrives.
    await clients[0].send('erin', { t: 'offer', sdp: 'v=0' })
    const erin = await legit('erin', '127.0.0.6')
    const offer = await waitForMessage(erin, from => from === 'alice', { timeoutMs: 5000 })
    expect(offer.data).to.deep.equal({ t: 'offer', sdp: 'v=0' })
    await traffic?.progress()
    mallory.close(); trudy.close()
    await erin.close()
  })
})
