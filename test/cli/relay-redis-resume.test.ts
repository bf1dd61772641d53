import { expect } from 'chai'
import { natcheckStart } from '../support/cli.js'
import { hasCommand, requireOrSkip } from '../support/env.js'
import { exitOf, start, type Started } from '../support/process.js'
import { freePort } from '../integration/relay/support.js'
import { RawPeer, TcpProxy } from '../integration/rendezvous/support.js'
import { RendezvousClient } from '../../src/rendezvous/client.js'
import { rendezvousToken } from '../../src/rendezvous/token.js'
import { waitForMessage } from '../../src/rendezvous/wait.js'

const REALM = 'natkit.test'
const SECRET = 'rendezvous-resume-secret'
const sleep = async (ms: number): Promise<void> => { await new Promise((resolve) => setTimeout(resolve, ms)) }

/** Poll (bounded) until `check` is true. */
async function eventually (check: () => boolean, timeoutMs: number): Promise<boolean> {
  const end = Date.now() + timeoutMs
  while (Date.now() < end) {
    if (check()) return true
    await sleep(50)
  }
  return check()
}

/**
 * Three relay nodes (127.0.0.1, .2 and .3) with their rendezvous sharing one redis-server, and a TCP proxy in front
 * of them as a load balancer: a peer whose connection to node A is cut reconnects through the proxy, lands on node
 * B, and resumes its session there (src/rendezvous/core-handover.ts). Everything on loopback; every process stopped
 * by PID.
 */
describe('natcheck relay --redis --rendezvous: a session resumed at another node (CLI)', function () {
  this.timeout(120_000)
  const closers: Array<() => Promise<void>> = []
  let redis: Started | undefined
  const nodes: Array<{ s: Started, url: string, port: number, ip: string }> = []
  let proxy: TcpProxy | undefined

  const client = async (url: string, id: string): Promise<RendezvousClient> => {
    const c = await RendezvousClient.connect({ url, id, token: rendezvousToken(SECRET, id, 600), reconnect: { initialDelayMs: 50, maxDelayMs: 200, maxAttempts: 50 } })
    closers.push(async () => { await c.close() })
    return c
  }
  /** Everything `c` receives from `from`, in order. */
  const inbox = (c: RendezvousClient, from: string): unknown[] => {
    const got: unknown[] = []
    c.on('message', (f, data) => { if (f === from) got.push(data) })
    return got
  }

  before(async function () {
    requireOrSkip(this, hasCommand('redis-server'), 'redis-server not installed (Debian package redis-server)')
    const redisPort = await freePort()
    redis = await start('redis-server', ['--port', String(redisPort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { ready: /Ready to accept connections/, timeoutMs: 10_000 })
    const port = await freePort()
    const rdv = await freePort()
    for (const ip of ['127.0.0.1', '127.0.0.2', '127.0.0.3']) {
      const base = 20000 + Math.floor(Math.random() * 20000)
      const s = await natcheckStart(['relay', '--listen', `${ip}:${port}`, '--ports', `${base}-${base + 99}`, '--realm', REALM, '--redis', `redis://127.0.0.1:${redisPort}`,
        '--auth-secret', SECRET, '--rendezvous', `${ip}:${rdv}`, '--workers', '1', '--drain-timeout', '1'], /rendezvous ws:/)
      nodes.push({ s, url: `ws://${ip}:${rdv}/`, port: rdv, ip })
    }
    proxy = await TcpProxy.start({ address: nodes[0].ip, port: nodes[0].port })
    await sleep(1500) // the nodes have heard each other's heartbeats
  })
  after(async () => {
    for (const c of closers.reverse()) await c().catch(() => {})
    await proxy?.close()
    for (const n of nodes.reverse()) await n.s.stop()
    await redis?.stop()
  })

  /**
   * Alice (at node A) sends `total` messages to bob, paced; bob is behind the proxy at node A. After `cutAfter` have
   * arrived the proxy is pointed at node B and bob's connection is cut (`cut`): bob reconnects, lands on node B and
   * resumes. Returns what bob got, in order, and how the reconnect went.
   */
  async function moveDuringStream (alice: RendezvousClient, bobId: string, total: number, cutAfter: number, cut: (p: TcpProxy) => void): Promise<{ bob: RendezvousClient, got: unknown[], reconnected: { session: string, resumed: boolean } | undefined, before: string | undefined }> {
    const p = proxy as TcpProxy
    p.target = { address: nodes[0].ip, port: nodes[0].port }
    const bob = await client(p.url, bobId)
    const before = bob.session
    const got = inbox(bob, alice.id)
    let reconnected: { session: string, resumed: boolean } | undefined
    bob.on('reconnected', (info) => { reconnected = info })
    await sleep(300) // node A has told node B that bob is here
    const sends: Array<Promise<void>> = []
    for (let i = 0; i < total; i++) {
      sends.push(alice.send(bobId, { i }))
      if (i === cutAfter) {
        expect(await eventually(() => got.length >= cutAfter - 5, 5000), `bob got ${got.length}`).to.equal(true)
        p.target = { address: nodes[1].ip, port: nodes[1].port }
        cut(p)
      }
      await sleep(20) // 50 messages/s: alice's rate limit
    }
    await Promise.all(sends)
    await eventually(() => got.length >= total, 10_000)
    await sleep(300) // nothing more (a duplicate) arrives
    return { bob, got, reconnected, before }
  }

  for (const [name, cut] of [
    ['reset at both ends (node A notices the drop at once)', (p: TcpProxy) => { p.cut() }],
    ['cut on the client side only (node A keeps sending into the dead connection)', (p: TcpProxy) => { p.cutClientsOnly() }]
  ] as const) {
    it(`delivers every message exactly once and in order when the peer resumes at node B after its connection is ${name}`, async () => {
      const alice = await client(nodes[0].url, `alice-${name.slice(0, 5)}`)
      const bobId = `bob-${name.slice(0, 5)}`
      const total = 120
      const { bob, got, reconnected, before } = await moveDuringStream(alice, bobId, total, 40, cut)
      expect(reconnected, 'bob reconnected').to.not.equal(undefined)
      expect(reconnected?.resumed, 'resumed at node B').to.equal(true)
      expect(reconnected?.session).to.equal(before)
      expect(got).to.deep.equal(Array.from({ length: total }, (_, i) => ({ i })))
      // The session lives at node B now: bob answers through it, and alice (at node A) gets the answer.
      const reply = waitForMessage(alice, (from) => from === bobId, { timeoutMs: 5000 })
      await bob.send(alice.id, 'got them all')
      expect((await reply).data).to.equal('got them all')
    })
  }

  it('refuses to move a session to another id or a wrong token; the session and its peer are unaffected', async () => {
    const p = proxy as TcpProxy
    p.target = { address: nodes[0].ip, port: nodes[0].port }
    const carol = await client(p.url, 'carol')
    const session = carol.session as string
    const dropped: unknown[] = []
    carol.on('disconnected', (info) => { dropped.push(info) })
    await sleep(300)
    // Mallory, with her own valid token, names carol's session at node B: she gets a fresh session of her own.
    const mallory = await RawPeer.open(nodes[1].url)
    closers.push(async () => { mallory.close() })
    mallory.send({ type: 'register', id: 'mallory', token: rendezvousToken(SECRET, 'mallory', 600), resume: session, received: 0 })
    await mallory.until(() => mallory.frames.some(f => f.type === 'registered'), 5000)
    const reg = mallory.frames.find(f => f.type === 'registered')
    expect(reg).to.deep.include({ id: 'mallory', resumed: false })
    expect(reg.session).to.not.equal(session)
    // As carol, with a token that does not verify: refused before any node is asked.
    const forger = await RawPeer.open(nodes[1].url)
    closers.push(async () => { forger.close() })
    forger.send({ type: 'register', id: 'carol', token: rendezvousToken('guessed-secret', 'carol', 600), resume: session, received: 0 })
    expect(await forger.closed(5000)).to.equal(4001)
    // Carol's connection to node A never dropped, and messages reach her session there.
    const dave = await client(nodes[1].url, 'dave')
    const got = waitForMessage(carol, (from) => from === 'dave', { timeoutMs: 5000 })
    await dave.send('carol', 'still yours')
    expect((await got).data).to.equal('still yours')
    expect(dropped).to.deep.equal([])
    expect(carol.session).to.equal(session)
  })

  it('hands the sessions of a node stopped with SIGTERM over to the node its clients reconnect to', async () => {
    const p = proxy as TcpProxy
    p.target = { address: nodes[2].ip, port: nodes[2].port }
    const gina = await client(p.url, 'gina')
    const hal = await client(nodes[1].url, 'hal')
    const got = inbox(gina, 'hal')
    const before = gina.session
    await sleep(300)
    for (let i = 0; i < 5; i++) await hal.send('gina', i)
    expect(await eventually(() => got.length === 5, 5000)).to.equal(true)
    const reconnected = new Promise<{ session: string, resumed: boolean }>((resolve) => { gina.once('reconnected', resolve) })
    p.target = { address: nodes[1].ip, port: nodes[1].port }
    // Node C drains (no allocations: at once), tells gina it is going away and waits for her to resume elsewhere.
    nodes[2].s.child.kill('SIGTERM')
    const sends: Array<Promise<void>> = []
    for (let i = 5; i < 25; i++) { sends.push(hal.send('gina', i)); await sleep(20) }
    expect(await reconnected).to.deep.include({ session: before, resumed: true })
    await Promise.all(sends)
    expect(await eventually(() => got.length >= 25, 5000), JSON.stringify(got)).to.equal(true)
    await sleep(200)
    expect(got).to.deep.equal(Array.from({ length: 25 }, (_, i) => i))
    expect(await exitOf(nodes[2].s, 10_000)).to.equal(0)
  })

  it('loses the session of a node killed with SIGKILL, as one node does on a crash: a fresh session after the bound, and signalling goes on', async () => {
    const p = proxy as TcpProxy
    p.target = { address: nodes[0].ip, port: nodes[0].port }
    const erin = await client(p.url, 'erin')
    const frank = await client(nodes[1].url, 'frank')
    const got = inbox(erin, 'frank')
    const before = erin.session
    await sleep(300)
    await frank.send('erin', 'before the crash')
    expect(await eventually(() => got.length === 1, 5000)).to.equal(true)
    const reconnected = new Promise<{ session: string, resumed: boolean, at: number }>((resolve) => { erin.once('reconnected', (info) => { resolve({ ...info, at: Date.now() }) }) })
    p.target = { address: nodes[1].ip, port: nodes[1].port }
    const killedAt = Date.now()
    nodes[0].s.child.kill('SIGKILL')
    const info = await reconnected
    // Nobody holds the session any more: node B waits handoverTimeoutMs (1.5 s) for an answer, then starts afresh.
    expect(info.resumed).to.equal(false)
    expect(info.session).to.not.equal(before)
    expect(info.at - killedAt).to.be.within(1400, 8000)
    // The new session at node B works: messages from frank (same node) and after it.
    await frank.send('erin', 'after the crash')
    expect(await eventually(() => got.length === 2, 5000), JSON.stringify(got)).to.equal(true)
    expect(got).to.deep.equal(['before the crash', 'after the crash'])
  })
})
