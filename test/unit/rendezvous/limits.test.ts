import { expect } from 'chai'
import { InvalidArgumentError } from '../../../src/errors.js'
import { sourceKey } from '../../../src/rendezvous/address.js'
import { RendezvousCore } from '../../../src/rendezvous/core.js'
import { RENDEZVOUS_CLOSE_CODES, type ServerFrame } from '../../../src/rendezvous/protocol.js'
import { HELD_ENTRY_OVERHEAD, heldSize } from '../../../src/rendezvous/queue.js'
import { rendezvousToken } from '../../../src/rendezvous/token.js'
import { restApiPassword } from '../../../src/relay/credentials.js'
import { Harness, SECRET, T0, closeOf, framesTo } from './harness.js'

/**
 * The rendezvous server's defences against one client (or one host) taking what everybody shares: unregistered
 * connections per source, queue memory counted as heap, messages to ids that do not exist, token replay and
 * far-future tokens. All on the sans-IO core with an injected clock.
 */

const only = (frames: ServerFrame[]): ServerFrame => {
  expect(frames).to.have.length(1)
  return frames[0]
}

/** Register `id` and drop its connection: a known (has a session) but offline recipient. */
function offline (h: Harness, id: string): void {
  const { conn } = h.register(id)
  h.core.closed(conn, h.now)
}

describe('rendezvous limits', () => {
  describe('unregistered connections per source', () => {
    it('refuses the connection beyond maxPendingPerIp from one IPv4 address with server_full, and serves another address', () => {
      const h = new Harness({ open: true, maxPendingPerIp: 3 })
      for (let i = 0; i < 3; i++) expect(h.openFrom('198.51.100.1').actions).to.deep.equal([])
      const refused = h.openFrom('198.51.100.1')
      expect(only(framesTo(refused.actions, refused.conn))).to.include({ type: 'error', code: 'server_full' })
      expect(closeOf(refused.actions, refused.conn)?.code).to.equal(RENDEZVOUS_CLOSE_CODES.SERVER_FULL)
      // The refused connection is unknown to the core: its frames are ignored, its close changes nothing.
      expect(h.feed(refused.conn, { type: 'register', id: 'x' })).to.deep.equal([])
      h.core.closed(refused.conn, h.now)
      const other = h.openFrom('198.51.100.2')
      expect(other.actions).to.deep.equal([])
      expect(framesTo(h.feed(other.conn, { type: 'register', id: 'legit' }), other.conn)[0]).to.include({ type: 'registered' })
      expect(h.core.stats()).to.include({ pendingConnections: 3, pendingRefused: 1, peersOnline: 1 })
    })

    it('frees a slot when a connection registers, is closed, or times out (injected clock)', () => {
      const h = new Harness({ open: true, maxPendingPerIp: 2, registerTimeoutMs: 1000 })
      const a = h.open(1, '198.51.100.1')
      const b = h.open(2, '198.51.100.1')
      expect(h.openFrom('198.51.100.1').actions).to.not.deep.equal([])
      h.feed(a, { type: 'register', id: 'a' }) // registered: no longer pending
      expect(h.openFrom('198.51.100.1').actions).to.deep.equal([])
      h.core.closed(b, h.now) // gone
      const c = h.open(3, '198.51.100.1')
      expect(h.openFrom('198.51.100.1').actions).to.not.deep.equal([])
      const timedOut = h.advance(1000)
      expect(closeOf(timedOut, c)?.code).to.equal(RENDEZVOUS_CLOSE_CODES.REGISTER_TIMEOUT)
      expect(h.core.stats().pendingConnections).to.equal(0)
      h.core.closed(c, h.now) // the adapter reports the close later: counted once only
      expect(h.core.stats().pendingConnections).to.equal(0)
      expect(h.openFrom('198.51.100.1').actions).to.deep.equal([])
      expect(h.openFrom('198.51.100.1').actions).to.deep.equal([])
      expect(h.openFrom('198.51.100.1').actions).to.not.deep.equal([])
    })

    it('counts a failed register (bad token) as settled, not pending', () => {
      const h = new Harness({ authSecret: SECRET, maxPendingPerIp: 1 })
      const c = h.open(1, '198.51.100.1')
      expect(closeOf(h.feed(c, { type: 'register', id: 'a', token: 'nope' }), c)?.code).to.equal(RENDEZVOUS_CLOSE_CODES.UNAUTHORIZED)
      expect(h.openFrom('198.51.100.1').actions).to.deep.equal([])
    })

    it('counts IPv6 sources per /64 and IPv4-mapped addresses as IPv4', () => {
      expect(sourceKey('2001:db8:1:2:aaaa::1')).to.equal(sourceKey('2001:db8:1:2::ffff'))
      expect(sourceKey('2001:db8:1:2::1')).to.equal('2001:db8:1:2::/64')
      expect(sourceKey('2001:db8:1:3::1')).to.not.equal(sourceKey('2001:db8:1:2::1'))
      expect(sourceKey('::ffff:192.0.2.7')).to.equal('192.0.2.7')
      expect(sourceKey('not an address')).to.equal('not an address')
      const h = new Harness({ open: true, maxPendingPerIp: 1 })
      expect(h.openFrom('2001:db8:1:2::1').actions).to.deep.equal([])
      expect(h.openFrom('2001:db8:1:2::2').actions).to.not.deep.equal([])
      expect(h.openFrom('2001:db8:1:3::1').actions).to.deep.equal([])
      expect(h.openFrom('192.0.2.7').actions).to.deep.equal([])
      expect(h.openFrom('::ffff:192.0.2.7').actions).to.not.deep.equal([])
    })

    it('keeps the global maxPending across sources', () => {
      const h = new Harness({ open: true, maxPending: 3, maxPendingPerIp: 2 })
      h.open(1, '198.51.100.1'); h.open(2, '198.51.100.1'); h.open(3, '198.51.100.2')
      expect(h.openFrom('198.51.100.3').actions).to.not.deep.equal([])
      expect(h.core.stats()).to.include({ pendingConnections: 3, pendingRefused: 1 })
    })

    it('holds at most maxPendingPerIp of 1,000 connections from one host, and a second host still registers', () => {
      const h = new Harness({ open: true })
      let refused = 0
      for (let i = 0; i < 1000; i++) if (h.openFrom('127.0.0.1').actions.length > 0) refused++
      expect(refused).to.equal(1000 - h.core.options.maxPendingPerIp)
      expect(h.core.options.maxPendingPerIp).to.equal(32)
      const legit = h.openFrom('127.0.0.2')
      expect(framesTo(h.feed(legit.conn, { type: 'register', id: 'legit' }), legit.conn)[0]).to.include({ type: 'registered' })
    })

    it('rejects a maxPendingPerIp below 1', () => {
      expect(() => new RendezvousCore({ open: true, maxPendingPerIp: 0 })).to.throw(InvalidArgumentError)
    })
  })

  describe('queue memory is counted as heap, not wire bytes', () => {
    it('charges a queued message heldSize: its JSON text and sender at 2 bytes a character, plus the entry overhead', () => {
      const h = new Harness({ open: true, rateLimit: false, replayMessages: 0 })
      const a = h.register('alice').conn
      offline(h, 'bob')
      const data = { kind: 'offer', candidates: ['candidate:1 1 udp 2130706431 192.0.2.1 5000 typ host'], é: 'ünïcode' }
      h.feed(a, { type: 'send', to: 'bob', data, seq: 1 })
      expect(h.core.stats().bufferedBytes).to.equal(2 * (JSON.stringify(data).length + 'alice'.length) + HELD_ENTRY_OVERHEAD)
      expect(heldSize('alice', JSON.stringify(data))).to.equal(h.core.stats().bufferedBytes)
      const bob = h.register('bob')
      expect(framesTo(bob.actions, bob.conn)[1]).to.deep.equal({ type: 'message', from: 'alice', data, seq: 1, n: 1 })
      expect(h.core.stats().bufferedBytes).to.equal(0)
    })

    it('refuses a frame of many tiny JSON values that fits maxQueuedBytesPerPeer in wire bytes but not in heap bytes', () => {
      const h = new Harness({ open: true, rateLimit: false, maxQueuedBytesPerPeer: 100 * 1024 })
      const a = h.register('alice').conn
      offline(h, 'bob')
      const frame = JSON.stringify({ type: 'send', to: 'bob', data: Array.from({ length: 20_000 }, () => ({})), seq: 1 })
      expect(Buffer.byteLength(frame)).to.be.lessThan(64 * 1024).and.lessThan(100 * 1024)
      expect(only(framesTo(h.feed(a, frame), a))).to.include({ type: 'error', code: 'queue_full', ref: 1 })
      expect(h.core.stats()).to.include({ queuedNow: 0, bufferedBytes: 0 })
    })

    it('charges delivered messages kept for replay their heldSize too', () => {
      const h = new Harness({ open: true, rateLimit: false })
      const a = h.register('alice').conn
      h.register('bob')
      h.feed(a, { type: 'send', to: 'bob', data: [1, 2, 3] })
      expect(h.core.stats().bufferedBytes).to.equal(heldSize('alice', '[1,2,3]'))
    })

    it('keeps total heap bytes under maxBufferedBytes whatever mix of queues and replay a sender produces', () => {
      const limit = 50_000
      const h = new Harness({ open: true, rateLimit: false, maxBufferedBytes: limit, maxUnknownQueuedPerSender: 1000, maxUnknownQueuedBytesPerSender: 1e9 })
      const a = h.register('alice').conn
      h.register('bob')
      offline(h, 'carol')
      for (let i = 0; i < 2000; i++) {
        const to = ['bob', 'carol', `ghost${i}`][i % 3]
        h.feed(a, { type: 'send', to, data: Array.from({ length: i % 50 }, () => ({})) })
        expect(h.core.stats().bufferedBytes).to.be.at.most(limit)
      }
      expect(h.core.stats().dropped.queue_full).to.be.greaterThan(0)
    })
  })

  describe('messages to ids the server does not know', () => {
    it('queues up to maxUnknownQueuedPerSender for unregistered ids, then answers unknown_recipient (ref = seq)', () => {
      const h = new Harness({ open: true, rateLimit: false, maxUnknownQueuedPerSender: 3 })
      const a = h.register('alice').conn
      for (let i = 1; i <= 3; i++) expect(only(framesTo(h.feed(a, { type: 'send', to: `ghost${i}`, data: i, seq: i }), a))).to.deep.equal({ type: 'ack', seq: i, queued: true })
      expect(only(framesTo(h.feed(a, { type: 'send', to: 'ghost9', data: 9, seq: 9 }), a))).to.include({ type: 'error', code: 'unknown_recipient', ref: 9 })
      expect(h.core.stats()).to.deep.include({ queuedNow: 3, queuedForUnknownNow: 3 })
      expect(h.core.stats().dropped.unknown_recipient).to.equal(1)
      // The share is the sender's: another sender still gets its own, and known offline peers still queue.
      const m = h.register('mallory').conn
      expect(only(framesTo(h.feed(m, { type: 'send', to: 'ghost1', data: 'x', seq: 1 }), m))).to.include({ type: 'ack' })
      offline(h, 'bob')
      expect(only(framesTo(h.feed(a, { type: 'send', to: 'bob', data: 'x', seq: 10 }), a))).to.deep.equal({ type: 'ack', seq: 10, queued: true })
    })

    it('bounds the bytes a sender holds for unknown ids (maxUnknownQueuedBytesPerSender)', () => {
      const data = 'y'.repeat(100)
      const one = heldSize('alice', JSON.stringify(data))
      const h = new Harness({ open: true, rateLimit: false, maxUnknownQueuedBytesPerSender: 2 * one })
      const a = h.register('alice').conn
      h.feed(a, { type: 'send', to: 'g1', data }); h.feed(a, { type: 'send', to: 'g2', data })
      expect(only(framesTo(h.feed(a, { type: 'send', to: 'g3', data, seq: 3 }), a))).to.include({ code: 'unknown_recipient', ref: 3 })
      expect(h.core.stats().bufferedBytes).to.equal(2 * one)
    })

    it('still delivers the offer to a peer that registers a little later, and frees the sender\'s share', () => {
      const h = new Harness({ open: true, rateLimit: false, maxUnknownQueuedPerSender: 2 })
      const a = h.register('alice').conn
      h.feed(a, { type: 'send', to: 'bob', data: 'offer', seq: 1 })
      h.feed(a, { type: 'send', to: 'bob', data: 'candidates', seq: 2 })
      expect(only(framesTo(h.feed(a, { type: 'send', to: 'carol', data: 'x', seq: 3 }), a))).to.include({ code: 'unknown_recipient' })
      h.now += 500
      const bob = h.register('bob')
      expect(framesTo(bob.actions, bob.conn).filter(f => f.type === 'message').map(f => f.type === 'message' && f.data)).to.deep.equal(['offer', 'candidates'])
      expect(h.core.stats().queuedForUnknownNow).to.equal(0)
      expect(only(framesTo(h.feed(a, { type: 'send', to: 'carol', data: 'x', seq: 4 }), a))).to.include({ type: 'ack', queued: true })
    })

    it('frees the share when the messages expire (injected clock)', () => {
      const h = new Harness({ open: true, rateLimit: false, maxUnknownQueuedPerSender: 1, queueTtlMs: 1000 })
      const a = h.register('alice').conn
      h.feed(a, { type: 'send', to: 'g1', data: 1 })
      expect(only(framesTo(h.feed(a, { type: 'send', to: 'g2', data: 2, seq: 2 }), a))).to.include({ code: 'unknown_recipient' })
      h.advance(1000)
      expect(h.core.stats()).to.include({ queuedNow: 0, queuedForUnknownNow: 0, bufferedBytes: 0 })
      expect(only(framesTo(h.feed(a, { type: 'send', to: 'g2', data: 2, seq: 3 }), a))).to.include({ type: 'ack', queued: true })
    })

    it('treats an id whose session has expired as unknown again', () => {
      const h = new Harness({ open: true, rateLimit: false, maxUnknownQueuedPerSender: 1, sessionTtlMs: 1000, queueTtlMs: 60_000 })
      const a = h.register('alice').conn
      offline(h, 'bob')
      offline(h, 'carol')
      h.feed(a, { type: 'send', to: 'bob', data: 1 }); h.feed(a, { type: 'send', to: 'bob', data: 2 })
      expect(h.core.stats().queuedForUnknownNow).to.equal(0)
      h.advance(1000)
      expect(only(framesTo(h.feed(a, { type: 'send', to: 'carol', data: 1, seq: 1 }), a))).to.include({ type: 'ack' })
      expect(only(framesTo(h.feed(a, { type: 'send', to: 'carol', data: 2, seq: 2 }), a))).to.include({ code: 'unknown_recipient' })
    })

    it('lets one sender spraying 10,000 made-up ids hold only its share (32 messages by default)', () => {
      const h = new Harness({ open: true, rateLimit: false })
      const a = h.register('alice').conn
      let refused = 0
      for (let i = 0; i < 10_000; i++) {
        const f = framesTo(h.feed(a, { type: 'send', to: `ghost-${i}`, data: 'x'.repeat(1000), seq: i }), a)[0]
        if (f.type === 'error' && f.code === 'unknown_recipient') refused++
      }
      expect(refused).to.equal(10_000 - 32)
      const s = h.core.stats()
      expect(s.queuedNow).to.equal(32)
      expect(s.bufferedBytes).to.equal(32 * heldSize('alice', JSON.stringify('x'.repeat(1000))))
      expect(s.bufferedBytes).to.be.at.most(h.core.options.maxUnknownQueuedBytesPerSender)
    })
  })

  describe('tokens', () => {
    it('refuses the TURN REST password of EXPIRY:alice as alice\'s token (unauthorized, close 4001)', () => {
      const h = new Harness({ authSecret: SECRET })
      const expiry = String(Math.floor(T0 / 1000) + 600)
      const { conn, actions } = h.register('alice', { token: `${expiry}:${restApiPassword(SECRET, `${expiry}:alice`)}` })
      expect(only(framesTo(actions, conn))).to.include({ type: 'error', code: 'unauthorized' })
      expect(closeOf(actions, conn)?.code).to.equal(RENDEZVOUS_CLOSE_CODES.UNAUTHORIZED)
    })

    it('refuses a token expiring further ahead than maxTokenAheadS (default 24 h) with unauthorized and a too_far_ahead event', () => {
      const h = new Harness({ authSecret: SECRET })
      const { conn, actions } = h.register('alice', { token: rendezvousToken(SECRET, 'alice', 7 * 86_400, T0) })
      expect(only(framesTo(actions, conn))).to.include({ type: 'error', code: 'unauthorized' })
      expect(closeOf(actions, conn)?.code).to.equal(RENDEZVOUS_CLOSE_CODES.UNAUTHORIZED)
      expect(actions.some(a => a.type === 'event' && a.event.type === 'auth-failure' && a.event.reason === 'too_far_ahead')).to.equal(true)
      const ok = h.register('alice', { token: rendezvousToken(SECRET, 'alice', 86_400, T0) })
      expect(framesTo(ok.actions, ok.conn)[0]).to.include({ type: 'registered' })
    })

    it('takes maxTokenAheadS from the options', () => {
      const h = new Harness({ authSecret: SECRET, maxTokenAheadS: 600, tokenSkewS: 0 })
      const far = h.register('alice', { token: rendezvousToken(SECRET, 'alice', 601, T0) })
      expect(framesTo(far.actions, far.conn)[0]).to.include({ code: 'unauthorized' })
      const near = h.register('alice', { token: rendezvousToken(SECRET, 'alice', 600, T0) })
      expect(framesTo(near.actions, near.conn)[0]).to.include({ type: 'registered' })
      expect(() => new RendezvousCore({ authSecret: SECRET, maxTokenAheadS: 0 })).to.throw(InvalidArgumentError)
    })
  })
})
