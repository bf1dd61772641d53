import { expect } from 'chai'
import { InvalidArgumentError } from '../../../src/errors.js'
import { CONNECTION_GUARD_DEFAULTS, ConnectionGuard, sourceKey } from '../../../src/net/connection-guard.js'

describe('ConnectionGuard', () => {
  describe('first message', () => {
    it('closes a connection that sends no complete message within the bound (default 5 s), and not a moment before', () => {
      const g = new ConnectionGuard<string>()
      g.open('a', '192.0.2.1', 1000)
      expect(g.expire(1000 + CONNECTION_GUARD_DEFAULTS.firstMessageTimeoutMs - 1)).to.deep.equal([])
      expect(g.expire(1000 + CONNECTION_GUARD_DEFAULTS.firstMessageTimeoutMs)).to.deep.equal([{ key: 'a', reason: 'idle' }])
      expect(g.size).to.equal(0)
      expect(g.expire(1_000_000)).to.deep.equal([])
    })

    it('keeps a connection that delivered a message, when there is no idle or auth bound', () => {
      const g = new ConnectionGuard<string>({ firstMessageTimeoutMs: 100 })
      g.open('a', '192.0.2.1', 0)
      g.message('a', 50)
      expect(g.expire(10_000_000)).to.deep.equal([])
      expect(g.deadline('a')).to.equal(undefined)
    })
  })

  describe('idle', () => {
    it('closes after idleTimeoutMs without a complete message, counted from the last one', () => {
      const g = new ConnectionGuard<string>({ firstMessageTimeoutMs: 100, idleTimeoutMs: 1000 })
      g.open('a', '192.0.2.1', 0)
      g.message('a', 90)
      g.message('a', 900)
      expect(g.expire(1899)).to.deep.equal([])
      expect(g.deadline('a')).to.deep.equal({ at: 1900, reason: 'idle' })
      expect(g.expire(1900)).to.deep.equal([{ key: 'a', reason: 'idle' }])
    })
  })

  describe('authentication', () => {
    it('closes an unauthenticated connection at authTimeoutMs even while it keeps sending (Binding requests)', () => {
      const g = new ConnectionGuard<string>({ firstMessageTimeoutMs: 100, authTimeoutMs: 3000 })
      g.open('a', '192.0.2.1', 0)
      for (let t = 50; t < 3000; t += 50) g.message('a', t)
      expect(g.expire(2999)).to.deep.equal([])
      expect(g.expire(3000)).to.deep.equal([{ key: 'a', reason: 'auth-timeout' }])
    })

    it('reports the earlier deadline: auth before first message when auth is shorter', () => {
      const g = new ConnectionGuard<string>({ firstMessageTimeoutMs: 5000, authTimeoutMs: 1000 })
      g.open('a', '192.0.2.1', 0)
      expect(g.deadline('a')).to.deep.equal({ at: 1000, reason: 'auth-timeout' })
    })

    it('lifts every deadline once authenticated', () => {
      const g = new ConnectionGuard<string>({ firstMessageTimeoutMs: 100, idleTimeoutMs: 100, authTimeoutMs: 200 })
      g.open('a', '192.0.2.1', 0)
      g.message('a', 10)
      g.authenticated('a')
      expect(g.isAuthenticated('a')).to.equal(true)
      expect(g.nextDeadline()).to.equal(undefined)
      expect(g.expire(1e12)).to.deep.equal([])
    })
  })

  describe('per-source cap', () => {
    it('refuses the newest unauthenticated connection beyond the cap (default 32) and admits another source', () => {
      const g = new ConnectionGuard<number>()
      for (let i = 0; i < CONNECTION_GUARD_DEFAULTS.maxUnauthenticatedPerIp; i++) expect(g.open(i, '198.51.100.7', 0)).to.equal(undefined)
      expect(g.open(100, '198.51.100.7', 0)).to.equal('per-ip-limit')
      expect(g.size).to.equal(32)
      expect(g.open(101, '198.51.100.8', 0)).to.equal(undefined)
      expect(g.unauthenticatedFrom('198.51.100.7')).to.equal(32)
    })

    it('frees a place when a connection closes or authenticates', () => {
      const g = new ConnectionGuard<number>({ maxUnauthenticatedPerIp: 2 })
      g.open(1, '203.0.113.1', 0); g.open(2, '203.0.113.1', 0)
      expect(g.open(3, '203.0.113.1', 0)).to.equal('per-ip-limit')
      g.closed(1)
      g.closed(1) // idempotent: frees one place only
      expect(g.open(3, '203.0.113.1', 0)).to.equal(undefined)
      expect(g.open(4, '203.0.113.1', 0)).to.equal('per-ip-limit')
      g.authenticated(2)
      g.authenticated(2)
      expect(g.open(4, '203.0.113.1', 0)).to.equal(undefined)
      expect(g.open(5, '203.0.113.1', 0)).to.equal('per-ip-limit')
      // An authenticated connection closing frees no unauthenticated place.
      g.closed(2)
      expect(g.open(5, '203.0.113.1', 0)).to.equal('per-ip-limit')
      expect(g.unauthenticatedCount).to.equal(2)
    })

    it('frees the places of connections it expires', () => {
      const g = new ConnectionGuard<number>({ maxUnauthenticatedPerIp: 1, firstMessageTimeoutMs: 10 })
      g.open(1, '203.0.113.1', 0)
      expect(g.open(2, '203.0.113.1', 5)).to.equal('per-ip-limit')
      expect(g.expire(10)).to.have.length(1)
      expect(g.open(2, '203.0.113.1', 11)).to.equal(undefined)
    })

    it('counts an IPv6 /64 as one source, and an IPv4-mapped address as its IPv4 address', () => {
      const g = new ConnectionGuard<number>({ maxUnauthenticatedPerIp: 2 })
      expect(g.open(1, '2001:db8:1:2::1', 0)).to.equal(undefined)
      expect(g.open(2, '2001:db8:1:2:ffff::9', 0)).to.equal(undefined)
      expect(g.open(3, '2001:db8:1:2:0:0:0:3', 0)).to.equal('per-ip-limit')
      expect(g.open(4, '2001:db8:1:3::1', 0)).to.equal(undefined)
      expect(g.open(5, '::ffff:192.0.2.1', 0)).to.equal(undefined)
      expect(g.open(6, '192.0.2.1', 0)).to.equal(undefined)
      expect(g.open(7, '192.0.2.1', 0)).to.equal('per-ip-limit')
    })
  })

  describe('sourceKey', () => {
    const cases: Array<[string, string]> = [
      ['192.0.2.1', '192.0.2.1'],
      ['::ffff:192.0.2.1', '192.0.2.1'],
      ['2001:db8::1', '20010db800000000::/64'],
      ['2001:db8:0:0:abcd::1', '20010db800000000::/64'],
      ['::1', '0000000000000000::/64'],
      ['', '']
    ]
    for (const [address, key] of cases) it(`keys ${JSON.stringify(address)} as ${JSON.stringify(key)}`, () => { expect(sourceKey(address)).to.equal(key) })
  })

  describe('backpressure', () => {
    it('says backpressure only once the queue passes the bound (default 256 KiB)', () => {
      const g = new ConnectionGuard<string>()
      expect(g.queued(256 * 1024)).to.equal(undefined)
      expect(g.queued(256 * 1024 + 1)).to.equal('backpressure')
      expect(new ConnectionGuard<string>({ maxQueuedBytes: 10 }).queued(11)).to.equal('backpressure')
    })
  })

  describe('nextDeadline', () => {
    it('is the earliest deadline over unauthenticated connections', () => {
      const g = new ConnectionGuard<string>({ firstMessageTimeoutMs: 100, idleTimeoutMs: 1000 })
      expect(g.nextDeadline()).to.equal(undefined)
      g.open('a', '192.0.2.1', 0)
      g.open('b', '192.0.2.2', 50)
      expect(g.nextDeadline()).to.equal(100)
      g.message('a', 60)
      expect(g.nextDeadline()).to.equal(150)
    })
  })

  describe('options', () => {
    const bad = [
      { firstMessageTimeoutMs: 0 }, { idleTimeoutMs: -1 }, { authTimeoutMs: Number.NaN },
      { maxUnauthenticatedPerIp: 0 }, { maxUnauthenticatedPerIp: 1.5 }, { maxQueuedBytes: 0 }
    ]
    for (const o of bad) {
      it(`rejects ${JSON.stringify(o)} with InvalidArgumentError`, () => {
        expect(() => new ConnectionGuard(o)).to.throw(InvalidArgumentError)
      })
    }
  })
})
