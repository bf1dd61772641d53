import { expect } from 'chai'
import { RendezvousClient } from '../../../src/rendezvous/client.js'
import { RendezvousServer } from '../../../src/rendezvous/server.js'
import { rendezvousToken } from '../../../src/rendezvous/token.js'
import { waitForMessage } from '../../../src/rendezvous/wait.js'
import { MemoryRendezvousHub } from '../../support/memory-remote.js'
import { TcpProxy } from './support.js'

const SECRET = 'handover-secret'
const sleep = async (ms: number): Promise<void> => { await new Promise((resolve) => setTimeout(resolve, ms)) }
async function eventually (check: () => boolean, timeoutMs: number): Promise<boolean> {
  const end = Date.now() + timeoutMs
  while (Date.now() < end) {
    if (check()) return true
    await sleep(20)
  }
  return check()
}

/**
 * Two RendezvousServers on 127.0.0.1 linked in memory (MemoryRendezvousHub), a TCP proxy in front as the load
 * balancer: the server adapter's side of a session moving between nodes (request, handover, the bound).
 */
describe('rendezvous: a session resumed at another server of a cluster (127.0.0.1, in-memory remote)', function () {
  this.timeout(20_000)
  const cleanup: Array<() => Promise<void> | void> = []
  afterEach(async () => {
    for (const c of cleanup.splice(0).reverse()) await c()
  })

  async function cluster (options: { handoverTimeoutMs?: number, handoverGraceMs?: number } = {}): Promise<{ hub: MemoryRendezvousHub, a: RendezvousServer, b: RendezvousServer, proxy: TcpProxy }> {
    const hub = new MemoryRendezvousHub()
    const start = async (node: string): Promise<RendezvousServer> => {
      const s = await RendezvousServer.start({ listen: { address: '127.0.0.1', port: 0 }, authSecret: SECRET, remote: hub.remote(node), handoverGraceMs: 0, ...options })
      cleanup.push(async () => { await s.close() })
      return s
    }
    const a = await start('A')
    const b = await start('B')
    const proxy = await TcpProxy.start(a.address as { address: string, port: number })
    cleanup.push(async () => { await proxy.close() })
    return { hub, a, b, proxy }
  }
  async function client (url: string, id: string): Promise<RendezvousClient> {
    const c = await RendezvousClient.connect({ url, id, token: rendezvousToken(SECRET, id, 300), reconnect: { initialDelayMs: 20, maxDelayMs: 100 } })
    cleanup.push(async () => { await c.close() })
    return c
  }

  it('moves the session to the node the client reconnects to: every message once, in order, across the move', async () => {
    const { a, b, proxy } = await cluster()
    const alice = await client(a.url as string, 'alice')
    const bob = await client(proxy.url, 'bob')
    const session = bob.session
    const got: unknown[] = []
    bob.on('message', (from, data) => { if (from === 'alice') got.push(data) })
    const resumed = new Promise<{ session: string, resumed: boolean }>((resolve) => { bob.once('reconnected', resolve) })
    const sends: Array<Promise<void>> = []
    for (let i = 0; i < 60; i++) {
      sends.push(alice.send('bob', i))
      if (i === 20) {
        expect(await eventually(() => got.length >= 15, 5000)).to.equal(true)
        proxy.target = b.address as { address: string, port: number }
        proxy.cutClientsOnly() // server A does not notice: it keeps delivering into the dead connection
      }
      await sleep(5)
    }
    await Promise.all(sends)
    expect(await resumed).to.deep.include({ session, resumed: true })
    expect(await eventually(() => got.length >= 60, 5000)).to.equal(true)
    await sleep(100)
    expect(got).to.deep.equal(Array.from({ length: 60 }, (_, i) => i))
    expect(a.stats()).to.include({ sessionsHandedOver: 1 })
    expect(b.stats()).to.include({ sessionsTakenOver: 1, peersOnline: 1 })
    const reply = waitForMessage(alice, (from) => from === 'bob', { timeoutMs: 3000 })
    await bob.send('alice', 'from B')
    expect((await reply).data).to.equal('from B')
  })

  it('gives a fresh session after handoverTimeoutMs when the node holding it does not answer', async () => {
    const { hub, a, b, proxy } = await cluster({ handoverTimeoutMs: 300 })
    const bob = await client(proxy.url, 'bob')
    const session = bob.session
    hub.dropped.add('A') // node A is gone for the others (no answer), though its socket to bob is cut below
    const resumed = new Promise<{ session: string, resumed: boolean, at: number }>((resolve) => { bob.once('reconnected', (info) => { resolve({ ...info, at: Date.now() }) }) })
    proxy.target = b.address as { address: string, port: number }
    const cutAt = Date.now()
    proxy.cut()
    const info = await resumed
    expect(info.resumed).to.equal(false)
    expect(info.session).to.not.equal(session)
    expect(info.at - cutAt).to.be.within(300, 3000)
    expect(b.stats()).to.include({ sessionsTakenOver: 0, peersOnline: 1 })
    void a
  })

  it('hands the sessions of a server that closes over to the server their clients reconnect to', async () => {
    const { a, b, proxy } = await cluster({ handoverGraceMs: 3000 })
    const alice = await client(b.url as string, 'alice')
    const bob = await client(proxy.url, 'bob')
    const session = bob.session
    const got: unknown[] = []
    bob.on('message', (from, data) => { if (from === 'alice') got.push(data) })
    await alice.send('bob', 1)
    expect(await eventually(() => got.length === 1, 3000)).to.equal(true)
    const resumed = new Promise<{ session: string, resumed: boolean }>((resolve) => { bob.once('reconnected', resolve) })
    proxy.target = b.address as { address: string, port: number }
    const started = Date.now()
    const closing = a.close() // bob gets shutting_down, reconnects through the proxy to B, and B asks A for the session
    expect(await resumed).to.deep.include({ session, resumed: true })
    await closing
    expect(Date.now() - started, 'close() ends once the session has moved, not after the whole grace').to.be.below(2500)
    expect(a.stats()).to.include({ sessionsHandedOver: 1, sessions: 0 })
    await alice.send('bob', 2)
    expect(await eventually(() => got.length === 2, 3000)).to.equal(true)
    expect(got).to.deep.equal([1, 2])
  })
})
