import { relayPortBase } from '../support/net.js'
import { expect } from 'chai'
import { natcheckStart } from '../support/cli.js'
import { hasCommand, requireOrSkip } from '../support/env.js'
import { start, type Started } from '../support/process.js'
import { freePort } from '../integration/relay/support.js'
import { TurnClient } from '../../src/relay/turn-client.js'
import { StunErrorResponse } from '../../src/errors.js'

const REALM = 'natkit.test'
const sleep = async (ms: number): Promise<void> => { await new Promise((resolve) => setTimeout(resolve, ms)) }

/** Three relay nodes on 127.0.0.1, .2 and .3 sharing one redis-server (all on loopback, stopped by PID). */
describe('natcheck relay --redis: relay nodes sharing a realm (CLI)', function () {
  this.timeout(120_000)
  const started: Started[] = []
  const clients: TurnClient[] = []
  let redisPort = 0
  const nodes: Array<{ s: Started, server: string }> = []

  before(async function () {
    requireOrSkip(this, hasCommand('redis-server'), 'redis-server not installed (Debian package redis-server)')
    redisPort = await freePort()
    started.push(await start('redis-server', ['--port', String(redisPort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { ready: /Ready to accept connections/, timeoutMs: 10_000 }))
    const port = await freePort()
    for (const ip of ['127.0.0.1', '127.0.0.2', '127.0.0.3']) {
      const base = relayPortBase()
      const s = await natcheckStart(['relay', '--listen', `${ip}:${port}`, '--ports', `${base}-${base + 199}`, '--realm', REALM, '--redis', `redis://127.0.0.1:${redisPort}`,
        '--user', 'u1:p', '--user', 'u2:p', '--user-quota', '3', '--workers', '1', '--drain-timeout', '60'], /listening udp/)
      started.push(s)
      nodes.push({ s, server: `${ip}:${port}` })
    }
    await sleep(2500) // every node has published its state and read the others'
  })
  after(async () => {
    await Promise.all(clients.map(async c => { await c.close() }))
    for (const s of started.reverse()) await s.stop()
  })

  const allocate = async (server: string, user: string): Promise<TurnClient | number> => {
    try {
      const c = await TurnClient.allocate({ server, credentials: { username: user, password: 'p' } })
      clients.push(c)
      return c
    } catch (err) {
      if (err instanceof StunErrorResponse) return err.errorCode
      throw err
    }
  }

  it('enforces the per-user quota across nodes', async () => {
    // 3 allocations for u1 on nodes 1, 1 and 2; the registry carries them to node 3.
    for (const n of [0, 0, 1]) expect(await allocate(nodes[n].server, 'u1')).to.be.instanceOf(TurnClient)
    await sleep(2500)
    expect(await allocate(nodes[2].server, 'u1')).to.equal(486)
    expect(nodes[2].s.output()).to.match(/allocation refused \(486\): user quota of 3 reached, user=u1/)
    expect(await allocate(nodes[2].server, 'u2')).to.be.instanceOf(TurnClient) // another user is not held back
  })

  it('sends new clients of a draining node to another node with 300 Try Alternate, and natkit\'s client follows', async () => {
    nodes[0].s.child.kill('SIGTERM') // node 1 holds allocations: it drains for up to 60 s
    await sleep(2500)
    const c = await allocate(nodes[0].server, 'u2')
    expect(c).to.be.instanceOf(TurnClient)
    const server = (c as TurnClient).allocation.server
    expect(['127.0.0.2', '127.0.0.3']).to.include(server.address)
    expect((c as TurnClient).allocation.relayed.address).to.equal(server.address)
  })
})
