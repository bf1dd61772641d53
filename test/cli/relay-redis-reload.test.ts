import { expect } from 'chai'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createClient } from 'redis'
import { natcheckStart } from '../support/cli.js'
import { hasCommand, requireOrSkip } from '../support/env.js'
import { relayPortBase } from '../support/net.js'
import { start, type Started } from '../support/process.js'
import { freePort } from '../integration/relay/support.js'
import { TurnClient } from '../../src/relay/turn-client.js'

const REALM = 'natkit.test'
const sleep = async (ms: number): Promise<void> => { await new Promise((resolve) => setTimeout(resolve, ms)) }

async function waitFor (s: Started, re: RegExp, ms: number): Promise<boolean> {
  const end = Date.now() + ms
  while (!re.test(s.output()) && Date.now() < end) await sleep(50)
  return re.test(s.output())
}

/** The Redis node registry follows a SIGHUP that moves a node's listeners and relay IP. */
describe('natcheck relay --redis: the node registry after a reload (CLI)', function () {
  this.timeout(120_000)
  const started: Started[] = []
  const clients: TurnClient[] = []
  let dir = ''
  after(async () => {
    await Promise.all(clients.map(async c => { await c.close() }))
    for (const s of started.reverse()) await s.stop()
    if (dir !== '') rmSync(dir, { recursive: true, force: true })
  })

  it('publishes the new address, drops the old one, and other nodes send clients there (300 Try Alternate)', async function () {
    requireOrSkip(this, hasCommand('redis-server'), 'redis-server not installed (Debian package redis-server)')
    const redisPort = await freePort()
    started.push(await start('redis-server', ['--port', String(redisPort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { ready: /Ready to accept connections/, timeoutMs: 10_000 }))
    const redisUrl = `redis://127.0.0.1:${redisPort}`
    dir = mkdtempSync(join(tmpdir(), 'natkit-redis-reload-'))
    const config = join(dir, 'relay.json')
    const [oldPort, newPort, otherPort] = [await freePort(), await freePort(), await freePort()]
    const base = relayPortBase(400)
    const settings = (listen: string, relayIp: string): string => JSON.stringify({
      listen: [listen], relayIp, realm: REALM, users: { u: 'p' }, redis: redisUrl, ports: `${base}-${base + 199}`, workers: 2
    })
    writeFileSync(config, settings(`127.0.0.2:${oldPort}`, '127.0.0.2'))
    const a = await natcheckStart(['relay', '--config', config], /listening udp/)
    started.push(a)
    const b = await natcheckStart(['relay', '--listen', `127.0.0.3:${otherPort}`, '--ports', `${base + 200}-${base + 399}`, '--realm', REALM, '--redis', redisUrl,
      '--user', 'u:p', '--workers', '1', '--drain-timeout', '60'], /listening udp/)
    started.push(b)

    const redis = createClient({ url: redisUrl })
    await redis.connect()
    try {
      const published = async (): Promise<string[]> => {
        const keys: string[] = []
        for await (const k of redis.scanIterator({ MATCH: `natkit/relay/${REALM}/node/*`, COUNT: 100 })) keys.push(k)
        return keys.map(k => k.split('/')[4]).sort()
      }
      const until = async (ok: (nodes: string[]) => boolean): Promise<string[]> => {
        const end = Date.now() + 10_000
        let nodes = await published()
        while (!ok(nodes) && Date.now() < end) { await sleep(200); nodes = await published() }
        return nodes
      }
      expect(new Set(await until(n => n.includes(`127.0.0.2:${oldPort}`) && n.includes(`127.0.0.3:${otherPort}`)))).to.deep.equal(new Set([`127.0.0.2:${oldPort}`, `127.0.0.3:${otherPort}`]))

      // The reload moves node A to another address and relay IP.
      writeFileSync(config, settings(`127.0.0.4:${newPort}`, '127.0.0.4'))
      a.child.kill('SIGHUP')
      expect(await waitFor(a, /configuration reloaded/, 10_000), a.output()).to.equal(true)
      // Every worker of A publishes under the new address; the old entries are gone at once (not left to expire).
      const after = await until(n => !n.includes(`127.0.0.2:${oldPort}`) && n.includes(`127.0.0.4:${newPort}`))
      expect(new Set(after)).to.deep.equal(new Set([`127.0.0.4:${newPort}`, `127.0.0.3:${otherPort}`]))

      // Node B drains (it holds an allocation): its new clients go to A at its new address.
      clients.push(await TurnClient.allocate({ server: `127.0.0.3:${otherPort}`, credentials: { username: 'u', password: 'p' } }))
      b.child.kill('SIGTERM')
      await sleep(2500) // B has published draining; it reads A's state every second
      const moved = await TurnClient.allocate({ server: `127.0.0.3:${otherPort}`, credentials: { username: 'u', password: 'p' } })
      clients.push(moved)
      expect(moved.allocation.server).to.deep.equal({ address: '127.0.0.4', port: newPort })
      expect(moved.allocation.relayed.address).to.equal('127.0.0.4')
    } finally {
      await redis.disconnect()
    }
  })
})
