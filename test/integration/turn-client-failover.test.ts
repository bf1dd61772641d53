import { expect } from 'chai'
import { InvalidArgumentError } from '../../src/errors.js'
import { TurnClient } from '../../src/relay/turn-client.js'
import { TurnServer } from '../../src/relay/turn-server.js'
import { expectRejection } from '../support/assert.js'
import { echoPeer, roundTrip } from './relay/support.js'

const USER = { username: 'alice', password: 'wonderland' }
const REALM = 'natkit.test'

describe('TurnClient failover (natkit TurnServers on loopback)', function () {
  this.timeout(30_000)
  const closers: Array<() => Promise<void>> = []
  after(async () => { for (const c of closers.reverse()) await c().catch(() => {}) })

  const server = async (): Promise<TurnServer> => {
    const s = await TurnServer.start({ listen: [{ address: '127.0.0.1', port: 0 }], realm: REALM, users: { alice: 'wonderland' }, allowPeer: ['127.0.0.0/8'] })
    closers.push(async () => { await s.close() })
    return s
  }
  const at = (s: TurnServer): string => `127.0.0.1:${s.addresses.udp[0].port}`

  it('refuses failover options that cannot work', async () => {
    const s = await server()
    for (const failover of [{ servers: [''] }, { servers: ['x'], checkIntervalS: -1 }, { servers: ['x'], timeoutMs: 0 }]) {
      await expectRejection(TurnClient.allocate({ server: at(s), credentials: USER, failover }), InvalidArgumentError)
    }
  })

  it('moves to the next server when its server stops answering, skipping one that does not answer either, and relays there', async () => {
    const peer = await echoPeer()
    closers.push(peer.close)
    const first = await server()
    const dead = await server()
    const second = await server()
    const deadAt = at(dead)
    await dead.close()
    const client = await TurnClient.allocate({ server: at(first), credentials: USER, failover: { servers: [deadAt, at(second)], checkIntervalS: 0.2, timeoutMs: 300 } })
    closers.push(async () => { await client.close() })
    expect(await roundTrip(client, peer.endpoint, 10)).to.equal(10)
    await client.bindChannel(peer.endpoint)
    const moved = new Promise<string>((resolve) => { client.once('reallocated', (_a, reason) => { resolve(reason) }) })
    await first.close()
    expect(await moved).to.match(new RegExp(`did not answer a Binding request within 300 ms; moved to ${at(second).replace(/\./g, '\\.')}$`))
    expect(client.allocation.server.port).to.equal(second.addresses.udp[0].port)
    expect(second.stats().allocations).to.equal(1)
    expect(await roundTrip(client, peer.endpoint, 20)).to.equal(20) // permission and channel re-installed there
  })

  it('keeps its server while it answers the probes', async () => {
    const s = await server()
    const other = await server()
    const client = await TurnClient.allocate({ server: at(s), credentials: USER, failover: { servers: [at(other)], checkIntervalS: 0.1, timeoutMs: 500 } })
    closers.push(async () => { await client.close() })
    let moved = false
    client.on('reallocated', () => { moved = true })
    await new Promise((resolve) => setTimeout(resolve, 1000))
    expect(moved).to.equal(false)
    expect(other.stats().allocations).to.equal(0)
  })
})
