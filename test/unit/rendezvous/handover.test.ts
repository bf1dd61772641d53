import { expect } from 'chai'
import type { RemoteMessage, RendezvousAction, SessionHandover, SessionRequest } from '../../../src/rendezvous/core-types.js'
import { RENDEZVOUS_CLOSE_CODES, type ServerFrame } from '../../../src/rendezvous/protocol.js'
import { rendezvousToken } from '../../../src/rendezvous/token.js'
import { Harness, SECRET, closeOf, framesTo } from './harness.js'

type Of<T extends RendezvousAction['type']> = Extract<RendezvousAction, { type: T }>
const ofType = <T extends RendezvousAction['type']>(actions: RendezvousAction[], type: T): Array<Of<T>> => actions.filter((a): a is Of<T> => a.type === type)
const onlineAt = (actions: RendezvousAction[]): number => {
  const e = actions.find(a => a.type === 'event' && a.event.type === 'online')
  if (e === undefined || e.type !== 'event' || e.event.type !== 'online') throw new Error('no online event')
  return e.event.at
}
/** [from, data, n] of the message frames to `conn`. */
const messagesTo = (actions: RendezvousAction[], conn: number): Array<[string, unknown, number]> =>
  framesTo(actions, conn).flatMap(f => f.type === 'message' ? [[f.from, f.data, f.n] as [string, unknown, number]] : [])
const registered = (actions: RendezvousAction[], conn: number): Extract<ServerFrame, { type: 'registered' }> => {
  const f = framesTo(actions, conn).find(x => x.type === 'registered')
  if (f === undefined || f.type !== 'registered') throw new Error(`no registered frame for ${conn}: ${JSON.stringify(actions)}`)
  return f
}
const sessionOf = (actions: RendezvousAction[], conn: number): string => registered(actions, conn).session
const onlyRequest = (actions: RendezvousAction[]): SessionRequest => {
  const r = ofType(actions, 'session-request')
  expect(r, JSON.stringify(actions)).to.have.length(1)
  return r[0].request
}
const onlyHandover = (actions: RendezvousAction[], node: string): SessionHandover => {
  const h = ofType(actions, 'session-handover')
  expect(h, JSON.stringify(actions)).to.have.length(1)
  expect(h[0].node).to.equal(node)
  return h[0].handover
}

/**
 * Nodes A, B (and C) of one cluster, linked in memory as the server adapters link them through a RendezvousRemote:
 * each test carries the actions between the cores itself, in the order a node's channel would deliver them.
 */
function cluster (options = {}): { a: Harness, b: Harness, c: Harness } {
  const o = { open: true, cluster: true, handoverTimeoutMs: 1500, ...options }
  return { a: new Harness({ ...o, node: 'A' }), b: new Harness({ ...o, node: 'B' }), c: new Harness({ ...o, node: 'C' }) }
}

describe('RendezvousCore: a session resumed at another node (handover)', () => {
  it('replays what the client has not seen, then what arrived meanwhile, numbered on, with no duplicate and no loss', () => {
    const { a, b } = cluster()
    const bob = a.register('bob')
    const session = sessionOf(bob.actions, bob.conn)
    b.core.remoteOnline('A', 'bob', onlineAt(bob.actions), b.now)
    const alice = a.register('alice').conn
    for (let i = 1; i <= 3; i++) a.feed(alice, { type: 'send', to: 'bob', data: i, seq: i })
    // Bob saw n = 1; its connection to A is cut (A has not noticed yet) and it reconnects to B.
    const moving = b.open()
    const request = onlyRequest(b.feed(moving, { type: 'register', id: 'bob', resume: session, received: 1 }))
    expect(request).to.deep.include({ id: 'bob', session, received: 1 })
    const answer = a.core.sessionRequest('B', request, a.now)
    // A closes the old connection (replaced, as on one node) and forgets the session.
    expect(closeOf(answer, bob.conn)?.code).to.equal(RENDEZVOUS_CLOSE_CODES.REPLACED)
    const handover = onlyHandover(answer, 'B')
    expect(handover.replay.map(d => d.n)).to.deep.equal([2, 3])
    expect(a.core.stats()).to.include({ sessions: 1, sessionsHandedOver: 1 }) // alice's only
    expect(a.core.closed(bob.conn, a.now)).to.deep.equal([]) // no offline event, no presence change: bob moves
    // Alice sends on while the handover is on its way: A hands it on to B, behind the handover.
    const sent = a.feed(alice, { type: 'send', to: 'bob', data: 4, seq: 4 })
    const [forward] = ofType(sent, 'forward')
    expect(forward.node).to.equal('B')
    const resumed = b.core.takeOver(handover, b.now)
    expect(registered(resumed, moving)).to.deep.include({ id: 'bob', session, resumed: true })
    const after = b.core.receiveRemote(forward.message, b.now)
    expect([...messagesTo(resumed, moving), ...messagesTo(after, moving)]).to.deep.equal([['alice', 2, 2], ['alice', 3, 3], ['alice', 4, 4]])
    expect(b.core.stats()).to.include({ sessionsTakenOver: 1, peersOnline: 1 })
    expect(ofType(resumed, 'event').map(e => e.event.type)).to.deep.equal(['online'])
  })

  it('delivers the queue the old node held for the id after the replay, then the queue of the new node, in order', () => {
    const { a, b } = cluster()
    const bob = a.register('bob')
    const session = sessionOf(bob.actions, bob.conn)
    a.core.closed(bob.conn, a.now) // A noticed the drop: bob is offline everywhere
    const alice = a.register('alice').conn
    const carol = b.register('carol').conn
    a.feed(alice, { type: 'send', to: 'bob', data: 'a1', seq: 1 })
    expect(framesTo(b.feed(carol, { type: 'send', to: 'bob', data: 'c1', seq: 1 }), carol)).to.deep.equal([{ type: 'ack', seq: 1, queued: true }])
    a.feed(alice, { type: 'send', to: 'bob', data: 'a2', seq: 2 })
    const moving = b.open()
    const handover = onlyHandover(a.core.sessionRequest('B', onlyRequest(b.feed(moving, { type: 'register', id: 'bob', resume: session, received: 0 })), a.now), 'B')
    expect(handover.queued.map(m => m.json)).to.deep.equal(['"a1"', '"a2"'])
    expect(a.core.stats().queuedNow).to.equal(0)
    const resumed = b.core.takeOver(handover, b.now)
    expect(registered(resumed, moving).resumed).to.equal(true)
    expect(messagesTo(resumed, moving)).to.deep.equal([['alice', 'a1', 1], ['alice', 'a2', 2], ['carol', 'c1', 3]])
  })

  it('keeps the session\'s seqs (a retransmission after the move is acked, not delivered twice) and its watches', () => {
    const { a, b } = cluster()
    const bob = a.register('bob')
    const session = sessionOf(bob.actions, bob.conn)
    const alice = a.register('alice').conn
    a.feed(bob.conn, { type: 'watch', ids: ['dave'] })
    a.feed(bob.conn, { type: 'send', to: 'alice', data: 'hi', seq: 7 })
    b.core.remoteOnline('A', 'alice', a.now, b.now)
    const moving = b.open()
    const handover = onlyHandover(a.core.sessionRequest('B', onlyRequest(b.feed(moving, { type: 'register', id: 'bob', resume: session, received: 0 })), a.now), 'B')
    const resumed = b.core.takeOver(handover, b.now)
    expect(framesTo(resumed, moving).filter(f => f.type === 'presence')).to.deep.equal([{ type: 'presence', id: 'dave', online: false }])
    // Bob never saw the ack of seq 7 and sends it again: acked from the handed-over seqs, not handed to alice again.
    const again = b.feed(moving, { type: 'send', to: 'alice', data: 'hi', seq: 7 })
    expect(framesTo(again, moving)).to.deep.equal([{ type: 'ack', seq: 7, queued: false }])
    expect(ofType(again, 'forward')).to.have.length(0)
    // The watch lives at B now: dave registering at B reaches bob, and A no longer has bob as a watcher.
    const dave = b.register('dave')
    expect(framesTo(dave.actions, moving)).to.deep.equal([{ type: 'presence', id: 'dave', online: true }])
    expect(framesTo(a.register('dave').actions, bob.conn)).to.deep.equal([])
    void alice
  })

  it('hands messages that cross the move at the old node (from a third node) on to the new node at once', () => {
    const { a, b, c } = cluster()
    const bob = a.register('bob')
    const session = sessionOf(bob.actions, bob.conn)
    c.core.remoteOnline('A', 'bob', onlineAt(bob.actions), c.now)
    const erin = c.register('erin').conn
    const [inFlight] = ofType(c.feed(erin, { type: 'send', to: 'bob', data: 'e1', seq: 1 }), 'forward')
    expect(inFlight.node).to.equal('A')
    const moving = b.open()
    const handover = onlyHandover(a.core.sessionRequest('B', onlyRequest(b.feed(moving, { type: 'register', id: 'bob', resume: session, received: 0 })), a.now), 'B')
    // e1 reaches A after the handover: A forwards it to B (after the handover on A's channel to B), not to a queue.
    const onward = ofType(a.core.receiveRemote(inFlight.message, a.now), 'forward')
    expect(onward.map(f => [f.node, f.message.json])).to.deep.equal([['B', '"e1"']])
    const resumed = b.core.takeOver(handover, b.now)
    const got = b.core.receiveRemote(onward[0].message, b.now)
    // C hears of bob at B; erin's next message goes there directly.
    c.core.remoteOnline('B', 'bob', onlineAt(resumed), c.now)
    const [next] = ofType(c.feed(erin, { type: 'send', to: 'bob', data: 'e2', seq: 2 }), 'forward')
    expect(next.node).to.equal('B')
    expect([...messagesTo(got, moving), ...messagesTo(b.core.receiveRemote(next.message, b.now), moving)]).to.deep.equal([['erin', 'e1', 1], ['erin', 'e2', 2]])
    expect(a.core.stats().queuedNow).to.equal(0)
  })

  it('starts a fresh session (resumed: false) when no node answers within handoverTimeoutMs, and a late handover loses nothing', () => {
    const { a, b } = cluster({ handoverTimeoutMs: 1500 })
    const bob = a.register('bob')
    const session = sessionOf(bob.actions, bob.conn)
    const alice = a.register('alice').conn
    a.feed(alice, { type: 'send', to: 'bob', data: 'x', seq: 1 })
    const moving = b.open()
    const request = onlyRequest(b.feed(moving, { type: 'register', id: 'bob', resume: session, received: 0 }))
    expect(b.advance(1000)).to.deep.equal([]) // still waiting
    const timedOut = b.advance(500) // the tick bounds it too (the server's timer calls resumeTimedOut first)
    const fresh = registered(timedOut, moving)
    expect(fresh.resumed).to.equal(false)
    expect(fresh.session).to.not.equal(session)
    expect(b.core.resumeTimedOut(request.ref, b.now)).to.deep.equal([]) // once only
    // A answers late (it was slow): the message bob has not seen goes to bob's new session, not lost.
    const late = b.core.takeOver(onlyHandover(a.core.sessionRequest('B', request, a.now), 'B'), b.now)
    expect(messagesTo(late, moving)).to.deep.equal([['alice', 'x', 1]])
  })

  it('answers frames sent while the resume waits with an error, and bounds the wait by handoverTimeoutMs, not registerTimeoutMs', () => {
    const { b } = cluster({ handoverTimeoutMs: 8000, registerTimeoutMs: 5000 })
    const conn = b.open()
    onlyRequest(b.feed(conn, { type: 'register', id: 'bob', resume: 'held-elsewhere', received: 0 }))
    expect(framesTo(b.feed(conn, { type: 'ping', t: 1 }), conn)).to.deep.include.members([{ type: 'error', code: 'already_registered', message: 'this connection\'s register is in progress' }])
    expect(closeOf(b.advance(6000), conn)).to.equal(undefined) // past registerTimeoutMs: still waiting
    expect(registered(b.advance(2000), conn).resumed).to.equal(false)
  })

  it('keeps a late handover for a connection that went while waiting, resumable at the new node', () => {
    const { a, b } = cluster()
    const bob = a.register('bob')
    const session = sessionOf(bob.actions, bob.conn)
    a.feed(a.register('alice').conn, { type: 'send', to: 'bob', data: 'y' })
    const first = b.open()
    const request = onlyRequest(b.feed(first, { type: 'register', id: 'bob', resume: session, received: 0 }))
    b.core.closed(first, b.now)
    expect(b.core.takeOver(onlyHandover(a.core.sessionRequest('B', request, a.now), 'B'), b.now)).to.deep.equal([])
    const again = b.open()
    const actions = b.feed(again, { type: 'register', id: 'bob', resume: session, received: 0 })
    expect(ofType(actions, 'session-request')).to.have.length(0) // held here now
    expect(registered(actions, again)).to.deep.include({ session, resumed: true })
    expect(messagesTo(actions, again)).to.deep.equal([['alice', 'y', 1]])
  })

  it('takes a session back when it cannot be handed over (the asking node is gone), queue included', () => {
    const { a, b } = cluster()
    const bob = a.register('bob')
    const session = sessionOf(bob.actions, bob.conn)
    a.core.closed(bob.conn, a.now)
    const alice = a.register('alice').conn
    a.feed(alice, { type: 'send', to: 'bob', data: 'q' })
    const handover = onlyHandover(a.core.sessionRequest('B', onlyRequest(b.feed(b.open(), { type: 'register', id: 'bob', resume: session, received: 0 })), a.now), 'B')
    expect(a.core.isOnline('bob')).to.equal(true) // counted at B until B announces or fails
    a.core.handOverFailed('B', handover, a.now)
    expect(a.core.isOnline('bob')).to.equal(false)
    expect(a.core.stats()).to.include({ sessionsHandedOver: 0, queuedNow: 1 })
    const back = a.open()
    const actions = a.feed(back, { type: 'register', id: 'bob', resume: session, received: 0 })
    expect(registered(actions, back)).to.deep.include({ session, resumed: true })
    expect(messagesTo(actions, back)).to.deep.equal([['alice', 'q', 1]])
  })

  describe('security: only the same client moves a session', () => {
    it('does not hand a session over to another id that names its key; the session stays and keeps working', () => {
      const { a, b } = cluster()
      const bob = a.register('bob')
      const session = sessionOf(bob.actions, bob.conn)
      const mallory = b.open()
      const request = onlyRequest(b.feed(mallory, { type: 'register', id: 'mallory', resume: session, received: 0 }))
      expect(a.core.sessionRequest('B', request, a.now)).to.deep.equal([]) // silent: not hers
      expect(a.core.stats()).to.include({ sessions: 1, peersOnline: 1, sessionsHandedOver: 0 })
      const fresh = registered(b.advance(1500), mallory)
      expect(fresh.resumed).to.equal(false)
      expect(fresh.session).to.not.equal(session)
      // Bob's connection at A was not touched and still gets messages.
      const alice = a.register('alice').conn
      expect(messagesTo(a.feed(alice, { type: 'send', to: 'bob', data: 'still yours' }), bob.conn)).to.deep.equal([['alice', 'still yours', 1]])
    })

    it('refuses a resume with a wrong token before asking any node', () => {
      const { a, b } = cluster({ open: false, authSecret: SECRET })
      const bob = a.register('bob', { token: rendezvousToken(SECRET, 'bob', 60, a.now) })
      const session = sessionOf(bob.actions, bob.conn)
      for (const token of [rendezvousToken('guessed', 'bob', 60, b.now), rendezvousToken(SECRET, 'mallory', 60, b.now)]) {
        const conn = b.open()
        const actions = b.feed(conn, { type: 'register', id: 'bob', token, resume: session, received: 0 })
        expect(ofType(actions, 'session-request')).to.have.length(0)
        expect(closeOf(actions, conn)?.code).to.equal(RENDEZVOUS_CLOSE_CODES.UNAUTHORIZED)
      }
      expect(a.core.stats()).to.include({ sessions: 1, peersOnline: 1 })
    })

    it('asks nobody for a key this node holds for another id (a local session is never moved or taken)', () => {
      const { b } = cluster()
      const carol = b.register('carol')
      const mallory = b.open()
      const actions = b.feed(mallory, { type: 'register', id: 'mallory', resume: sessionOf(carol.actions, carol.conn) })
      expect(ofType(actions, 'session-request')).to.have.length(0)
      expect(registered(actions, mallory).resumed).to.equal(false)
      expect(b.core.stats()).to.include({ sessions: 2, peersOnline: 2 })
    })
  })

  it('outside a cluster, a resume of an unknown session starts a fresh one at once, as before', () => {
    const h = new Harness({ open: true })
    const { conn, actions } = h.register('bob', { resume: 'not-a-session-here', received: 3 })
    expect(registered(actions, conn).resumed).to.equal(false)
    expect(ofType(actions, 'session-request')).to.have.length(0)
  })

  it('drops handed-over messages whose JSON does not parse (counted), never throwing, and delivers the rest', () => {
    const { b } = cluster()
    const conn = b.open()
    const request = onlyRequest(b.feed(conn, { type: 'register', id: 'bob', resume: 'S', received: 0 }))
    const handover: SessionHandover = {
      ref: request.ref, id: 'bob', session: 'S', nextN: 3,
      replay: [{ n: 1, from: 'alice', json: '{broken', at: b.now }, { n: 2, from: 'alice', json: '"ok"', at: b.now }],
      queued: [{ to: 'bob', from: 'carol', json: 'nope', expiresAt: b.now + 1000 }, { to: 'bob', from: 'carol', json: '1', expiresAt: b.now + 1000 }],
      watches: [], seen: []
    }
    let actions: RendezvousAction[] = []
    expect(() => { actions = b.core.takeOver(handover, b.now) }).to.not.throw()
    expect(messagesTo(actions, conn)).to.deep.equal([['alice', 'ok', 2], ['carol', 1, 3]])
    expect(b.core.stats().dropped.invalid).to.equal(2)
  })

  it('bounds what a handover brings in by this node\'s limits', () => {
    const { b } = cluster({ replayMessages: 4, maxWatch: 2 })
    const conn = b.open()
    const request = onlyRequest(b.feed(conn, { type: 'register', id: 'bob', resume: 'S', received: 0 }))
    const many = (n: number): number[] => Array.from({ length: n }, (_, i) => i + 1)
    const queued: RemoteMessage[] = []
    const handover: SessionHandover = {
      ref: request.ref, id: 'bob', session: 'S', nextN: 11,
      replay: many(10).map(n => ({ n, from: 'alice', json: String(n), at: b.now })),
      queued, watches: ['w1', 'w2', 'w3', 'w4'], seen: many(3000).map(s => [s, false] as const)
    }
    const actions = b.core.takeOver(handover, b.now)
    expect(messagesTo(actions, conn).map(m => m[2])).to.deep.equal([7, 8, 9, 10]) // the last replayMessages
    expect(framesTo(actions, conn).filter(f => f.type === 'presence').map(f => f.type === 'presence' && f.id)).to.deep.equal(['w1', 'w2'])
    expect(b.core.stats().sessions).to.equal(1)
  })
})
