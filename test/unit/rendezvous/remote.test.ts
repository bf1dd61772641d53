import { expect } from 'chai'
import type { RemoteMessage, RendezvousAction } from '../../../src/rendezvous/core-types.js'
import { RENDEZVOUS_CLOSE_CODES } from '../../../src/rendezvous/protocol.js'
import { Harness, closeOf, framesTo } from './harness.js'

type Forward = Extract<RendezvousAction, { type: 'forward' }>
const forwards = (actions: RendezvousAction[]): Forward[] => actions.filter((a): a is Forward => a.type === 'forward')
const onlineAt = (actions: RendezvousAction[]): number => {
  const e = actions.find(a => a.type === 'event' && a.event.type === 'online')
  if (e === undefined || e.type !== 'event' || e.event.type !== 'online') throw new Error('no online event')
  return e.event.at
}
const messagesTo = (actions: RendezvousAction[], conn: number): unknown[] =>
  framesTo(actions, conn).filter(f => f.type === 'message').map(f => f.type === 'message' ? [f.from, f.data, f.n] : undefined)

/** Two rendezvous nodes, A and B, as the server adapters would link them through a RendezvousRemote. */
function twoNodes (options = {}): { a: Harness, b: Harness } {
  return { a: new Harness({ open: true, node: 'A', ...options }), b: new Harness({ open: true, node: 'B', ...options }) }
}

describe('RendezvousCore across nodes (RendezvousRemote seam)', () => {
  it('hands messages for a peer online at another node over to it, in the sender\'s order, and acks after the hand-over', () => {
    const { a, b } = twoNodes()
    const bob = b.register('bob')
    expect(a.core.remoteOnline('B', 'bob', onlineAt(bob.actions), a.now)).to.deep.equal([])
    expect(a.core.isOnline('bob')).to.equal(true)
    const alice = a.register('alice').conn
    const out: RemoteMessage[] = []
    for (let i = 1; i <= 3; i++) {
      const actions = a.feed(alice, { type: 'send', to: 'bob', data: { i }, seq: i })
      expect(framesTo(actions, alice)).to.deep.equal([]) // the ack waits for the hand-over
      const [f] = forwards(actions)
      expect(f).to.deep.include({ node: 'B', ack: { conn: alice, seq: i } })
      out.push(f.message)
    }
    const delivered = out.flatMap(m => b.core.receiveRemote(m, b.now))
    expect(messagesTo(delivered, bob.conn)).to.deep.equal([['alice', { i: 1 }, 1], ['alice', { i: 2 }, 2], ['alice', { i: 3 }, 3]])
    // A retransmission of an accepted seq is acked at once and not handed over again.
    const again = a.feed(alice, { type: 'send', to: 'bob', data: { i: 1 }, seq: 1 })
    expect(forwards(again)).to.have.length(0)
    expect(framesTo(again, alice)).to.deep.equal([{ type: 'ack', seq: 1, queued: false }])
    expect(a.core.stats()).to.include({ messagesForwarded: 3, peersElsewhere: 1 })
  })

  it('queues for an id nobody has yet (within the unknown-recipient share) and hands the queue over, in order, when it registers elsewhere', () => {
    const { a, b } = twoNodes({ maxUnknownQueuedPerSender: 2 })
    const alice = a.register('alice').conn
    expect(framesTo(a.feed(alice, { type: 'send', to: 'bob', data: 'offer', seq: 1 }), alice)).to.deep.equal([{ type: 'ack', seq: 1, queued: true }])
    a.feed(alice, { type: 'send', to: 'bob', data: 'candidate', seq: 2 })
    const refused = framesTo(a.feed(alice, { type: 'send', to: 'bob', data: 'one too many', seq: 3 }), alice)
    expect(refused).to.deep.equal([{ type: 'error', code: 'unknown_recipient', message: refused[0].type === 'error' ? refused[0].message : '', ref: 3 }])
    const bob = b.register('bob')
    const flushed = forwards(a.core.remoteOnline('B', 'bob', onlineAt(bob.actions), a.now))
    expect(flushed.map(f => [f.node, f.message.json, f.ack])).to.deep.equal([['B', '"offer"', undefined], ['B', '"candidate"', undefined]])
    expect(a.core.stats().queuedNow).to.equal(0)
    const got = flushed.flatMap(f => b.core.receiveRemote(f.message, b.now))
    expect(messagesTo(got, bob.conn)).to.deep.equal([['alice', 'offer', 1], ['alice', 'candidate', 2]])
  })

  it('queues a message whose hand-over failed, keeps later ones behind it, and hands all over in order at the next tick', () => {
    const { a, b } = twoNodes()
    const bob = b.register('bob')
    a.core.remoteOnline('B', 'bob', onlineAt(bob.actions), a.now)
    const alice = a.register('alice').conn
    const [first] = forwards(a.feed(alice, { type: 'send', to: 'bob', data: 1, seq: 1 }))
    const failed = a.core.forwardFailed(first.message, first.ack, a.now)
    expect(framesTo(failed, alice)).to.deep.equal([{ type: 'ack', seq: 1, queued: true }])
    const second = a.feed(alice, { type: 'send', to: 'bob', data: 2, seq: 2 })
    expect(forwards(second)).to.have.length(0) // behind the queued one, not past it
    expect(framesTo(second, alice)).to.deep.equal([{ type: 'ack', seq: 2, queued: true }])
    const flushed = forwards(a.advance(1000))
    expect(flushed.map(f => f.message.json)).to.deep.equal(['1', '2'])
    expect(messagesTo(flushed.flatMap(f => b.core.receiveRemote(f.message, b.now)), bob.conn)).to.deep.equal([['alice', 1, 1], ['alice', 2, 2]])
  })

  it('lets the newest registration of an id win: an older connection at this node is replaced, a stale announcement is ignored', () => {
    const { a, b } = twoNodes()
    const old = a.register('bob')
    b.now += 5
    const fresh = b.register('bob')
    const replaced = a.core.remoteOnline('B', 'bob', onlineAt(fresh.actions), a.now)
    expect(framesTo(replaced, old.conn)[0]).to.include({ type: 'error', code: 'replaced' })
    expect(closeOf(replaced, old.conn)?.code).to.equal(RENDEZVOUS_CLOSE_CODES.REPLACED)
    expect(a.core.closed(old.conn, a.now)).to.deep.equal([]) // no offline announcement: bob is online at B
    // B hears of A's (older) registration late: B's connection stays.
    expect(b.core.remoteOnline('A', 'bob', onlineAt(old.actions), b.now)).to.deep.equal([])
    expect(b.core.stats().peersOnline).to.equal(1)
  })

  it('tells watchers when a peer elsewhere comes and goes, and when its node is gone', () => {
    const { a } = twoNodes()
    const carol = a.register('carol').conn
    expect(framesTo(a.feed(carol, { type: 'watch', ids: ['bob', 'dave'] }), carol)).to.deep.equal([
      { type: 'presence', id: 'bob', online: false }, { type: 'presence', id: 'dave', online: false }])
    expect(framesTo(a.core.remoteRoster('B', [{ id: 'bob', at: a.now }, { id: 'dave', at: a.now }], a.now), carol)).to.deep.equal([
      { type: 'presence', id: 'bob', online: true }, { type: 'presence', id: 'dave', online: true }])
    expect(framesTo(a.core.remoteOffline('C', 'bob'), carol)).to.deep.equal([]) // not where bob is
    expect(framesTo(a.core.remoteOffline('B', 'bob'), carol)).to.deep.equal([{ type: 'presence', id: 'bob', online: false }])
    expect(framesTo(a.core.remoteNodeGone('B'), carol)).to.deep.equal([{ type: 'presence', id: 'dave', online: false }])
    // Gone: messages for dave now wait here instead of going to a dead node.
    const sent = a.feed(carol, { type: 'send', to: 'dave', data: 'x', seq: 9 })
    expect(forwards(sent)).to.have.length(0)
    expect(framesTo(sent, carol)).to.deep.equal([{ type: 'ack', seq: 9, queued: true }])
  })

  it('queues a handed-over message whose recipient left meanwhile under the local bounds, and drops expired or malformed ones', () => {
    const { b } = twoNodes({ maxQueuedPerPeer: 1 })
    const bob = b.register('bob').conn
    b.core.closed(bob, b.now)
    const m = (json: string, expiresAt = b.now + 30_000): RemoteMessage => ({ to: 'bob', from: 'alice', json, expiresAt })
    expect(b.core.receiveRemote(m('1'), b.now)).to.deep.equal([])
    expect(b.core.receiveRemote(m('2'), b.now)).to.deep.equal([])
    expect(b.core.receiveRemote(m('3', b.now - 1), b.now)).to.deep.equal([])
    expect(b.core.stats()).to.deep.include({ queuedNow: 1 })
    expect(b.core.stats().dropped).to.include({ queue_full: 1, expired: 1 })
    const back = b.register('bob')
    expect(messagesTo(back.actions, back.conn)).to.deep.equal([['alice', 1, 1]])
    expect(b.core.receiveRemote(m('{not json'), b.now)).to.deep.equal([])
    expect(b.core.stats().dropped.invalid).to.equal(1)
  })
})
