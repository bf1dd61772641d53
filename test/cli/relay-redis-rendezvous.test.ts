import { expect } from 'chai'
import { natcheckStart } from '../support/cli.js'
import { hasCommand, requireOrSkip } from '../support/env.js'
import { start, type Started } from '../support/process.js'
import { freePort } from '../integration/relay/support.js'
import { RendezvousClient } from '../../src/rendezvous/client.js'
import { rendezvousToken } from '../../src/rendezvous/token.js'
import { waitForMessage } from '../../src/rendezvous/wait.js'
import { connect, type PeerSession } from '../../src/traversal/session.js'
import { rendezvousChannel } from '../../src/traversal/rendezvous-channel.js'

const REALM = 'natkit.test'
const SECRET = 'rendezvous-cluster-secret'
const sleep = async (ms: number): Promise<void> => { await new Promise((resolve) => setTimeout(resolve, ms)) }

/** Poll (bounded) until `check` is true. */
async function eventually (check: () => boolean, timeoutMs: number): Promise<boolean> {
  const end = Date.now() + timeoutMs
  while (Date.now() < end) {
    if (check()) return true
    await sleep(100)
  }
  return check()
}

/**
 * Three relay nodes on 127.0.0.1, .2 and .3, each with its rendezvous, sharing one redis-server: peers registered at
 * different nodes find and signal each other (all on loopback, every process stopped by PID).
 */
describe('natcheck relay --redis --rendezvous: one rendezvous across relay nodes (CLI)', function () {
  this.timeout(120_000)
  const started: Started[] = []
  const closers: Array<() => Promise<void>> = []
  let redis: Started | undefined
  let redisPort = 0
  const startRedis = async (): Promise<void> => {
    redis = await start('redis-server', ['--port', String(redisPort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { ready: /Ready to accept connections/, timeoutMs: 10_000 })
  }
  const nodes: Array<{ s: Started, url: string }> = []

  const peer = async (node: number, id: string): Promise<RendezvousClient> => {
    const c = await RendezvousClient.connect({ url: nodes[node].url, id, token: rendezvousToken(SECRET, id, 600), reconnect: false })
    closers.push(async () => { await c.close() })
    return c
  }

  before(async function () {
    requireOrSkip(this, hasCommand('redis-server'), 'redis-server not installed (Debian package redis-server)')
    redisPort = await freePort()
    await startRedis()
    const port = await freePort()
    const rdv = await freePort()
    for (const ip of ['127.0.0.1', '127.0.0.2', '127.0.0.3']) {
      const base = 20000 + Math.floor(Math.random() * 20000)
      const s = await natcheckStart(['relay', '--listen', `${ip}:${port}`, '--ports', `${base}-${base + 99}`, '--realm', REALM, '--redis', `redis://127.0.0.1:${redisPort}`,
        '--auth-secret', SECRET, '--rendezvous', `${ip}:${rdv}`, '--workers', '1'], /rendezvous ws:/)
      started.push(s)
      nodes.push({ s, url: `ws://${ip}:${rdv}/` })
    }
    await sleep(1500) // the nodes have heard each other's heartbeats
  })
  after(async () => {
    for (const c of closers.reverse()) await c().catch(() => {})
    for (const s of started.reverse()) await s.stop()
    await redis?.stop()
  })

  it('delivers between peers at different nodes in the sender\'s order, with acks and presence', async () => {
    const alice = await peer(0, 'alice')
    const bob = await peer(1, 'bob')
    const seen: boolean[] = []
    alice.on('presence', (id, online) => { if (id === 'bob') seen.push(online) })
    await alice.watch(['bob'])
    expect(await eventually(() => seen.includes(true), 5000)).to.equal(true)
    const got: unknown[] = []
    bob.on('message', (from, data) => { if (from === 'alice') got.push(data) })
    // Each send resolves on its ack, which the node sends once Redis has handed the message to bob's node.
    await Promise.all(Array.from({ length: 30 }, async (_, i) => { await alice.send('bob', { i }) }))
    expect(await eventually(() => got.length === 30, 5000)).to.equal(true)
    expect(got).to.deep.equal(Array.from({ length: 30 }, (_, i) => ({ i })))
    const reply = waitForMessage(alice, (from) => from === 'bob', { timeoutMs: 5000 })
    await bob.send('alice', 'pong')
    expect((await reply).data).to.equal('pong')
    await bob.close()
    expect(await eventually(() => seen.at(-1) === false, 5000)).to.equal(true)
  })

  it('queues an offer for an id not registered anywhere yet and delivers it when the id registers at another node', async () => {
    const dave = await peer(0, 'dave')
    await dave.send('carol', 'offer')
    const carol = await RendezvousClient.connect({ url: nodes[2].url, id: 'carol', token: rendezvousToken(SECRET, 'carol', 600), reconnect: false })
    closers.push(async () => { await carol.close() })
    const m = await waitForMessage(carol, (from) => from === 'dave', { timeoutMs: 5000 }).catch(() => undefined)
    expect(m?.data).to.equal('offer')
  })

  it('lets natkit connect() two peers registered at different nodes', async () => {
    const erin = await peer(1, 'erin')
    const frank = await peer(2, 'frank')
    const opts = { bindAddress: '127.0.0.1', includeLoopback: true, timeoutMs: 30_000 }
    const [a, b] = await Promise.all([
      connect({ ...opts, channel: rendezvousChannel(erin, 'frank'), role: 'controlling' }),
      connect({ ...opts, channel: rendezvousChannel(frank, 'erin'), role: 'controlled' })
    ]) as [PeerSession, PeerSession]
    closers.push(async () => { await a.close(); await b.close() })
    const heard = new Promise<string>((resolve) => { b.once('message', (d) => { resolve(d.toString()) }) })
    a.send(Buffer.from('over the path the two nodes signalled'))
    expect(await heard).to.equal('over the path the two nodes signalled')
  })

  it('takes the peers of a node killed with SIGKILL offline for watchers elsewhere', async () => {
    await peer(2, 'kim')
    const lee = await peer(1, 'lee')
    const seen: boolean[] = []
    lee.on('presence', (id, online) => { if (id === 'kim') seen.push(online) })
    await lee.watch(['kim'])
    expect(await eventually(() => seen.includes(true), 5000)).to.equal(true)
    nodes[2].s.child.kill('SIGKILL')
    // Node 3 said nothing on its way out: the others notice its silence (5 heartbeats) and take its peers offline.
    expect(await eventually(() => seen.at(-1) === false, 10_000)).to.equal(true)
  })

  it('keeps delivering between peers of one node when Redis goes away, says so, and delivers what waited once it is back', async () => {
    const gina = await peer(0, 'gina')
    const hal = await peer(0, 'hal')
    const ivan = await peer(1, 'ivan')
    const forIvan: unknown[] = []
    ivan.on('message', (from, data) => { if (from === 'gina') forIvan.push(data) })
    await sleep(500) // node 1 has heard that ivan is at node 2
    await redis?.stop()
    const got = waitForMessage(hal, (from) => from === 'gina', { timeoutMs: 5000 })
    await gina.send('hal', 'still here')
    expect((await got).data).to.equal('still here')
    expect(await eventually(() => /rendezvous: Redis unreachable/.test(nodes[0].s.output()), 10_000), nodes[0].s.output()).to.equal(true)
    // Messages for ivan at node 2 wait at node 1 (acked as queued), in order.
    for (let i = 1; i <= 3; i++) await gina.send('ivan', { i })
    expect(forIvan).to.deep.equal([])
    await startRedis()
    expect(await eventually(() => forIvan.length === 3, 20_000), `ivan got ${JSON.stringify(forIvan)}`).to.equal(true)
    expect(forIvan).to.deep.equal([{ i: 1 }, { i: 2 }, { i: 3 }])
    expect(nodes[0].s.output()).to.match(/rendezvous: Redis reachable again/)
  })
})
