import { expect } from 'chai'
import fc from 'fast-check'
import { InvalidArgumentError } from '../../../src/errors.js'
import { RendezvousCore } from '../../../src/rendezvous/core.js'
import { RENDEZVOUS_CLOSE_CODES, type ServerFrame } from '../../../src/rendezvous/protocol.js'
import { heldSize } from '../../../src/rendezvous/queue.js'
import { rendezvousToken } from '../../../src/rendezvous/token.js'
import { Harness, SECRET, T0, closeOf, framesTo } from './harness.js'

const only = (frames: ServerFrame[]): ServerFrame => {
  expect(frames).to.have.length(1)
  return frames[0]
}

describe('RendezvousCore', () => {
  describe('options', () => {
    it('requires a secret unless open mode is explicit', () => {
      expect(() => new RendezvousCore({})).to.throw(InvalidArgumentError)
      expect(() => new RendezvousCore({ open: true })).to.not.throw()
      expect(() => new RendezvousCore({ authSecret: 's' })).to.not.throw()
    })
    it('rejects nonsense limits', () => {
      expect(() => new RendezvousCore({ open: true, maxPeers: 0 })).to.throw(InvalidArgumentError)
      expect(() => new RendezvousCore({ open: true, queueTtlMs: -1 })).to.throw(InvalidArgumentError)
      expect(() => new RendezvousCore({ authSecret: '' })).to.throw(InvalidArgumentError)
    })
  })

  describe('register', () => {
    it('answers registered with the session, the observed address and the server time', () => {
      const h = new Harness()
      const { conn, actions } = h.register('alice')
      const f = only(framesTo(actions, conn))
      expect(f).to.include({ type: 'registered', id: 'alice', resumed: false, serverTime: T0 })
      expect(f.type === 'registered' && f.session).to.match(/^[A-Za-z0-9_-]{24}$/)
      expect(f.type === 'registered' && f.observed).to.deep.equal({ address: '203.0.113.1', port: 40001 })
      expect(h.core.stats()).to.include({ peersOnline: 1, sessions: 1, pendingConnections: 0 })
    })

    it('accepts a valid token and reports an online event', () => {
      const h = new Harness({ authSecret: SECRET })
      const { conn, actions } = h.register('alice', { token: rendezvousToken(SECRET, 'alice', 60, T0) })
      expect(only(framesTo(actions, conn)).type).to.equal('registered')
      expect(actions.some(a => a.type === 'event' && a.event.type === 'online' && a.event.id === 'alice')).to.equal(true)
    })

    const failures: Array<[string, unknown, string, number]> = [
      ['a missing token', undefined, 'unauthorized', RENDEZVOUS_CLOSE_CODES.UNAUTHORIZED],
      ['a token for another id', rendezvousToken(SECRET, 'bob', 60, T0), 'unauthorized', RENDEZVOUS_CLOSE_CODES.UNAUTHORIZED],
      ['a token from another secret', rendezvousToken('nope', 'alice', 60, T0), 'unauthorized', RENDEZVOUS_CLOSE_CODES.UNAUTHORIZED],
      ['an expired token', rendezvousToken(SECRET, 'alice', 60, T0 - 3_600_000), 'expired', RENDEZVOUS_CLOSE_CODES.EXPIRED]
    ]
    for (const [name, token, code, closeCode] of failures) {
      it(`refuses ${name} with ${code} and closes the connection`, () => {
        const h = new Harness({ authSecret: SECRET })
        const { conn, actions } = h.register('alice', token === undefined ? {} : { token })
        expect(only(framesTo(actions, conn))).to.include({ type: 'error', code })
        expect(closeOf(actions, conn)?.code).to.equal(closeCode)
        expect(actions.some(a => a.type === 'event' && a.event.type === 'auth-failure' && a.event.reason === code)).to.equal(true)
        expect(h.feed(conn, { type: 'ping', t: 1 })).to.deep.equal([])
        expect(h.core.stats()).to.include({ peersOnline: 0, pendingConnections: 0 })
      })
    }

    it('closes a connection whose first frame is not register with not_registered', () => {
      const h = new Harness()
      const conn = h.open()
      const actions = h.feed(conn, { type: 'ping', t: 1 })
      expect(only(framesTo(actions, conn))).to.include({ type: 'error', code: 'not_registered' })
      expect(closeOf(actions, conn)?.code).to.equal(RENDEZVOUS_CLOSE_CODES.NOT_REGISTERED)
    })

    it('answers a second register on one connection with already_registered', () => {
      const h = new Harness()
      const { conn } = h.register('alice')
      const actions = h.feed(conn, { type: 'register', id: 'bob' })
      expect(only(framesTo(actions, conn))).to.include({ type: 'error', code: 'already_registered' })
      expect(closeOf(actions, conn)).to.equal(undefined)
    })

    it('refuses new ids beyond maxPeers with server_full', () => {
      const h = new Harness({ open: true, maxPeers: 2 })
      h.register('a'); h.register('b')
      const { conn, actions } = h.register('c')
      expect(only(framesTo(actions, conn))).to.include({ type: 'error', code: 'server_full' })
      expect(closeOf(actions, conn)?.code).to.equal(RENDEZVOUS_CLOSE_CODES.SERVER_FULL)
      // An existing id may still take over its own slot.
      const again = h.register('a')
      expect(only(framesTo(again.actions, again.conn)).type).to.equal('registered')
    })
  })

  describe('frame errors (the connection stays open)', () => {
    const cases: Array<[string, string | Uint8Array, string, number | undefined]> = [
      ['invalid JSON', '{"type":', 'bad_json', undefined],
      ['a binary frame', new Uint8Array([0xde, 0xad, 0xbe, 0xef]), 'bad_json', undefined],
      ['a JSON array', '[1,2]', 'invalid_field', undefined],
      ['a frame without type', '{"to":"bob"}', 'invalid_field', undefined],
      ['an unknown type', '{"type":"teleport","seq":4}', 'unknown_type', 4],
      ['send without to', '{"type":"send","data":1,"seq":5}', 'invalid_field', 5],
      ['send without data', '{"type":"send","to":"bob","seq":6}', 'invalid_field', 6],
      ['send to an empty id', '{"type":"send","to":"","data":1}', 'invalid_field', undefined],
      ['send with a negative seq', '{"type":"send","to":"bob","data":1,"seq":-1}', 'invalid_field', undefined],
      ['send with a fractional seq', '{"type":"send","to":"bob","data":1,"seq":1.5}', 'invalid_field', undefined],
      ['watch without ids', '{"type":"watch"}', 'invalid_field', undefined],
      ['watch with a number id', '{"type":"watch","ids":[1]}', 'invalid_field', undefined],
      ['ping without t', '{"type":"ping"}', 'invalid_field', undefined],
      ['an id with a control character', '{"type":"send","to":"a\\u0000b","data":1}', 'invalid_field', undefined],
      ['a frame over maxMessageBytes', JSON.stringify({ type: 'send', to: 'bob', data: 'x'.repeat(70_000), seq: 7 }), 'too_large', undefined]
    ]
    for (const [name, frame, code, ref] of cases) {
      it(`answers ${name} with ${code}${ref === undefined ? '' : ` (ref ${ref})`}`, () => {
        const h = new Harness()
        const { conn } = h.register('alice')
        const actions = h.feed(conn, frame)
        const f = only(framesTo(actions, conn))
        expect(f).to.include({ type: 'error', code })
        expect(f.type === 'error' && f.ref).to.equal(ref)
        expect(f.type === 'error' && f.message).to.be.a('string').and.not.equal('')
        expect(closeOf(actions, conn)).to.equal(undefined)
        expect(framesTo(h.feed(conn, { type: 'ping', t: 1 }), conn)[0].type).to.equal('pong')
      })
    }

    it('answers bad JSON before registering without closing, until maxPendingFrames', () => {
      const h = new Harness({ open: true, maxPendingFrames: 3 })
      const conn = h.open()
      for (let i = 0; i < 3; i++) expect(closeOf(h.feed(conn, 'garbage'), conn)).to.equal(undefined)
      const actions = h.feed(conn, 'garbage')
      expect(only(framesTo(actions, conn))).to.include({ code: 'not_registered' })
      expect(closeOf(actions, conn)).to.not.equal(undefined)
    })

    it('never throws on arbitrary input', () => {
      const h = new Harness({ open: true, rateLimit: false })
      const { conn } = h.register('alice')
      fc.assert(fc.property(fc.oneof(fc.string(), fc.json(), fc.jsonValue().map(v => JSON.stringify({ type: 'send', to: 'bob', data: v })),
        fc.record({ type: fc.constantFrom('register', 'send', 'watch', 'unwatch', 'ping'), id: fc.anything(), to: fc.anything(), ids: fc.anything(), t: fc.anything(), seq: fc.anything(), data: fc.jsonValue() }).map(o => JSON.stringify(o))),
      (text) => { h.core.handle(conn, text, h.now) }), { numRuns: 500 })
    })
  })

  describe('send', () => {
    it('relays to an online peer with from, data, seq and n, and acks the sender', () => {
      const h = new Harness()
      const a = h.register('alice').conn
      const b = h.register('bob').conn
      const actions = h.feed(a, { type: 'send', to: 'bob', data: { candidates: ['x'] }, seq: 9 })
      expect(framesTo(actions, b)).to.deep.equal([{ type: 'message', from: 'alice', data: { candidates: ['x'] }, seq: 9, n: 1 }])
      expect(framesTo(actions, a)).to.deep.equal([{ type: 'ack', seq: 9, queued: false }])
      const second = h.feed(a, { type: 'send', to: 'bob', data: null })
      expect(framesTo(second, b)).to.deep.equal([{ type: 'message', from: 'alice', data: null, n: 2 }])
      expect(framesTo(second, a)).to.deep.equal([])
      expect(h.core.stats().messagesRelayed).to.equal(2)
    })

    it('queues for an offline peer (ack queued) and delivers in order when it registers', () => {
      const h = new Harness()
      const a = h.register('alice').conn
      for (let i = 1; i <= 3; i++) expect(framesTo(h.feed(a, { type: 'send', to: 'bob', data: i, seq: i }), a)).to.deep.equal([{ type: 'ack', seq: i, queued: true }])
      expect(h.core.stats()).to.include({ queuedNow: 3, messagesQueued: 3 })
      const { conn: b, actions } = h.register('bob')
      const frames = framesTo(actions, b)
      expect(frames.map(f => f.type)).to.deep.equal(['registered', 'message', 'message', 'message'])
      expect(frames.slice(1).map(f => f.type === 'message' && [f.data, f.n])).to.deep.equal([[1, 1], [2, 2], [3, 3]])
      expect(h.core.stats()).to.include({ queuedNow: 0, messagesRelayed: 3 })
    })

    it('drops queued messages after the TTL (injected clock)', () => {
      const h = new Harness({ open: true, queueTtlMs: 1000 })
      const a = h.register('alice').conn
      h.feed(a, { type: 'send', to: 'bob', data: 'old', seq: 1 })
      h.advance(600)
      h.feed(a, { type: 'send', to: 'bob', data: 'new', seq: 2 })
      h.advance(600)
      expect(h.core.stats().dropped.expired).to.equal(1)
      const { conn: b, actions } = h.register('bob')
      expect(framesTo(actions, b).filter(f => f.type === 'message').map(f => f.type === 'message' && f.data)).to.deep.equal(['new'])
    })

    // Each message below is charged heldSize('alice', '"xxx…"') = 2 × (42 + 5) + 128 = 222 heap bytes.
    const data = 'x'.repeat(40)
    const one = heldSize('alice', JSON.stringify(data))
    const bounds: Array<[string, object, number]> = [
      ['maxQueuedPerPeer', { maxQueuedPerPeer: 3 }, 3],
      ['maxQueuedBytesPerPeer', { maxQueuedBytesPerPeer: 4 * one + one - 1 }, 4],
      ['maxBufferedBytes', { maxBufferedBytes: 3 * one }, 3],
      ['maxQueuedBytesPerSender', { maxQueuedBytesPerSender: 2 * one }, 2],
      ['queueing disabled', { maxQueuedPerPeer: 0 }, 0]
    ]
    for (const [name, limit, fit] of bounds) {
      it(`refuses messages beyond ${name} with queue_full (ref = seq)`, () => {
        expect(one).to.equal(222)
        const h = new Harness({ open: true, rateLimit: false, ...limit })
        const a = h.register('alice').conn
        h.register('bob') // bob is known (has a session) but offline: the unknown-recipient share does not apply
        h.core.closed(2, h.now)
        for (let i = 1; i <= fit; i++) expect(framesTo(h.feed(a, { type: 'send', to: 'bob', data, seq: i }), a)[0]).to.include({ type: 'ack' })
        const f = only(framesTo(h.feed(a, { type: 'send', to: 'bob', data, seq: 99 }), a))
        expect(f).to.include({ type: 'error', code: 'queue_full', ref: 99 })
        expect(h.core.stats().dropped.queue_full).to.equal(1)
      })
    }

    it('caps the number of offline recipients with queues', () => {
      const h = new Harness({ open: true, maxQueuedRecipients: 2 })
      const a = h.register('alice').conn
      h.feed(a, { type: 'send', to: 'b1', data: 1 }); h.feed(a, { type: 'send', to: 'b2', data: 1 })
      expect(only(framesTo(h.feed(a, { type: 'send', to: 'b3', data: 1, seq: 3 }), a))).to.include({ code: 'queue_full', ref: 3 })
    })
  })

  describe('presence', () => {
    it('answers watch at once for each id and reports every change', () => {
      const h = new Harness()
      const a = h.register('alice').conn
      h.register('bob')
      const now = framesTo(h.feed(a, { type: 'watch', ids: ['bob', 'carol'] }), a)
      expect(now).to.deep.equal([{ type: 'presence', id: 'bob', online: true }, { type: 'presence', id: 'carol', online: false }])
      const { actions } = h.register('carol')
      expect(framesTo(actions, a)).to.deep.equal([{ type: 'presence', id: 'carol', online: true }])
      const bobConn = 2
      expect(framesTo(h.core.closed(bobConn, h.now), a)).to.deep.equal([{ type: 'presence', id: 'bob', online: false }])
      const carolConn = 3
      h.feed(a, { type: 'unwatch', ids: ['carol'] })
      const gone = h.core.closed(carolConn, h.now)
      expect(gone.some(x => x.type === 'event' && x.event.type === 'offline' && x.event.id === 'carol')).to.equal(true)
      expect(framesTo(gone, a)).to.deep.equal([])
    })

    it('refuses more than maxWatch ids with limit_exceeded', () => {
      const h = new Harness({ open: true, maxWatch: 2 })
      const a = h.register('alice').conn
      h.feed(a, { type: 'watch', ids: ['x', 'y'] })
      expect(only(framesTo(h.feed(a, { type: 'watch', ids: ['z'] }), a))).to.include({ code: 'limit_exceeded' })
      expect(framesTo(h.feed(a, { type: 'watch', ids: ['x'] }), a)).to.have.length(1)
    })
  })

  describe('ping', () => {
    it('echoes t with the server time', () => {
      const h = new Harness()
      const a = h.register('alice').conn
      h.now += 5
      expect(framesTo(h.feed(a, { type: 'ping', t: 123.5 }), a)).to.deep.equal([{ type: 'pong', t: 123.5, serverTime: T0 + 5 }])
    })
  })

  describe('rate limits', () => {
    it('limits frames per second with a burst, then recovers', () => {
      const h = new Harness({ open: true, rateLimit: { messagesPerSecond: 10, messageBurst: 5 } })
      const a = h.register('alice').conn
      h.register('bob')
      for (let i = 1; i <= 5; i++) expect(framesTo(h.feed(a, { type: 'send', to: 'bob', data: i, seq: i }), a)[0]).to.include({ type: 'ack' })
      expect(only(framesTo(h.feed(a, { type: 'send', to: 'bob', data: 6, seq: 6 }), a))).to.include({ type: 'error', code: 'rate_limited', ref: 6 })
      h.now += 100
      expect(framesTo(h.feed(a, { type: 'send', to: 'bob', data: 7, seq: 7 }), a)[0]).to.include({ type: 'ack' })
      expect(h.core.stats().dropped.rate_limited).to.equal(1)
    })

    it('limits bytes per second', () => {
      const h = new Harness({ open: true, maxMessageBytes: 1000, rateLimit: { bytesPerSecond: 1000, byteBurst: 1000, messageBurst: 1000 } })
      const a = h.register('alice').conn
      h.register('bob')
      const big = { type: 'send', to: 'bob', data: 'x'.repeat(400) }
      h.feed(a, { ...big, seq: 1 }); h.feed(a, { ...big, seq: 2 })
      expect(only(framesTo(h.feed(a, { ...big, seq: 3 }), a))).to.include({ code: 'rate_limited', ref: 3 })
      h.now += 500
      expect(framesTo(h.feed(a, { ...big, seq: 4 }), a)[0]).to.include({ type: 'ack' })
    })

    it('keeps the bucket when the same id reconnects', () => {
      const h = new Harness({ open: true, rateLimit: { messagesPerSecond: 1, messageBurst: 2 } })
      const a = h.register('alice').conn
      h.feed(a, { type: 'ping', t: 1 }); h.feed(a, { type: 'ping', t: 2 })
      const again = h.register('alice').conn
      expect(only(framesTo(h.feed(again, { type: 'ping', t: 3 }), again))).to.include({ code: 'rate_limited' })
    })
  })

  describe('duplicate id', () => {
    it('replaces the first connection: replaced error and close; watchers see no change', () => {
      const h = new Harness()
      const w = h.register('watcher').conn
      const first = h.register('alice').conn
      h.feed(w, { type: 'watch', ids: ['alice'] })
      const { conn: second, actions } = h.register('alice')
      expect(framesTo(actions, first)).to.deep.equal([{ type: 'error', code: 'replaced', message: 'another connection registered this id' }])
      expect(closeOf(actions, first)?.code).to.equal(RENDEZVOUS_CLOSE_CODES.REPLACED)
      expect(framesTo(actions, second)[0]).to.include({ type: 'registered', resumed: false })
      expect(framesTo(actions, w)).to.deep.equal([])
      expect(framesTo(h.core.closed(first, h.now), w)).to.deep.equal([])
      expect(h.core.stats()).to.include({ peersOnline: 2, sessions: 2 })
      // Messages now go to the new connection.
      expect(framesTo(h.feed(w, { type: 'send', to: 'alice', data: 1 }), second)).to.have.length(1)
    })
  })

  describe('resume', () => {
    function dropped (h: Harness): { a: number, b: number, session: string } {
      const a = h.register('alice').conn
      const reg = h.register('bob')
      const f = framesTo(reg.actions, reg.conn)[0]
      h.feed(reg.conn, { type: 'watch', ids: ['alice'] })
      h.core.closed(reg.conn, h.now)
      return { a, b: reg.conn, session: f.type === 'registered' ? f.session : '' }
    }

    it('delivers what was queued meanwhile and restores watches', () => {
      const h = new Harness()
      const { a, session } = dropped(h)
      expect(framesTo(h.feed(a, { type: 'send', to: 'bob', data: 'q', seq: 1 }), a)).to.deep.equal([{ type: 'ack', seq: 1, queued: true }])
      h.now += 1000
      const { conn, actions } = h.register('bob', { resume: session, received: 0 })
      const frames = framesTo(actions, conn)
      expect(frames[0]).to.include({ type: 'registered', session, resumed: true })
      expect(frames.slice(1)).to.deep.include({ type: 'presence', id: 'alice', online: true })
      expect(frames.slice(1)).to.deep.include({ type: 'message', from: 'alice', data: 'q', seq: 1, n: 1 })
      expect(framesTo(h.core.closed(a, h.now), conn)).to.deep.equal([{ type: 'presence', id: 'alice', online: false }])
    })

    it('replays messages delivered after the last one the client saw (lost in an abrupt drop)', () => {
      const h = new Harness()
      const a = h.register('alice').conn
      const reg = h.register('bob')
      const f = framesTo(reg.actions, reg.conn)[0]
      const session = f.type === 'registered' ? f.session : ''
      for (let i = 1; i <= 3; i++) h.feed(a, { type: 'send', to: 'bob', data: i })
      // The client saw n=1 only; the server has not noticed the drop yet when bob resumes.
      const { conn, actions } = h.register('bob', { resume: session, received: 1 })
      expect(closeOf(actions, reg.conn)?.code).to.equal(RENDEZVOUS_CLOSE_CODES.REPLACED)
      expect(framesTo(actions, conn).filter(x => x.type === 'message').map(x => x.type === 'message' && [x.data, x.n])).to.deep.equal([[2, 2], [3, 3]])
      expect(framesTo(h.feed(a, { type: 'send', to: 'bob', data: 4 }), conn)).to.deep.equal([{ type: 'message', from: 'alice', data: 4, n: 4 }])
    })

    it('acks a retransmitted seq without delivering it twice', () => {
      const h = new Harness()
      const a = h.register('alice')
      const session = (framesTo(a.actions, a.conn)[0] as { session: string }).session
      const b = h.register('bob').conn
      expect(framesTo(h.feed(a.conn, { type: 'send', to: 'bob', data: 'x', seq: 1 }), b)).to.have.length(1)
      h.core.closed(a.conn, h.now)
      const again = h.register('alice', { resume: session })
      const actions = h.feed(again.conn, { type: 'send', to: 'bob', data: 'x', seq: 1 })
      expect(framesTo(actions, again.conn)).to.deep.equal([{ type: 'ack', seq: 1, queued: false }])
      expect(framesTo(actions, b)).to.deep.equal([])
    })

    it('starts a new session after sessionTtlMs (queued messages of the id are still delivered)', () => {
      const h = new Harness({ open: true, sessionTtlMs: 1000, queueTtlMs: 5000 })
      const { a, session } = dropped(h)
      h.feed(a, { type: 'send', to: 'bob', data: 'q' })
      h.advance(1500)
      expect(h.core.stats().sessions).to.equal(1)
      const { conn, actions } = h.register('bob', { resume: session })
      const frames = framesTo(actions, conn)
      expect(frames[0]).to.include({ type: 'registered', resumed: false })
      expect(frames[0].type === 'registered' && frames[0].session).to.not.equal(session)
      expect(frames[1]).to.deep.equal({ type: 'message', from: 'alice', data: 'q', n: 1 })
    })

    it('ignores a session that belongs to another id', () => {
      const h = new Harness()
      const a = h.register('alice')
      const session = (framesTo(a.actions, a.conn)[0] as { session: string }).session
      const { conn, actions } = h.register('mallory', { resume: session })
      expect(framesTo(actions, conn)[0]).to.include({ resumed: false })
      expect(framesTo(actions, a.conn)).to.deep.equal([])
    })
  })

  describe('pending connections and shutdown', () => {
    it('closes connections that do not register within registerTimeoutMs', () => {
      const h = new Harness({ open: true, registerTimeoutMs: 3000 })
      const c = h.open()
      expect(h.advance(2000)).to.deep.equal([])
      const actions = h.advance(1000)
      expect(only(framesTo(actions, c))).to.include({ code: 'register_timeout' })
      expect(closeOf(actions, c)?.code).to.equal(RENDEZVOUS_CLOSE_CODES.REGISTER_TIMEOUT)
      expect(h.core.stats().pendingConnections).to.equal(0)
      expect(h.advance(5000)).to.deep.equal([])
      h.core.closed(c, h.now)
      expect(h.core.stats().pendingConnections).to.equal(0)
    })

    it('closes new connections at once beyond maxPending', () => {
      const h = new Harness({ open: true, maxPending: 2 })
      h.open(); h.open()
      const actions = h.core.open(99, { address: '203.0.113.9', port: 1 }, h.now)
      expect(closeOf(actions, 99)).to.not.equal(undefined)
      expect(h.core.stats().pendingConnections).to.equal(2)
    })

    it('shutdown tells everyone shutting_down, closes with 1001 and forgets all state', () => {
      const h = new Harness()
      const a = h.register('alice').conn
      const p = h.open()
      h.feed(a, { type: 'send', to: 'bob', data: 1 })
      const actions = h.core.shutdown(h.now)
      for (const c of [a, p]) {
        expect(framesTo(actions, c)[0]).to.include({ code: 'shutting_down' })
        expect(closeOf(actions, c)?.code).to.equal(1001)
      }
      expect(h.core.stats()).to.include({ peersOnline: 0, sessions: 0, pendingConnections: 0, queuedNow: 0, bufferedBytes: 0 })
    })
  })

  describe('memory bounds', () => {
    it('returns to zero buffered bytes once queues and resume buffers expire', () => {
      const h = new Harness({ open: true, queueTtlMs: 1000, rateLimit: false })
      const a = h.register('alice').conn
      h.register('bob')
      for (let i = 0; i < 100; i++) h.feed(a, { type: 'send', to: i % 2 === 0 ? 'bob' : `off${i}`, data: 'x'.repeat(100) })
      expect(h.core.stats().bufferedBytes).to.be.greaterThan(0)
      h.advance(1000)
      expect(h.core.stats()).to.include({ bufferedBytes: 0, queuedNow: 0 })
    })

    it('keeps at most replayMessages delivered messages per session', () => {
      const h = new Harness({ open: true, replayMessages: 4, rateLimit: false })
      const a = h.register('alice').conn
      const b = h.register('bob')
      const session = (framesTo(b.actions, b.conn)[0] as { session: string }).session
      for (let i = 1; i <= 10; i++) h.feed(a, { type: 'send', to: 'bob', data: i })
      const again = h.register('bob', { resume: session, received: 0 })
      expect(framesTo(again.actions, again.conn).filter(f => f.type === 'message').map(f => f.type === 'message' && f.n)).to.deep.equal([7, 8, 9, 10])
      expect(h.core.stats().dropped.replay_evicted).to.equal(6)
    })
  })
})
