import { expect } from 'chai'
import { createClient } from 'redis'
import { hasCommand, requireOrSkip } from '../../support/env.js'
import { start, type Started } from '../../support/process.js'
import { freePort } from '../relay/support.js'
import type { SessionHandover, SessionRequest } from '../../../src/rendezvous/core-types.js'
import { RedisRendezvousRemote } from '../../../src/rendezvous/redis-remote.js'
import type { RendezvousRemoteHandlers } from '../../../src/rendezvous/remote.js'

const sleep = async (ms: number): Promise<void> => { await new Promise((resolve) => setTimeout(resolve, ms)) }

/** Handlers that record the session requests and handovers a remote reports. */
function recorder (): { handlers: RendezvousRemoteHandlers, requests: Array<[string, SessionRequest]>, handovers: Array<[string, SessionHandover]> } {
  const requests: Array<[string, SessionRequest]> = []
  const handovers: Array<[string, SessionHandover]> = []
  const handlers: RendezvousRemoteHandlers = {
    message: () => {}, online: () => {}, offline: () => {}, roster: () => {}, nodeGone: () => {}, localRoster: () => [],
    sessionRequest: (node, r) => { requests.push([node, r]) },
    sessionHandover: (node, h) => { handovers.push([node, h]) }
  }
  return { handlers, requests, handovers }
}

/** RedisRendezvousRemote's session messages (`session?`, `session`) against a real redis-server on 127.0.0.1. */
describe('RedisRendezvousRemote: sessions between nodes (redis-server on loopback)', function () {
  this.timeout(30_000)
  let redis: Started | undefined
  let url = ''
  const closers: Array<() => Promise<unknown>> = []

  before(async function () {
    requireOrSkip(this, hasCommand('redis-server'), 'redis-server not installed (Debian package redis-server)')
    const port = await freePort()
    redis = await start('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { ready: /Ready to accept connections/, timeoutMs: 10_000 })
    url = `redis://127.0.0.1:${port}`
  })
  after(async () => {
    for (const c of closers.reverse()) await c().catch(() => {})
    await redis?.stop()
  })

  const handover: SessionHandover = {
    ref: 'r1', id: 'bob', session: 'S1', nextN: 4,
    replay: [{ n: 2, from: 'alice', json: '{"i":2}', seq: 9, at: 1 }, { n: 3, from: 'alice', json: '3', at: 2 }],
    queued: [{ to: 'bob', from: 'carol', json: '"q"', expiresAt: 5 }],
    watches: ['dave'], seen: [[7, false], [8, true]]
  }

  it('asks every other node for a session and hands it over to the asking node only, intact', async () => {
    const a = await RedisRendezvousRemote.start({ url, namespace: 'rz', node: 'A' })
    const b = await RedisRendezvousRemote.start({ url, namespace: 'rz', node: 'B' })
    const c = await RedisRendezvousRemote.start({ url, namespace: 'rz', node: 'C' })
    closers.push(async () => { await Promise.all([a.close(), b.close(), c.close()]) })
    const [ra, rb, rc] = [recorder(), recorder(), recorder()]
    a.start(ra.handlers); b.start(rb.handlers); c.start(rc.handlers)
    await sleep(300)
    b.requestSession({ ref: 'r1', id: 'bob', session: 'S1', received: 1 })
    await sleep(300)
    expect(ra.requests).to.deep.equal([['B', { ref: 'r1', id: 'bob', session: 'S1', received: 1 }]])
    expect(rc.requests).to.have.length(1)
    expect(rb.requests).to.deep.equal([]) // not its own
    expect(await a.handOver('B', handover)).to.equal(true)
    await sleep(300)
    expect(rb.handovers).to.deep.equal([['A', handover]])
    expect(rc.handovers).to.deep.equal([])
    expect(await a.handOver('nobody', handover)).to.equal(false) // no such node: the holder keeps the session
  })

  it('ignores malformed session messages without throwing, and goes on with well-formed ones', async () => {
    const b = await RedisRendezvousRemote.start({ url, namespace: 'rz2', node: 'B' })
    const rb = recorder()
    b.start(rb.handlers)
    const raw = createClient({ url })
    await raw.connect()
    closers.push(async () => { await b.close(); await raw.quit() })
    await sleep(200)
    const bad: unknown[] = [
      { t: 'session', h: { ...handover, id: 'bad\nid' } },
      { t: 'session', h: { ...handover, nextN: -1 } },
      { t: 'session', h: { ...handover, replay: 'x' } },
      { t: 'session', h: { ...handover, replay: [{ n: 1, from: 'a', json: 3, at: 1 }] } },
      { t: 'session', h: { ...handover, queued: [{ to: 'mallory', from: 'a', json: '1', expiresAt: 1 }] } }, // not for this id
      { t: 'session', h: { ...handover, seen: [[1, 'yes']] } },
      { t: 'session', h: { ...handover, watches: Array.from({ length: 5000 }, (_, i) => `w${i}`) } },
      { t: 'session', h: { ...handover, session: 'x'.repeat(65) } },
      { t: 'session', h: null },
      { t: 'session?', r: { ref: 'r', id: 'bob' } },
      { t: 'session?', r: { ref: 'r', id: 'bob', session: 'S', received: 1.5 } }
    ]
    for (const body of bad) {
      const channel = (body as { t: string }).t === 'session' ? 'natkit/rendezvous/rz2/node/B' : 'natkit/rendezvous/rz2/all'
      await raw.publish(channel, JSON.stringify({ v: 1, node: 'X', ...(body as object) }))
    }
    await raw.publish('natkit/rendezvous/rz2/node/B', '{not json')
    await raw.publish('natkit/rendezvous/rz2/node/B', JSON.stringify({ v: 1, node: 'X', t: 'session', h: handover }))
    await sleep(300)
    expect(rb.requests).to.deep.equal([])
    expect(rb.handovers).to.deep.equal([['X', handover]])
  })
})
