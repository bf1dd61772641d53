import { expect } from 'chai'
import { EventEmitter } from 'node:events'
import { NoPathError } from '../../../src/errors.js'
import type { RendezvousClient } from '../../../src/rendezvous/client.js'
import type { PathInfo } from '../../../src/traversal/agent.js'
import type { Candidate } from '../../../src/traversal/candidate.js'
import { echoExchange } from '../../../src/traversal/echo.js'
import type { PeerSession } from '../../../src/traversal/session.js'

/**
 * echoExchange (natcheck connect's and the lab's echo) between two in-memory peers: datagrams go straight across,
 * signalling is delayed as through a rendezvous server, and a peer's close ends the direct TCP path at once (its FIN),
 * as with the TCP punch.
 */

function candidate (type: Candidate['type'], transport: Candidate['transport'], port: number): Candidate {
  return { type, address: '192.0.2.1', port, transport, priority: 1, foundation: type, component: 1 }
}
const TCP_PATH: PathInfo = { type: 'direct', local: candidate('host', 'tcp', 40000), remote: candidate('host', 'tcp', 40001), rttMs: 1, component: 1 }
const RELAY_PATH: PathInfo = { type: 'relay', local: candidate('relay', 'udp', 50000), remote: candidate('host', 'udp', 40002), rttMs: 5, component: 1 }

class FakeSession extends EventEmitter {
  other: FakeSession | undefined
  current: PathInfo | undefined = TCP_PATH
  get path (): PathInfo {
    if (this.current === undefined) throw new NoPathError()
    return this.current
  }

  send (data: Uint8Array): boolean {
    const to = this.other
    setImmediate(() => { to?.emit('message', Buffer.from(data)) })
    return true
  }

  /** Closing ends the TCP path at both ends; the other side is left with its relay. */
  close (): void {
    this.current = undefined
    if (this.other !== undefined) this.other.current = RELAY_PATH
  }
}

class FakeSignalling extends EventEmitter {
  other: FakeSignalling | undefined
  constructor (readonly id: string, private readonly delayMs: number) { super() }
  async send (_to: string, data: unknown): Promise<void> {
    const to = this.other
    setTimeout(() => { to?.emit('message', this.id, data) }, this.delayMs)
  }
}

describe('echoExchange', () => {
  it('reports the path the echo ran on, even when the peer closes first and its close ends that path here', async () => {
    const a = new FakeSession()
    const b = new FakeSession()
    a.other = b; b.other = a
    // Alice's signalling is slow (her `done` reaches Bob at once, Bob's reaches her 50 ms later): Bob finishes first.
    const sa = new FakeSignalling('alice', 0)
    const sb = new FakeSignalling('bob', 50)
    sa.other = sb; sb.other = sa
    const asSession = (s: FakeSession): PeerSession => s as unknown as PeerSession
    const asClient = (s: FakeSignalling): RendezvousClient => s as unknown as RendezvousClient
    const bob = echoExchange(asSession(b), asClient(sb), 'alice', 5).then((r) => { b.close(); return r })
    const alice = echoExchange(asSession(a), asClient(sa), 'bob', 5)
    const [ra, rb] = await Promise.all([alice, bob])
    // Bob closed while Alice still waited for his `done`: her session is on the relay now…
    expect(a.current).to.equal(RELAY_PATH)
    // …but both exchanges ran over the TCP path, and say so.
    expect(ra).to.include({ delivered: 5, path: TCP_PATH })
    expect(rb).to.include({ delivered: 5, path: TCP_PATH })
  })

  it('reports no path when the session had none at the end of the pings', async () => {
    const a = new FakeSession()
    const b = new FakeSession()
    a.other = b; b.other = a
    a.current = undefined
    const sa = new FakeSignalling('alice', 0)
    const sb = new FakeSignalling('bob', 0)
    sa.other = sb; sb.other = sa
    const [ra] = await Promise.all([
      echoExchange(a as unknown as PeerSession, sa as unknown as RendezvousClient, 'bob', 2),
      echoExchange(b as unknown as PeerSession, sb as unknown as RendezvousClient, 'alice', 2)
    ])
    expect(ra.path).to.equal(undefined)
    expect(ra.delivered).to.equal(2)
  })
})
