import { expect } from 'chai'
import { natcheckStart } from '../support/cli.js'
import { hasCommand, requireOrSkip } from '../support/env.js'
import { start, type Started } from '../support/process.js'
import { echoPeer, freePort, roundTrip } from '../integration/relay/support.js'
import { TurnClient } from '../../src/relay/turn-client.js'
import { StunErrorResponse } from '../../src/errors.js'
import { connect, type PeerSession } from '../../src/traversal/session.js'
import { channelPair } from '../../src/traversal/signal-channel.js'

const REALM = 'natkit.test'
const sleep = async (ms: number): Promise<void> => { await new Promise((resolve) => setTimeout(resolve, ms)) }

/**
 * Three relay nodes on 127.0.0.1, .2 and .3 sharing one redis-server; node 1 is killed with SIGKILL (no drain, no
 * deregistration). All on loopback; every process is stopped by PID.
 */
describe('natcheck relay --redis: a node killed with SIGKILL (CLI)', function () {
  this.timeout(120_000)
  const started: Started[] = []
  const clients: TurnClient[] = []
  const nodes: Array<{ s: Started, server: string }> = []
  let peer: Awaited<ReturnType<typeof echoPeer>> | undefined

  before(async function () {
    requireOrSkip(this, hasCommand('redis-server'), 'redis-server not installed (Debian package redis-server)')
    const redisPort = await freePort()
    started.push(await start('redis-server', ['--port', String(redisPort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { ready: /Ready to accept connections/, timeoutMs: 10_000 }))
    const port = await freePort()
    for (const ip of ['127.0.0.1', '127.0.0.2', '127.0.0.3']) {
      const base = 20000 + Math.floor(Math.random() * 20000)
      const s = await natcheckStart(['relay', '--listen', `${ip}:${port}`, '--ports', `${base}-${base + 99}`, '--realm', REALM, '--redis', `redis://127.0.0.1:${redisPort}`,
        '--user', 'u1:p', '--user', 'u2:p', '--user-quota', '2', '--allow-peer', '127.0.0.0/8', '--workers', '1'], /listening udp/)
      started.push(s)
      nodes.push({ s, server: `${ip}:${port}` })
    }
    peer = await echoPeer()
  })
  const sessions: PeerSession[] = []
  after(async () => {
    await Promise.all(sessions.map(async s => { await s.close() }))
    await Promise.all(clients.map(async c => { await c.close() }))
    for (const s of started.reverse()) await s.stop()
    await peer?.close()
  })

  const allocate = async (server: string, extra: Partial<Parameters<typeof TurnClient.allocate>[0]> = {}): Promise<TurnClient | number> => {
    try {
      const c = await TurnClient.allocate({ server, credentials: { username: 'u1', password: 'p' }, ...extra })
      clients.push(c)
      return c
    } catch (err) {
      if (err instanceof StunErrorResponse) return err.errorCode
      throw err
    }
  }

  it('moves a client\'s allocation to another node, where its datagrams flow again, and frees the dead node\'s share of the quota', async () => {
    const echo = (peer as Awaited<ReturnType<typeof echoPeer>>).endpoint
    const failover = { servers: [nodes[1].server, nodes[2].server], checkIntervalS: 1, timeoutMs: 1000 }
    const client = await allocate(nodes[0].server, { failover })
    expect(client).to.be.instanceOf(TurnClient)
    const c = client as TurnClient
    expect(await allocate(nodes[0].server)).to.be.instanceOf(TurnClient) // u1's second allocation, also on node 1
    expect(await roundTrip(c, echo, 20)).to.equal(20)
    await sleep(2500) // the other nodes have read node 1's state: u1 holds its quota of 2 cluster-wide
    expect(await allocate(nodes[1].server)).to.equal(486)

    // A steady stream of datagrams through the relay: the "session" that must go on.
    const echoed: number[] = []
    c.on('data', (d) => { if (d.length === 8 && d.readUInt32BE(0) === 0x73657373) echoed.push(Date.now()) })
    const ticker = setInterval(() => { const b = Buffer.alloc(8); b.writeUInt32BE(0x73657373, 0); c.send(b, echo) }, 50)
    try {
      const moved = new Promise<string>((resolve) => { c.once('reallocated', (_a, reason) => { resolve(reason) }) })
      await sleep(500)
      nodes[0].s.child.kill('SIGKILL')
      const killedAt = Date.now()
      const reason = await Promise.race([moved, sleep(45_000).then(() => 'no reallocation within 45 s')])
      // (No 'error' listener here: the failed tries on the way, e.g. 486 while node 1's share still counts, must not end them.)
      expect(reason).to.match(/did not answer a Binding request within 1000 ms; moved to 127\.0\.0\.[23]:\d+/)
      expect(['127.0.0.2', '127.0.0.3']).to.include(c.allocation.server.address)
      expect(c.allocation.relayed.address).to.equal(c.allocation.server.address)
      await sleep(1000)
      const after = echoed.filter(t => t > killedAt)
      expect(after.length, 'datagrams echoed after the failover').to.be.greaterThan(5)
      // Figure for the docs: time from the kill to the first datagram echoed through the new node.
      console.log(`      failover: first echo through the new node ${after[0] - killedAt} ms after SIGKILL`)
    } finally {
      clearInterval(ticker)
    }
    expect(await roundTrip(c, echo, 20)).to.equal(20)

    // Node 1's entry has expired: its two allocations no longer count. u1 holds 1 (the moved client), so one more
    // fits on the node where it now lives, and the one after that is refused: the quota still holds.
    const here = `${c.allocation.server.address}:${c.allocation.server.port}`
    expect(await allocate(here)).to.be.instanceOf(TurnClient)
    expect(await allocate(here)).to.equal(486)
  })

  it('keeps a PeerSession going over the relay when its node is killed: the relayed candidate moves and the peer is told', async () => {
    const [ca, cb] = channelPair()
    const common = { bindAddress: '127.0.0.1', includeLoopback: true, timeoutMs: 30_000 }
    const turn = { server: nodes[1].server, credentials: { username: 'u2', password: 'p' }, failover: { servers: [nodes[2].server], checkIntervalS: 1, timeoutMs: 1000 } }
    const [alice, bob] = await Promise.all([
      connect({ ...common, channel: ca, role: 'controlling', policy: 'relay', turnServers: [turn] }),
      connect({ ...common, channel: cb, role: 'controlled' })
    ])
    sessions.push(alice, bob)
    expect(alice.path?.type).to.equal('relay')
    expect(alice.path?.local.address).to.equal('127.0.0.2')
    bob.on('message', (d) => { bob.send(d) })
    const echoed: number[] = []
    alice.on('message', () => { echoed.push(Date.now()) })
    const ticker = setInterval(() => { alice.send(Buffer.from('session datagram')) }, 50)
    try {
      expect(await waitFor(() => echoed.length > 5, 5000)).to.equal(true)
      nodes[1].s.child.kill('SIGKILL')
      const killedAt = Date.now()
      expect(await waitFor(() => echoed.some(t => t > killedAt + 500) && alice.path?.local.address === '127.0.0.3', 45_000), `path ${JSON.stringify(alice.path)}`).to.equal(true)
      const first = echoed.find(t => t > killedAt + 500) as number
      console.log(`      session: datagrams echoed again through node 3 ${first - killedAt} ms after SIGKILL of node 2`)
      await sleep(1000)
      expect(echoed.filter(t => t > first).length).to.be.greaterThan(5)
    } finally {
      clearInterval(ticker)
    }
  })
})

/** Poll (bounded) until `check` is true. */
async function waitFor (check: () => boolean, timeoutMs: number): Promise<boolean> {
  const end = Date.now() + timeoutMs
  while (Date.now() < end) {
    if (check()) return true
    await sleep(100)
  }
  return check()
}
