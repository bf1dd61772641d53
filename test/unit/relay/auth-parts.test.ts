import { expect } from 'chai'
import { createHmac } from 'node:crypto'
import { CredentialStore, restApiPassword, restApiUsername } from '../../../src/relay/credentials.js'
import { NonceIssuer } from '../../../src/relay/nonce.js'
import { KeyedTokenBuckets, TokenBucket } from '../../../src/util/token-bucket.js'
import { InMemoryRelayMetrics, PrometheusRelayMetrics, RELAY_COUNTERS, RELAY_GAUGES } from '../../../src/relay/metrics.js'
import { ResponseCache } from '../../../src/relay/response-cache.js'
import { PortPool } from '../../../src/relay/port-pool.js'
import { decodeNonceCookie, longTermKey } from '../../../src/stun/index.js'

describe('relay building blocks', () => {
  describe('CredentialStore', () => {
    it('derives MD5 and SHA-256 long-term keys for static users', () => {
      const s = new CredentialStore({ realm: 'r', users: { u: 'p' } })
      const md5 = s.lookup('u', 'md5', 0)
      const sha = s.lookup('u', 'sha256', 0)
      expect(md5.ok && md5.keys[0].equals(longTermKey('u', 'r', 'p', 'md5'))).to.equal(true)
      expect(sha.ok && sha.keys[0].length).to.equal(32)
      expect(s.lookup('nobody', 'md5', 0)).to.deep.equal({ ok: false, reason: 'unknown-user' })
    })

    it('computes REST API passwords as coturn does: base64(HMAC-SHA1(secret, username))', () => {
      const user = '1700003600:alice'
      expect(restApiPassword('s3cret', user)).to.equal(createHmac('sha1', 's3cret').update(user).digest('base64'))
      expect(restApiUsername(3600, 1_700_000_000_000, 'alice')).to.equal(user)
      const s = new CredentialStore({ realm: 'r', authSecret: ['old', 's3cret'] })
      const l = s.lookup(user, 'md5', 1_700_000_000_000)
      expect(l.ok && l.keys.length).to.equal(2)
      expect(s.lookup(user, 'md5', 1_700_003_600_000)).to.deep.equal({ ok: false, reason: 'expired' })
      expect(s.lookup('alice', 'md5', 0)).to.deep.equal({ ok: false, reason: 'unknown-user' })
    })
  })

  describe('NonceIssuer', () => {
    it('issues cookie nonces bound to the client IP that go stale after their lifetime', () => {
      const n = new NonceIssuer({ lifetime: 10 })
      const nonce = n.issue('1.2.3.4', 1000)
      expect(decodeNonceCookie(nonce)?.passwordAlgorithms).to.equal(true)
      expect(n.check(nonce, '1.2.3.4', 5000)).to.equal('valid')
      expect(n.check(nonce, '1.2.3.5', 5000)).to.equal('invalid')
      expect(n.check(nonce, '1.2.3.4', 11_000)).to.equal('stale')
      expect(new NonceIssuer().check(nonce, '1.2.3.4', 5000)).to.equal('invalid')
    })

    it('keeps a nonce valid for its whole lifetime wherever in a second it was issued, and stale within a second more', () => {
      const n = new NonceIssuer({ lifetime: 1 })
      for (const issuedAt of [1_700_000_000_000, 1_700_000_000_001, 1_700_000_000_500, 1_700_000_000_999]) {
        const nonce = n.issue('1.2.3.4', issuedAt)
        for (const after of [0, 1, 500, 999]) expect(n.check(nonce, '1.2.3.4', issuedAt + after), `issued at ${issuedAt}, checked ${after} ms later`).to.equal('valid')
        expect(n.check(nonce, '1.2.3.4', issuedAt + 2000), `issued at ${issuedAt}, checked 2 s later`).to.equal('stale')
      }
    })

    // A tampered character must differ from the original whatever the (random-secret) MAC happens to be: replacing a
    // character with a fixed one ('A') leaves the nonce unchanged when it already was that character (1 run in 64).
    const other = (c: string): string => c === 'A' ? 'B' : 'A'
    const tamper = (s: string, i: number): string => s.slice(0, i) + other(s[i]) + s.slice(i + 1)
    for (const secret of [Buffer.alloc(32, 1), undefined]) {
      it(`refuses a nonce with any one character changed (${secret === undefined ? 'random' : 'fixed'} secret)`, () => {
        const n = new NonceIssuer({ lifetime: 10, secret })
        const nonce = n.issue('1.2.3.4', 1000)
        expect(n.check(nonce, '1.2.3.4', 5000)).to.equal('valid')
        for (let i = 0; i < nonce.length; i++) {
          const bad = tamper(nonce, i)
          expect(bad).to.not.equal(nonce)
          // A changed expiry digit may still parse, but the MAC covers it.
          expect(n.check(bad, '1.2.3.4', 5000), `character ${i} of ${nonce}`).to.equal('invalid')
        }
      })
    }
  })

  describe('TokenBucket', () => {
    it('passes a burst then refills at the rate', () => {
      const b = new TokenBucket(10, 20, 0)
      expect(b.take(20, 0)).to.equal(true)
      expect(b.take(1, 0)).to.equal(false)
      expect(b.take(10, 1000)).to.equal(true)
      const k = new KeyedTokenBuckets(1, 1, 2)
      expect(k.take('a', 1, 0)).to.equal(true)
      expect(k.take('a', 1, 0)).to.equal(false)
      k.take('b', 1, 0); k.take('c', 1, 0)
      expect(k.size).to.equal(2)
      k.sweep(10_000)
      expect(k.size).to.equal(0)
    })
  })

  describe('ResponseCache and PortPool', () => {
    it('bounds the cache and expires entries', () => {
      const c = new ResponseCache(1000, 2)
      c.set('a', Buffer.from('1'), 0); c.set('b', Buffer.from('2'), 0); c.set('c', Buffer.from('3'), 0)
      expect(c.get('a', 0)).to.equal(undefined)
      expect(c.size).to.equal(2)
      c.sweep(1000)
      expect(c.size).to.equal(0)
    })

    it('hands out even pairs and runs out', () => {
      const p = new PortPool(100, 103)
      const port = p.take(0, 'even-pair') as number
      expect(port % 2).to.equal(0)
      expect(p.inUse).to.equal(2)
      expect(p.take(0, 'even-pair')).to.be.a('number')
      expect(p.take(0)).to.equal(undefined)
      p.markForeign(port, 0, 1000)
      expect(p.take(500)).to.equal(undefined)
      expect(p.take(1000)).to.equal(port)
    })
  })

  describe('PrometheusRelayMetrics', () => {
    it('renders Prometheus text exposition through prom-client', async () => {
      const m = new PrometheusRelayMetrics()
      m.inc('natkit_relay_dropped_total', 'no-permission', 2)
      m.set('natkit_relay_allocations', 3)
      const text = await m.render()
      expect(text).to.include('# TYPE natkit_relay_dropped_total counter')
      expect(text).to.include('natkit_relay_dropped_total{reason="no-permission"} 2')
      expect(text).to.include('natkit_relay_allocations 3')
      expect(text.endsWith('\n')).to.equal(true)
      expect(m.contentType).to.match(/^text\/plain; version=0\.0\.4/)
    })

    it('keeps every metric name, and gives each server its own registry', async () => {
      const a = new PrometheusRelayMetrics()
      const b = new PrometheusRelayMetrics()
      a.inc('natkit_relay_packets_total', 'client-to-peer', 5)
      const [ta, tb] = [await a.render(), await b.render()]
      for (const name of [...Object.keys(RELAY_COUNTERS), ...Object.keys(RELAY_GAUGES)]) {
        expect(ta).to.include(`# TYPE ${name} `)
        expect(tb).to.include(`# TYPE ${name} `)
      }
      expect(ta).to.include('natkit_relay_packets_total{direction="client-to-peer"} 5')
      expect(tb).to.not.include('natkit_relay_packets_total{direction="client-to-peer"}')
      expect(ta).to.not.match(/user(name)?="/)
    })

    it('runs collectors before it is read (the core flushes its hot-path counters)', async () => {
      const m = new InMemoryRelayMetrics()
      let pending = 3
      m.onCollect(() => { m.inc('natkit_relay_packets_total', 'peer-to-client', pending); pending = 0 })
      expect(m.get('natkit_relay_packets_total', 'peer-to-client')).to.equal(3)
      expect(m.total('natkit_relay_packets_total')).to.equal(3)
      const p = new PrometheusRelayMetrics()
      let bytes = 7
      p.onCollect(() => { if (bytes > 0) p.inc('natkit_relay_bytes_total', 'peer-to-client', bytes); bytes = 0 })
      expect(await p.render()).to.include('natkit_relay_bytes_total{direction="peer-to-client"} 7')
    })
  })
})
