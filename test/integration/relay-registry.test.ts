import { expect } from 'chai'
import { hasCommand, requireOrSkip } from '../support/env.js'
import { start, type Started } from '../support/process.js'
import { freePort } from './relay/support.js'
import { RedisNodeRegistry } from '../../src/relay/redis-registry.js'
import { TurnClient } from '../../src/relay/turn-client.js'
import { TurnServer } from '../../src/relay/turn-server.js'

const REALM = 'natkit.test'

/** Poll (bounded) until `check` is true. */
async function eventually (check: () => boolean, timeoutMs: number): Promise<boolean> {
  const end = Date.now() + timeoutMs
  while (Date.now() < end) {
    if (check()) return true
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  return check()
}

describe('RedisNodeRegistry (redis-server on loopback)', function () {
  this.timeout(30_000)
  let redis: Started | undefined
  const closers: Array<() => Promise<void>> = []
  after(async () => {
    for (const c of closers.reverse()) await c().catch(() => {})
    await redis?.stop()
  })

  it('counts another node\'s allocations only while its state is fresh: with Redis gone, the last states expire too', async function () {
    requireOrSkip(this, hasCommand('redis-server'), 'redis-server not installed (Debian package redis-server)')
    const port = await freePort()
    redis = await start('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { ready: /Ready to accept connections/, timeoutMs: 10_000 })
    const url = `redis://127.0.0.1:${port}`
    const node = async (): Promise<{ server: TurnServer, registry: RedisNodeRegistry }> => {
      const server = await TurnServer.start({ listen: [{ address: '127.0.0.1', port: 0 }], realm: REALM, users: { u: 'p' } })
      const registry = await RedisNodeRegistry.start({ url, realm: REALM, node: server.addresses.udp[0], intervalMs: 200 })
      registry.attach(server)
      closers.push(async () => { await registry.close(); await server.close() })
      return { server, registry }
    }
    const a = await node()
    const b = await node()
    const client = await TurnClient.allocate({ server: `127.0.0.1:${a.server.addresses.udp[0].port}`, credentials: { username: 'u', password: 'p' } })
    closers.push(async () => { await client.close() })
    expect(await eventually(() => b.registry.nodes.some(s => s.users.u === 1), 3000)).to.equal(true)
    expect(b.server.core.quotaElsewhere?.user('u')).to.equal(1)

    await redis.stop()
    // Still counted for a moment (as long as it would live in Redis: 5 intervals = 1 s), then no longer.
    expect(b.server.core.quotaElsewhere?.user('u')).to.equal(1)
    expect(await eventually(() => b.registry.nodes.length === 0, 3000)).to.equal(true)
    expect(b.server.core.quotaElsewhere?.user('u')).to.equal(0)
  })
})
