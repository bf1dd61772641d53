import { expect } from 'chai'
import { TurnServer } from '../../../src/relay/turn-server.js'
import { channelPair, connect, type PeerSession } from '../../../src/traversal/index.js'

const sleep = async (ms: number): Promise<void> => { await new Promise((resolve) => setTimeout(resolve, ms)) }

describe('connect over a relay that fails over (loopback, real sockets)', function () {
  this.timeout(30_000)
  const closers: Array<() => Promise<void>> = []
  after(async () => { for (const c of closers.reverse()) await c().catch(() => {}) })

  it('moves the relayed candidate to the failover server, tells the peer to drop the old one, and datagrams flow again', async () => {
    const start = async (): Promise<TurnServer> => {
      const s = await TurnServer.start({ listen: [{ address: '127.0.0.1', port: 0 }], realm: 'natkit.test', users: { u: 'p' }, allowPeer: ['127.0.0.0/8'] })
      closers.push(async () => { await s.close() })
      return s
    }
    const first = await start()
    const second = await start()
    const at = (s: TurnServer): string => `127.0.0.1:${s.addresses.udp[0].port}`
    const [ca, cb] = channelPair(2)
    const turn = { server: at(first), credentials: { username: 'u', password: 'p' }, failover: { servers: [at(second)], checkIntervalS: 0.2, timeoutMs: 300 } }
    const [alice, bob]: PeerSession[] = await Promise.all([
      connect({ bindAddress: '127.0.0.1', channel: ca, role: 'controlling', policy: 'relay', turnServers: [turn] }),
      connect({ bindAddress: '127.0.0.1', channel: cb, role: 'controlled' })
    ])
    closers.push(async () => { await alice.close(); await bob.close() })
    const oldRelayed = alice.path?.local
    expect(alice.path?.type).to.equal('relay')
    const got: number[] = []
    bob.on('message', (d) => { got.push(d.readUInt32BE(0)) })
    let n = 0
    const ticker = setInterval(() => { const b = Buffer.alloc(4); b.writeUInt32BE(n++); alice.send(b) }, 20)
    closers.push(async () => { clearInterval(ticker) })
    await sleep(300)
    await first.close()
    const closedAt = n
    const end = Date.now() + 10_000
    while (Date.now() < end && !got.some(x => x > closedAt + 5)) await sleep(50)
    expect(got.some(x => x > closedAt + 5), 'datagrams after the failover').to.equal(true)
    expect(second.stats().allocations).to.equal(1)
    expect(alice.path?.local.port).to.not.equal(oldRelayed?.port)
    // Bob dropped the pair with alice's old relayed address when told, not after consent ran out (30 s).
    const dropped = bob.report().attempts.find(a => a.remote.port === oldRelayed?.port)
    expect(dropped?.state).to.equal('failed')
    expect(dropped?.detail).to.equal('the peer removed this candidate')
  })
})
