import { expect } from 'chai'
import { CredentialStore, DEFAULT_REST_MAX_TTL_S, REST_CLOCK_SKEW_S } from '../../../src/relay/credentials.js'
import { PeerPolicy } from '../../../src/relay/peer-policy.js'
import { ClientAuth } from '../../../src/relay/turn-client-auth.js'
import {
  AttrType, ErrorCode, MessageBuilder, MessageClass, Method, Nonce, PasswordAlgorithm, PasswordAlgorithmId, PasswordAlgorithms, Realm,
  RequestedTransport, StunMessage, TransportProtocol, Username, XorRelayedAddress, encodeNonceCookie, longTermKey
} from '../../../src/stun/index.js'
import { Harness, REALM, newCore } from './harness.js'

describe('authentication hardening', () => {
  describe('no MD5 downgrade on a SHA-256-only server', () => {
    it('refuses (400) a request that names no PASSWORD-ALGORITHM when MD5 is not offered, accepts SHA-256', () => {
      const core = newCore({ passwordAlgorithms: ['sha256'] })
      const h = new Harness(core)
      // MD5 key, no PASSWORD-ALGORITHM: formerly checked with the MD5 key and accepted.
      expect(Harness.errorCode(h.allocate().res)).to.equal(400)
      const offered = [{ algorithm: PasswordAlgorithmId.SHA256, parameters: new Uint8Array(0) }]
      const b = new MessageBuilder(Method.Allocate, MessageClass.Request).add(RequestedTransport, TransportProtocol.UDP)
        .add(Username, 'alice').add(Realm, REALM).add(Nonce, h.nonce as string)
        .add(PasswordAlgorithms, offered).add(PasswordAlgorithm, offered[0])
        .integritySha256(longTermKey('alice', REALM, 'secret', 'sha256'))
      const res = Harness.response(h.feed(b.fingerprint().build()))
      expect(res?.cls).to.equal(MessageClass.SuccessResponse)
      expect(res?.get(XorRelayedAddress)).to.not.equal(undefined)
    })

    it('still accepts MD5 without PASSWORD-ALGORITHM when MD5 is offered (RFC 8489 §9.2.4)', () => {
      const h = new Harness(newCore())
      expect(h.allocate().res?.cls).to.equal(MessageClass.SuccessResponse)
    })
  })

  describe('integrity attribute lengths at the server', () => {
    for (const [type, length, code] of [[AttrType.MessageIntegritySha256, 0, 400], [AttrType.MessageIntegritySha256, 8, 400], [AttrType.MessageIntegritySha256, 18, 400],
      [AttrType.MessageIntegritySha256, 16, 401], [AttrType.MessageIntegrity, 0, 400], [AttrType.MessageIntegrity, 16, 400], [AttrType.MessageIntegrity, 20, 401]] as const) {
      it(`answers ${code} to a zeroed ${type === AttrType.MessageIntegrity ? 'MESSAGE-INTEGRITY' : 'MESSAGE-INTEGRITY-SHA256'} of ${length} bytes`, () => {
        const h = new Harness(newCore())
        h.fetchNonce()
        const req = new MessageBuilder(Method.Allocate, MessageClass.Request).add(RequestedTransport, TransportProtocol.UDP)
          .add(Username, 'alice').add(Realm, REALM).add(Nonce, h.nonce as string).addRaw(type, Buffer.alloc(length)).build()
        expect(Harness.errorCode(Harness.response(h.feed(req)))).to.equal(code)
      })
    }
  })

  describe('REST usernames', () => {
    const now = 1_700_000_000_000
    const at = (aheadS: number): string => `${Math.floor(now / 1000) + aheadS}:alice`
    it(`refuses an expiry further ahead than ${DEFAULT_REST_MAX_TTL_S} s (+${REST_CLOCK_SKEW_S} s skew) by default`, () => {
      const s = new CredentialStore({ realm: 'r', authSecret: 'k' })
      expect(s.lookup(at(3600), 'md5', now).ok).to.equal(true)
      expect(s.lookup(at(DEFAULT_REST_MAX_TTL_S), 'md5', now).ok).to.equal(true)
      expect(s.lookup(at(DEFAULT_REST_MAX_TTL_S + REST_CLOCK_SKEW_S + 1), 'md5', now)).to.deep.equal({ ok: false, reason: 'expiry-too-far' })
      expect(s.lookup('99999999999:mallory', 'md5', now)).to.deep.equal({ ok: false, reason: 'expiry-too-far' })
    })
    it('takes a configured maximum', () => {
      const s = new CredentialStore({ realm: 'r', authSecret: 'k', restMaxTtlS: 600 })
      expect(s.lookup(at(600), 'md5', now).ok).to.equal(true)
      expect(s.lookup(at(3600), 'md5', now)).to.deep.equal({ ok: false, reason: 'expiry-too-far' })
    })
  })

  describe('failed-authentication buckets', () => {
    it('are charged only for sources that echo a nonce issued to their IP', () => {
      const core = newCore({ authFailureBurst: 3, authFailureRate: 0.001 })
      const victim = new Harness(core)
      const spoofer = new Harness(core, { address: victim.client.address, port: victim.client.port + 1 })
      const foreign = new Harness(core, { address: '192.0.2.77', port: 4000 })
      const nonce = foreign.fetchNonce()
      // 50 wrong passwords from the victim's IP, carrying a nonce issued to someone else: 401s, nothing charged.
      for (let i = 0; i < 50; i++) {
        spoofer.nonce = nonce
        expect(Harness.errorCode(spoofer.allocate(() => {}, { user: 'alice', pass: `guess${i}` }).res)).to.equal(401)
      }
      expect(victim.allocate().res?.cls).to.equal(MessageClass.SuccessResponse)
      // A source that echoes its own nonce is charged: after the burst its failures get no answer at all.
      const guesser = new Harness(core, { address: '192.0.2.99', port: 5000 })
      const answers = Array.from({ length: 6 }, (_, i) => guesser.allocate(() => {}, { user: 'alice', pass: `guess${i}` }).res)
      expect(answers.slice(0, 3).map(Harness.errorCode)).to.deep.equal([401, 401, 401])
      expect(answers.slice(3)).to.deep.equal([undefined, undefined, undefined])
    })
  })

  describe('TURN client: responses after authentication', () => {
    function signedAuth (): { auth: ClientAuth, key: Buffer, realm: string } {
      const auth = new ClientAuth({ username: 'alice', password: 'secret' })
      const nonce = `${encodeNonceCookie({ passwordAlgorithms: false, usernameAnonymity: false })}abc`
      const challenge = StunMessage.decode(new MessageBuilder(Method.Allocate, MessageClass.ErrorResponse)
        .add(ErrorCode, { code: 401, reason: 'Unauthenticated' }).add(Realm, 'r').add(Nonce, nonce).build())
      expect(auth.learn(challenge)).to.equal(true)
      return { auth, key: longTermKey('alice', 'r', 'secret', 'md5'), realm: 'r' }
    }
    const success = (): MessageBuilder => new MessageBuilder(Method.Allocate, MessageClass.SuccessResponse)
      .add(XorRelayedAddress, { address: '192.0.2.1', port: 50000 })

    it('verifies a success response signed with our key', () => {
      const { auth, key } = signedAuth()
      expect(auth.verify(StunMessage.decode(success().integrity(key).build()))).to.equal(true)
    })
    it('treats a success response without integrity as not verified', () => {
      const { auth } = signedAuth()
      expect(auth.verify(StunMessage.decode(success().build()))).to.equal(false)
    })
    it('treats an error other than 401/438 without integrity as not verified, a 401/438 challenge as usable', () => {
      const { auth } = signedAuth()
      const err = (code: number): StunMessage => StunMessage.decode(new MessageBuilder(Method.Allocate, MessageClass.ErrorResponse).add(ErrorCode, { code, reason: 'x' }).build())
      expect(auth.verify(err(486))).to.equal(false)
      expect(auth.verify(err(403))).to.equal(false)
      expect(auth.verify(err(401))).to.equal(true)
      expect(auth.verify(err(438))).to.equal(true)
    })
    it('refuses a 0-byte MESSAGE-INTEGRITY-SHA256 on a response', () => {
      const { auth } = signedAuth()
      expect(auth.verify(StunMessage.decode(success().addRaw(AttrType.MessageIntegritySha256, new Uint8Array(0)).build()))).to.equal(false)
    })
  })

  describe('peer policy', () => {
    it('denies a wildcard listener\'s port on every local address, loopback and own address, and allowPeer cannot re-open it', () => {
      const p = new PeerPolicy({
        allowPeer: ['0.0.0.0/0', '::/0'],
        ownAddresses: ['203.0.113.5'],
        localAddresses: ['127.0.0.1', '198.51.100.7', '::1', 'fe80::1'],
        ownEndpoints: [{ address: '0.0.0.0', port: 3478 }, { address: '::', port: 5349 }, { address: '127.0.0.1', port: 9641 }]
      })
      for (const [address, port] of [['198.51.100.7', 3478], ['127.0.0.1', 3478], ['127.9.9.9', 3478], ['203.0.113.5', 3478], ['0.0.0.0', 3478],
        ['::1', 5349], ['198.51.100.7', 5349], ['fe80::1', 5349], ['127.0.0.1', 9641], ['::ffff:127.0.0.1', 9641]] as const) {
        expect(p.check({ address, port }), `${address}:${port}`).to.equal('denied')
      }
      // Not vacuous: other ports on the same addresses, and the same port elsewhere, stay allowed (allowPeer 0/0).
      for (const [address, port] of [['198.51.100.7', 3479], ['127.0.0.1', 50000], ['8.8.8.8', 3478], ['::1', 3478], ['2606:4700::1', 5349]] as const) {
        expect(p.check({ address, port }), `${address}:${port}`).to.equal('allowed')
      }
    })
    it('denies 6to4, Teredo, SIIT and the 6to4 relay anycast by default', () => {
      const p = new PeerPolicy()
      for (const address of ['2002:c000:204::1', '2001:0:4136:e378:8000:63bf:3fff:fdd2', '::ffff:0:7f00:1', '192.88.99.1']) {
        expect(p.checkAddress(address), address).to.equal('denied')
      }
      expect(p.checkAddress('2001:4860::8888')).to.equal('allowed')
    })
  })
})
