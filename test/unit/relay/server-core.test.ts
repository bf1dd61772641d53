import { expect } from 'chai'
import fc from 'fast-check'
import {
  AdditionalAddressFamily, AddressErrorCode, ErrorCode, ChannelNumber, ConnectionId, Data, EvenPort, Lifetime, MessageBuilder,
  MessageClass, Method, Nonce, PasswordAlgorithms, Realm, RequestedAddressFamily, RequestedTransport, ReservationToken,
  StunMessage, TransportProtocol, XorMappedAddress, XorPeerAddress, XorRelayedAddress, decodeNonceCookie, longTermKey
} from '../../../src/stun/index.js'
import { restApiPassword } from '../../../src/relay/credentials.js'
import type { RelayAction } from '../../../src/relay/types.js'
import { InMemoryRelayMetrics } from '../../../src/relay/metrics.js'
import { Harness, REALM, SERVER, newCore } from './harness.js'
import { connectionIdOwner } from '../../../src/relay/tcp-relay.js'
import { InvalidArgumentError } from '../../../src/errors.js'

const PEER = { address: '127.0.0.2', port: 7000 }
const codeOf = (r: { res: StunMessage | undefined }): number | undefined => Harness.errorCode(r.res)
const sendsOf = (actions: RelayAction[]): Array<Extract<RelayAction, { type: 'send' }>> => actions.filter((a): a is Extract<RelayAction, { type: 'send' }> => a.type === 'send')
const relaysOf = (actions: RelayAction[]): Array<Extract<RelayAction, { type: 'relay' }>> => actions.filter((a): a is Extract<RelayAction, { type: 'relay' }> => a.type === 'relay')

describe('TurnServerCore', () => {
  describe('Binding', () => {
    it('answers a plain Binding request with XOR-MAPPED-ADDRESS, without authentication', () => {
      const h = new Harness(newCore())
      const req = new MessageBuilder(Method.Binding, MessageClass.Request).build()
      const res = Harness.response(h.feed(req))
      expect(res?.cls).to.equal(MessageClass.SuccessResponse)
      expect(res?.get(XorMappedAddress)).to.deep.equal(h.client)
    })
  })

  describe('authentication', () => {
    it('challenges a request without credentials with 401, REALM, a cookie NONCE and PASSWORD-ALGORITHMS', () => {
      const h = new Harness(newCore())
      const req = new MessageBuilder(Method.Allocate, MessageClass.Request).add(RequestedTransport, 17).build()
      const res = Harness.response(h.feed(req))
      expect(Harness.errorCode(res)).to.equal(401)
      expect(res?.get(Realm)).to.equal(REALM)
      expect(decodeNonceCookie(res?.get(Nonce) ?? '')?.passwordAlgorithms).to.equal(true)
      expect(res?.get(PasswordAlgorithms)?.map(a => a.algorithm)).to.deep.equal([1, 2])
      expect(res?.hasIntegrity()).to.equal(false)
    })

    it('accepts MD5 keys and signs the response with the same key', () => {
      const h = new Harness(newCore())
      const r = h.allocate()
      expect(r.res?.cls).to.equal(MessageClass.SuccessResponse)
      expect(r.res?.verifyIntegrity(longTermKey('alice', REALM, 'secret', 'md5'))).to.equal(true)
    })

    it('accepts SHA-256 keys (PASSWORD-ALGORITHM) and MESSAGE-INTEGRITY-SHA256', () => {
      const h = new Harness(newCore())
      const r = h.allocate(() => {}, { user: 'alice', pass: 'secret', algorithm: 'sha256', sha256Integrity: true })
      expect(r.res?.cls).to.equal(MessageClass.SuccessResponse)
      expect(r.res?.verifyIntegrity(longTermKey('alice', REALM, 'secret', 'sha256'))).to.equal(true)
    })

    const failures: Array<{ name: string, creds: { user: string, pass: string }, code: number }> = [
      { name: 'a wrong password', creds: { user: 'alice', pass: 'wrong' }, code: 401 },
      { name: 'an unknown user', creds: { user: 'mallory', pass: 'secret' }, code: 401 }
    ]
    for (const c of failures) {
      it(`answers ${c.code} to ${c.name}, without MESSAGE-INTEGRITY`, () => {
        const core = newCore()
        const h = new Harness(core)
        const r = h.allocate(() => {}, c.creds)
        expect(codeOf(r)).to.equal(c.code)
        expect(r.res?.hasIntegrity()).to.equal(false)
        expect((core.metrics as InMemoryRelayMetrics).total('natkit_relay_auth_failures_total')).to.equal(1)
      })
    }

    it('answers 438 with a fresh nonce once the nonce is stale, and the fresh one works', () => {
      const h = new Harness(newCore())
      h.fetchNonce()
      h.now += 601_000
      const r = h.allocate()
      expect(codeOf(r)).to.equal(438)
      const fresh = r.res?.get(Nonce)
      expect(fresh).to.be.a('string').and.not.equal(h.nonce)
      h.nonce = fresh
      expect(h.allocate().res?.cls).to.equal(MessageClass.SuccessResponse)
    })

    it('treats a nonce issued to another client IP as stale (438)', () => {
      const core = newCore()
      const h = new Harness(core)
      h.nonce = core.authenticator.issueNonce({ address: '203.0.113.9', port: 1 }, h.now)
      expect(codeOf(h.allocate())).to.equal(438)
    })

    it('answers 400 when MESSAGE-INTEGRITY comes without NONCE', () => {
      const h = new Harness(newCore())
      const req = new MessageBuilder(Method.Allocate, MessageClass.Request).add(RequestedTransport, 17)
        .add(Realm, REALM).integrity(longTermKey('alice', REALM, 'secret')).build()
      expect(Harness.errorCode(Harness.response(h.feed(req)))).to.equal(400)
    })

    it('accepts TURN REST API credentials (expiry:user, HMAC-SHA1 password) and rejects expired ones', () => {
      const core = newCore({ authSecret: 'rest-secret' })
      const h = new Harness(core)
      const user = `${Math.floor(h.now / 1000) + 3600}:carol`
      expect(h.allocate(() => {}, { user, pass: restApiPassword('rest-secret', user) }).res?.cls).to.equal(MessageClass.SuccessResponse)
      const h2 = new Harness(core, { address: '198.51.100.8', port: 1 })
      const old = `${Math.floor(h.now / 1000) - 1}:carol`
      expect(codeOf(h2.allocate(() => {}, { user: old, pass: restApiPassword('rest-secret', old) }))).to.equal(401)
      const bare = `${Math.floor(h.now / 1000) + 60}`
      const h3 = new Harness(core, { address: '198.51.100.9', port: 1 })
      expect(h3.allocate(() => {}, { user: bare, pass: restApiPassword('rest-secret', bare) }).res?.cls).to.equal(MessageClass.SuccessResponse)
    })

    it('drops requests from an IP after too many failures, but not from other IPs', () => {
      const core = newCore({ authFailureBurst: 3, authFailureRate: 0.001 })
      const h = new Harness(core)
      for (let i = 0; i < 3; i++) expect(codeOf(h.allocate(() => {}, { user: 'alice', pass: 'bad' }))).to.equal(401)
      const dropped = h.allocate(() => {}, { user: 'alice', pass: 'secret' })
      expect(dropped.res).to.equal(undefined)
      expect(dropped.actions.some(a => a.type === 'ignore' && a.reason === 'auth-rate-limited')).to.equal(true)
      const other = new Harness(core, { address: '198.51.100.99', port: 5 })
      expect(other.allocate().res?.cls).to.equal(MessageClass.SuccessResponse)
    })
  })

  describe('Allocate', () => {
    it('creates an allocation: XOR-RELAYED-ADDRESS in the port range, LIFETIME 600, XOR-MAPPED-ADDRESS', () => {
      const h = new Harness(newCore())
      const r = h.allocate()
      const relayed = r.res?.get(XorRelayedAddress)
      expect(relayed?.address).to.equal('127.0.0.1')
      expect(relayed?.port).to.be.within(50000, 50099)
      expect(r.res?.get(Lifetime)).to.equal(600)
      expect(r.res?.get(XorMappedAddress)).to.deep.equal(h.client)
      expect(r.actions.filter(a => a.type === 'open-relay')).to.have.length(1)
      expect(r.actions.some(a => a.type === 'event' && a.event.type === 'allocation')).to.equal(true)
    })

    it('advertises externalAddress while binding relayAddress', () => {
      const h = new Harness(newCore({ externalAddress: '203.0.113.50' }))
      const r = h.allocate()
      expect(r.res?.get(XorRelayedAddress)?.address).to.equal('203.0.113.50')
      expect(r.actions.find(a => a.type === 'open-relay')).to.include({ address: '127.0.0.1' })
    })

    it('clamps LIFETIME to [default, max]', () => {
      expect(new Harness(newCore()).allocate((b) => b.add(Lifetime, 99999)).res?.get(Lifetime)).to.equal(3600)
      expect(new Harness(newCore()).allocate((b) => b.add(Lifetime, 30)).res?.get(Lifetime)).to.equal(600)
    })

    it('answers a retransmitted Allocate with the same response and creates one allocation', () => {
      const core = newCore()
      const h = new Harness(core)
      const req = h.build(Method.Allocate, (b) => b.add(RequestedTransport, 17))
      const first = sendsOf(h.feed(req))[0].data
      const again = h.feed(req)
      expect(Buffer.from(sendsOf(again)[0].data).equals(Buffer.from(first))).to.equal(true)
      expect(again.some(a => a.type === 'open-relay')).to.equal(false)
      expect(core.stats(h.now).allocations).to.equal(1)
    })

    it('answers 437 to a second Allocate on the same 5-tuple', () => {
      const h = new Harness(newCore())
      h.allocate()
      expect(codeOf(h.allocate())).to.equal(437)
    })

    const errors: Array<{ name: string, add: (b: MessageBuilder) => void, code: number, tcp?: boolean }> = [
      { name: 'no REQUESTED-TRANSPORT', add: () => {}, code: 400 },
      { name: 'an unsupported transport', add: (b) => b.add(RequestedTransport, 99), code: 442 },
      { name: 'TCP over UDP (RFC 6062 §5.1)', add: (b) => b.add(RequestedTransport, 6), code: 400 },
      { name: 'IPv6 without an IPv6 relay address', add: (b) => b.add(RequestedTransport, 17).add(RequestedAddressFamily, 6), code: 440 },
      { name: 'REQUESTED- and ADDITIONAL-ADDRESS-FAMILY', add: (b) => b.add(RequestedTransport, 17).add(RequestedAddressFamily, 4).add(AdditionalAddressFamily, 6), code: 400 },
      { name: 'ADDITIONAL-ADDRESS-FAMILY IPv4', add: (b) => b.add(RequestedTransport, 17).add(AdditionalAddressFamily, 4), code: 400 },
      { name: 'an unknown RESERVATION-TOKEN', add: (b) => b.add(RequestedTransport, 17).add(ReservationToken, Buffer.alloc(8, 7)), code: 508 },
      { name: 'RESERVATION-TOKEN with EVEN-PORT', add: (b) => b.add(RequestedTransport, 17).add(ReservationToken, Buffer.alloc(8)).add(EvenPort, { reserve: false }), code: 400 },
      { name: 'an unknown comprehension-required attribute', add: (b) => b.add(RequestedTransport, 17).addRaw(0x7777, Buffer.alloc(4)), code: 420 },
      { name: 'a malformed REQUESTED-TRANSPORT', add: (b) => b.addRaw(0x0019, Buffer.alloc(3)), code: 400 }
    ]
    for (const c of errors) {
      it(`answers ${c.code} to ${c.name}`, () => {
        const h = new Harness(newCore())
        const r = h.request(Method.Allocate, c.add)
        expect(codeOf(r)).to.equal(c.code)
        expect(r.res?.verifyIntegrity(longTermKey('alice', REALM, 'secret'))).to.equal(true)
      })
    }

    it('makes a dual allocation, or reports the failed family in ADDRESS-ERROR-CODE', () => {
      const dual = new Harness(newCore({ relayAddress6: '::1' })).allocate((b) => b.add(AdditionalAddressFamily, 6))
      expect(dual.res?.getAll(XorRelayedAddress).map(e => e.address)).to.deep.equal(['127.0.0.1', '::1'])
      const half = new Harness(newCore()).allocate((b) => b.add(AdditionalAddressFamily, 6))
      expect(half.res?.cls).to.equal(MessageClass.SuccessResponse)
      expect(half.res?.getAll(XorRelayedAddress)).to.have.length(1)
      expect(half.res?.get(AddressErrorCode)).to.include({ family: 6, code: 440 })
    })

    it('allocates an IPv6-only relay with REQUESTED-ADDRESS-FAMILY IPv6', () => {
      const r = new Harness(newCore({ relayAddress6: '::1' })).allocate((b) => b.add(RequestedAddressFamily, 6))
      expect(r.res?.get(XorRelayedAddress)?.address).to.equal('::1')
    })

    it('honours EVEN-PORT R=1 with a RESERVATION-TOKEN that a second Allocate redeems for port+1', () => {
      const core = newCore()
      const h = new Harness(core)
      const first = h.allocate((b) => b.add(EvenPort, { reserve: true }))
      const port = first.res?.get(XorRelayedAddress)?.port as number
      expect(port % 2).to.equal(0)
      const token = first.res?.get(ReservationToken) as Uint8Array
      expect(token).to.have.length(8)
      const h2 = new Harness(core, { address: '198.51.100.7', port: 40001 })
      const second = h2.allocate((b) => b.add(ReservationToken, token))
      expect(second.res?.get(XorRelayedAddress)?.port).to.equal(port + 1)
      // A token is good once.
      const h3 = new Harness(core, { address: '198.51.100.7', port: 40002 })
      expect(codeOf(h3.allocate((b) => b.add(ReservationToken, token)))).to.equal(508)
    })

    it('keeps the reserved port when the allocation that asked for it ends first (as uclient\'s probe does), until it expires', () => {
      const core = newCore()
      const h = new Harness(core)
      const first = h.allocate((b) => b.add(EvenPort, { reserve: true }))
      const port = first.res?.get(XorRelayedAddress)?.port as number
      const token = first.res?.get(ReservationToken) as Uint8Array
      // The first allocation ends (here a Refresh with LIFETIME 0; over TCP, its connection closing) before the token is used.
      expect(h.request(Method.Refresh, (b) => b.add(Lifetime, 0)).res?.cls).to.equal(MessageClass.SuccessResponse)
      expect(core.stats(h.now)).to.include({ allocations: 0, reservations: 1 })
      const h2 = new Harness(core, { address: '198.51.100.7', port: 40001 })
      expect(h2.allocate((b) => b.add(ReservationToken, token)).res?.get(XorRelayedAddress)?.port).to.equal(port + 1)
      // Unclaimed, it lapses with the sweep after ~30 s like any reservation.
      const h3 = new Harness(core, { address: '198.51.100.7', port: 40002 })
      const other = h3.allocate((b) => b.add(EvenPort, { reserve: true })).res?.get(ReservationToken) as Uint8Array
      expect(h3.request(Method.Refresh, (b) => b.add(Lifetime, 0)).res?.cls).to.equal(MessageClass.SuccessResponse)
      h3.now += 31_000
      core.tick(h3.now)
      expect(codeOf(new Harness(core, { address: '198.51.100.7', port: 40003 }).allocate((b) => b.add(ReservationToken, other)))).to.equal(508)
    })

    it('answers 486 over the per-user quota and the total quota', () => {
      const core = newCore({ userQuota: 2, totalQuota: 3 })
      for (let i = 0; i < 2; i++) expect(new Harness(core, { address: '198.51.100.7', port: 1000 + i }).allocate().res?.cls).to.equal(MessageClass.SuccessResponse)
      expect(codeOf(new Harness(core, { address: '198.51.100.7', port: 1002 }).allocate())).to.equal(486)
      expect(new Harness(core, { address: '198.51.100.7', port: 1003 }).allocate(() => {}, { user: 'bob', pass: 'hunter2' }).res?.cls).to.equal(MessageClass.SuccessResponse)
      const refused = new Harness(core, { address: '198.51.100.7', port: 1004 }).allocate(() => {}, { user: 'bob', pass: 'hunter2' })
      expect(codeOf(refused)).to.equal(486)
      // The refusal says which quota refused whom (the relay logs it), and is counted by quota.
      expect(refused.actions.filter(a => a.type === 'event').map(a => a.event)).to.deep.equal([
        { type: 'quota-refused', quota: 'total', limit: 3, username: 'bob', client: { address: '198.51.100.7', port: 1004 }, protocol: 'udp' }
      ])
      const m = core.metrics as InMemoryRelayMetrics
      expect(m.get('natkit_relay_quota_refusals_total', 'user')).to.equal(1)
      expect(m.get('natkit_relay_quota_refusals_total', 'total')).to.equal(1)
    })

    it('has no per-user quota by default: 30 allocations of one user name all succeed (a shared credential)', () => {
      const core = newCore()
      const codes = Array.from({ length: 30 }, (_, i) => new Harness(core, { address: '198.51.100.7', port: 2000 + i }).allocate())
      expect(codes.filter(r => r.res?.cls === MessageClass.SuccessResponse)).to.have.length(30)
      expect((core.metrics as InMemoryRelayMetrics).total('natkit_relay_quota_refusals_total')).to.equal(0)
    })

    it('answers 508 when the port range is exhausted, and while draining', () => {
      const core = newCore({ portRange: [50000, 50000] })
      expect(new Harness(core, { address: '198.51.100.7', port: 1 }).allocate().res?.cls).to.equal(MessageClass.SuccessResponse)
      expect(codeOf(new Harness(core, { address: '198.51.100.7', port: 2 }).allocate())).to.equal(508)
      const d = newCore()
      d.draining = true
      expect(codeOf(new Harness(d).allocate())).to.equal(508)
    })

    it('answers 508 to Allocate through a listener a reload removed (a wildcard one matches every address), while the allocations made through it before live on and are counted', () => {
      const core = newCore()
      const before = new Harness(core)
      expect(before.allocate().res?.cls).to.equal(MessageClass.SuccessResponse)
      core.closedListeners.push({ protocol: 'udp', local: SERVER })
      expect(core.allocationsThrough({ protocol: 'udp', local: SERVER })).to.equal(1)
      expect(codeOf(new Harness(core, { address: '198.51.100.7', port: 2 }).allocate())).to.equal(508)
      // The allocation made before still refreshes.
      expect(before.request(Method.Refresh, (b) => b.add(Lifetime, 600)).res?.cls).to.equal(MessageClass.SuccessResponse)
      // Another listener, or another protocol on the same address, still allocates.
      const other = { address: '192.0.2.1', port: 3479 }
      expect(new Harness(core, undefined, { protocol: 'udp', local: other }).allocate().res?.cls).to.equal(MessageClass.SuccessResponse)
      expect(new Harness(core, undefined, { protocol: 'tcp', local: SERVER, connection: 'c1' }).allocate().res?.cls).to.equal(MessageClass.SuccessResponse)
      core.closedListeners.push({ protocol: 'tcp', local: { address: '0.0.0.0', port: 3478 } })
      expect(codeOf(new Harness(core, { address: '198.51.100.8', port: 1 }, { protocol: 'tcp', local: SERVER, connection: 'c2' }).allocate())).to.equal(508)
      expect(core.allocationsThrough({ protocol: 'tcp', local: { address: '0.0.0.0', port: 3478 } })).to.equal(1)
    })

    it('tries another port when the OS says the chosen one is in use', () => {
      const core = newCore()
      const h = new Harness(core)
      const actions = core.handle(h.build(Method.Allocate, (b) => b.add(RequestedTransport, 17)), h.client, h.transport, h.now)
      const open = actions.find(a => a.type === 'open-relay') as Extract<RelayAction, { type: 'open-relay' }>
      const retry = core.relayOpened(open.relay, { ok: false, inUse: true }, h.now)
      const again = retry.find(a => a.type === 'open-relay') as Extract<RelayAction, { type: 'open-relay' }>
      expect(again.port).to.not.equal(open.port)
      const done = core.relayOpened(again.relay, { ok: true, bound: { address: '127.0.0.1', port: again.port } }, h.now)
      expect(Harness.response(done)?.get(XorRelayedAddress)?.port).to.equal(again.port)
    })
  })

  describe('Refresh', () => {
    it('answers 437 without an allocation', () => {
      expect(codeOf(new Harness(newCore()).request(Method.Refresh))).to.equal(437)
    })

    it('extends the lifetime, and deletes the allocation with LIFETIME 0', () => {
      const core = newCore()
      const h = new Harness(core)
      h.allocate()
      expect(h.request(Method.Refresh, (b) => b.add(Lifetime, 1200)).res?.get(Lifetime)).to.equal(1200)
      const del = h.request(Method.Refresh, (b) => b.add(Lifetime, 0))
      expect(del.res?.get(Lifetime)).to.equal(0)
      expect(del.actions.some(a => a.type === 'close-relay')).to.equal(true)
      expect(core.stats(h.now).allocations).to.equal(0)
    })

    it('answers 441 when another user refreshes the allocation', () => {
      const h = new Harness(newCore())
      h.allocate()
      expect(codeOf(h.request(Method.Refresh, () => {}, { user: 'bob', pass: 'hunter2' }))).to.equal(441)
    })

    it('answers 443 to a REQUESTED-ADDRESS-FAMILY the allocation does not have', () => {
      const h = new Harness(newCore())
      h.allocate()
      expect(codeOf(h.request(Method.Refresh, (b) => b.add(RequestedAddressFamily, 6)))).to.equal(443)
    })
  })

  describe('permissions and Send/Data indications', () => {
    it('relays a Send indication only after CreatePermission, and wraps peer data in a Data indication', () => {
      const core = newCore()
      const h = new Harness(core)
      h.allocate()
      const send = new MessageBuilder(Method.Send, MessageClass.Indication).add(XorPeerAddress, PEER).add(Data, Buffer.from('hi')).build()
      expect(h.feed(send)).to.deep.equal([{ type: 'ignore', reason: 'no-permission' }])
      expect(h.request(Method.CreatePermission, (b) => b.add(XorPeerAddress, PEER)).res?.cls).to.equal(MessageClass.SuccessResponse)
      const out = relaysOf(h.feed(send))
      expect(out).to.have.length(1)
      expect(out[0].to).to.deep.equal(PEER)
      expect(Buffer.from(out[0].data).toString()).to.equal('hi')
      const back = core.handlePeer(out[0].relay, Buffer.from('yo'), PEER, h.now)
      const ind = StunMessage.decode(sendsOf(back)[0].data)
      expect(ind.method).to.equal(Method.Data)
      expect(ind.get(XorPeerAddress)).to.deep.equal(PEER)
      expect(Buffer.from(ind.get(Data) as Uint8Array).toString()).to.equal('yo')
      // Peers without a permission are not relayed.
      expect(core.handlePeer(out[0].relay, Buffer.from('x'), { address: '127.0.0.3', port: 1 }, h.now)[0]).to.include({ reason: 'no-permission' })
    })

    it('expires permissions after 300 s', () => {
      const core = newCore()
      const h = new Harness(core)
      h.allocate()
      h.request(Method.CreatePermission, (b) => b.add(XorPeerAddress, PEER))
      const send = new MessageBuilder(Method.Send, MessageClass.Indication).add(XorPeerAddress, PEER).add(Data, Buffer.from('hi')).build()
      h.now += 299_000
      expect(relaysOf(h.feed(send))).to.have.length(1)
      h.now += 2_000
      core.tick(h.now)
      expect(h.feed(send)[0]).to.include({ reason: 'no-permission' })
    })

    const peers: Array<{ peer: string, code: number }> = [
      { peer: '10.1.2.3', code: 403 },
      { peer: '169.254.169.254', code: 403 },
      { peer: '::1', code: 443 }
    ]
    for (const c of peers) {
      it(`answers ${c.code} to CreatePermission for ${c.peer}`, () => {
        const h = new Harness(newCore())
        h.allocate()
        expect(codeOf(h.request(Method.CreatePermission, (b) => b.add(XorPeerAddress, { address: c.peer, port: 1 })))).to.equal(c.code)
      })
    }

    it('answers 400 to CreatePermission without XOR-PEER-ADDRESS', () => {
      const h = new Harness(newCore())
      h.allocate()
      expect(codeOf(h.request(Method.CreatePermission))).to.equal(400)
    })

    it('drops peer traffic over the bandwidth cap and counts it', () => {
      const core = newCore({ bandwidth: 1000, bandwidthBurst: 1000 })
      const h = new Harness(core)
      h.allocate()
      h.request(Method.CreatePermission, (b) => b.add(XorPeerAddress, PEER))
      const send = new MessageBuilder(Method.Send, MessageClass.Indication).add(XorPeerAddress, PEER).add(Data, Buffer.alloc(600)).build()
      expect(relaysOf(h.feed(send))).to.have.length(1)
      expect(h.feed(send)[0]).to.include({ reason: 'bandwidth' })
      expect((core.metrics as InMemoryRelayMetrics).get('natkit_relay_dropped_total', 'bandwidth')).to.equal(1)
      h.now += 1000
      expect(relaysOf(h.feed(send))).to.have.length(1)
    })
  })

  describe('ChannelBind and ChannelData', () => {
    const channelData = (n: number, text: string): Buffer => {
      const b = Buffer.alloc(4 + text.length); b.writeUInt16BE(n, 0); b.writeUInt16BE(text.length, 2); b.write(text, 4); return b
    }

    it('binds a channel: ChannelData goes to the peer and peer data comes back as ChannelData', () => {
      const core = newCore()
      const h = new Harness(core)
      h.allocate()
      expect(h.request(Method.ChannelBind, (b) => b.add(ChannelNumber, 0x4001).add(XorPeerAddress, PEER)).res?.cls).to.equal(MessageClass.SuccessResponse)
      const out = relaysOf(h.feed(channelData(0x4001, 'abc')))
      expect(out[0].to).to.deep.equal(PEER)
      const back = sendsOf(core.handlePeer(out[0].relay, Buffer.from('xyz'), PEER, h.now))[0].data
      expect(Buffer.from(back).subarray(0, 4).toString('hex')).to.equal('40010003')
      expect(h.feed(channelData(0x4002, 'abc'))[0]).to.include({ reason: 'no-channel' })
    })

    const bad: Array<{ name: string, n: number }> = [{ name: 'below 0x4000', n: 0x3fff }, { name: 'above 0x7FFF', n: 0x8000 }]
    for (const c of bad) {
      it(`answers 400 to a channel number ${c.name}`, () => {
        const h = new Harness(newCore())
        h.allocate()
        expect(codeOf(h.request(Method.ChannelBind, (b) => b.add(ChannelNumber, c.n).add(XorPeerAddress, PEER)))).to.equal(400)
      })
    }

    it('is RFC 8656-strict (0x4000-0x4FFF) with legacyChannels false', () => {
      const h = new Harness(newCore({ legacyChannels: false }))
      h.allocate()
      expect(codeOf(h.request(Method.ChannelBind, (b) => b.add(ChannelNumber, 0x5000).add(XorPeerAddress, PEER)))).to.equal(400)
    })

    it('refuses to rebind a number or a peer differently, also for 5 minutes after expiry', () => {
      const core = newCore()
      const h = new Harness(core)
      h.allocate()
      const bind = (n: number, p: typeof PEER): number | undefined => codeOf(h.request(Method.ChannelBind, (b) => b.add(ChannelNumber, n).add(XorPeerAddress, p)))
      expect(bind(0x4001, PEER)).to.equal(undefined)
      expect(bind(0x4001, { address: '127.0.0.2', port: 7001 })).to.equal(400)
      expect(bind(0x4002, PEER)).to.equal(400)
      expect(bind(0x4001, PEER)).to.equal(undefined) // refresh is fine
      h.request(Method.Refresh, (b) => b.add(Lifetime, 3600))
      h.now += 601_000
      core.tick(h.now)
      h.nonce = undefined
      expect(bind(0x4001, { address: '127.0.0.2', port: 7001 })).to.equal(400)
      h.now += 300_000
      core.tick(h.now)
      h.nonce = undefined
      expect(bind(0x4001, { address: '127.0.0.2', port: 7001 })).to.equal(undefined)
    })

    it('answers 403 to a channel to a denied peer', () => {
      const h = new Harness(newCore())
      h.allocate()
      expect(codeOf(h.request(Method.ChannelBind, (b) => b.add(ChannelNumber, 0x4001).add(XorPeerAddress, { address: '192.168.1.1', port: 1 })))).to.equal(403)
    })
  })

  describe('expiry', () => {
    it('deletes an allocation when its lifetime runs out, closing the relay socket', () => {
      const core = newCore()
      const h = new Harness(core)
      h.allocate()
      h.now += 599_000
      expect(core.tick(h.now)).to.deep.equal([])
      h.now += 2_000
      const actions = core.tick(h.now)
      expect(actions.some(a => a.type === 'close-relay')).to.equal(true)
      expect(actions.some(a => a.type === 'event' && a.event.type === 'deallocation' && a.event.reason === 'expired')).to.equal(true)
      expect(core.stats(h.now).allocations).to.equal(0)
    })
  })

  describe('RFC 6062 TCP allocations', () => {
    const tcp = { protocol: 'tcp' as const, local: SERVER, connection: 'c1' }
    const allocTcp = (): { core: ReturnType<typeof newCore>, h: Harness, relay: string } => {
      const core = newCore()
      const h = new Harness(core, { address: '198.51.100.7', port: 40000 }, tcp)
      const r = h.request(Method.Allocate, (b) => b.add(RequestedTransport, TransportProtocol.TCP))
      const open = r.actions.find(a => a.type === 'open-relay') as Extract<RelayAction, { type: 'open-relay' }>
      expect(open.protocol).to.equal('tcp')
      expect(r.res?.cls).to.equal(MessageClass.SuccessResponse)
      return { core, h, relay: open.relay }
    }

    it('Connect → tcp-connect → success with CONNECTION-ID → ConnectionBind on a data connection → tcp-bind', () => {
      const { core, h } = allocTcp()
      const r = h.request(Method.Connect, (b) => b.add(XorPeerAddress, PEER))
      const connect = r.actions.find(a => a.type === 'tcp-connect') as Extract<RelayAction, { type: 'tcp-connect' }>
      expect(connect.peer).to.deep.equal(PEER)
      expect(codeOf(h.request(Method.Connect, (b) => b.add(XorPeerAddress, PEER)))).to.equal(446)
      const res = Harness.response(core.peerConnectResult(connect.connectionId, true, h.now))
      expect(res?.get(ConnectionId)).to.equal(connect.connectionId)
      const data = new Harness(core, { address: '198.51.100.7', port: 40001 }, { protocol: 'tcp', local: SERVER, connection: 'c2' })
      data.nonce = h.nonce
      const bound = data.request(Method.ConnectionBind, (b) => b.add(ConnectionId, connect.connectionId))
      expect(bound.res?.cls).to.equal(MessageClass.SuccessResponse)
      expect(bound.actions.some(a => a.type === 'tcp-bind' && a.connectionId === connect.connectionId)).to.equal(true)
      expect(codeOf(data.request(Method.ConnectionBind, (b) => b.add(ConnectionId, 12345)))).to.equal(400)
    })

    it('issues CONNECTION-IDs of its worker\'s class only (connectionIds), for outbound and inbound peers, and refuses bad classes', () => {
      const core = newCore({ connectionIds: { index: 2, of: 3 } })
      const h = new Harness(core, { address: '198.51.100.7', port: 40000 }, tcp)
      const r = h.request(Method.Allocate, (b) => b.add(RequestedTransport, TransportProtocol.TCP))
      const relay = (r.actions.find(a => a.type === 'open-relay') as Extract<RelayAction, { type: 'open-relay' }>).relay
      h.request(Method.CreatePermission, (b) => b.add(XorPeerAddress, PEER))
      const ids: number[] = []
      for (let port = 7000; port < 7030; port++) {
        const peer = { address: PEER.address, port }
        const c = h.request(Method.Connect, (b) => b.add(XorPeerAddress, peer)).actions.find(a => a.type === 'tcp-connect') as Extract<RelayAction, { type: 'tcp-connect' }>
        ids.push(c.connectionId)
        ids.push(core.peerConnectionAccepted(relay, { address: PEER.address, port: port + 100 }, h.now).connectionId as number)
      }
      expect(new Set(ids).size).to.equal(60)
      expect(ids.every(id => id > 0 && id <= 0xffffffff && id % 3 === 2 && connectionIdOwner(id, 3) === 2)).to.equal(true)
      for (const bad of [{ index: 3, of: 3 }, { index: 0, of: 0 }, { index: -1, of: 2 }, { index: 0.5, of: 2 }]) {
        expect(() => newCore({ connectionIds: bad }), JSON.stringify(bad)).to.throw(InvalidArgumentError)
      }
    })

    it('answers 447 when the peer connection fails or times out', () => {
      const { core, h } = allocTcp()
      const c1 = h.request(Method.Connect, (b) => b.add(XorPeerAddress, PEER)).actions.find(a => a.type === 'tcp-connect') as Extract<RelayAction, { type: 'tcp-connect' }>
      expect(Harness.errorCode(Harness.response(core.peerConnectResult(c1.connectionId, false, h.now)))).to.equal(447)
      h.request(Method.Connect, (b) => b.add(XorPeerAddress, PEER))
      h.now += 31_000
      expect(Harness.errorCode(Harness.response(core.tick(h.now)))).to.equal(447)
    })

    it('sends ConnectionAttempt for an inbound peer with a permission, refuses others', () => {
      const { core, h, relay } = allocTcp()
      expect(core.peerConnectionAccepted(relay, PEER, h.now).connectionId).to.equal(undefined)
      h.request(Method.CreatePermission, (b) => b.add(XorPeerAddress, PEER))
      const { connectionId, actions } = core.peerConnectionAccepted(relay, PEER, h.now)
      expect(connectionId).to.be.a('number')
      const ind = StunMessage.decode(sendsOf(actions)[0].data)
      expect(ind.method).to.equal(Method.ConnectionAttempt)
      expect(ind.get(ConnectionId)).to.equal(connectionId)
      h.now += 31_000
      expect(core.tick(h.now).some(a => a.type === 'tcp-close' && a.connectionId === connectionId)).to.equal(true)
    })

    it('ends the allocation when the control connection closes', () => {
      const { core, h } = allocTcp()
      const actions = core.transportClosed(h.client, h.transport, h.now)
      expect(actions.some(a => a.type === 'close-relay')).to.equal(true)
      expect(core.stats(h.now).allocations).to.equal(0)
    })
  })

  describe('robustness', () => {
    it('answers 400 to an unknown request method', () => {
      const h = new Harness(newCore())
      expect(codeOf(h.request(0x0ff))).to.equal(400)
    })

    it('never fails internally on arbitrary bytes, STUN-looking or not: no 500, no internal-error count', () => {
      const core = newCore()
      const h = new Harness(core)
      h.allocate()
      let answered = 0
      const check = (actions: RelayAction[]): void => {
        for (const a of actions) {
          if (a.type !== 'send' || a.data[0] > 3) continue
          answered++
          expect(StunMessage.decode(a.data).get(ErrorCode)?.code, 'an internal error answered as 500').to.not.equal(500)
        }
      }
      fc.assert(fc.property(fc.uint8Array({ maxLength: 200 }), fc.boolean(), (bytes, stunish) => {
        const b = Buffer.from(bytes)
        if (stunish && b.length >= 20) { b[0] &= 0x3f; b.writeUInt16BE(b.length - 20 & ~3, 2); b.writeUInt32BE(0x2112a442, 4) }
        check(core.handle(stunish && b.length >= 20 ? b.subarray(0, 20 + (b.readUInt16BE(2))) : b, h.client, h.transport, h.now))
        check(core.handlePeer('a1v4', b, PEER, h.now))
      }), { numRuns: 2000 })
      // Well-formed, authenticated requests of every TURN method whose attributes are known types with random values:
      // these reach the handlers behind authentication, where an unexpected value could throw.
      const types = [0x0003, 0x000c, 0x000d, 0x0012, 0x0013, 0x0016, 0x0017, 0x0018, 0x0019, 0x001a, 0x0022, 0x002a, 0x8000, 0x8028, 0x7fff]
      const methods = [Method.Allocate, Method.Refresh, Method.CreatePermission, Method.ChannelBind, Method.Connect, Method.ConnectionBind, Method.Binding, 0x0fff]
      fc.assert(fc.property(fc.constantFrom(...methods), fc.array(fc.tuple(fc.constantFrom(...types), fc.uint8Array({ maxLength: 24 })), { maxLength: 5 }), (method, attrs) => {
        check(h.feed(h.build(method, (m) => { for (const [type, value] of attrs) m.addRaw(type, value) })))
      }), { numRuns: 2000 })
      const m = core.metrics as InMemoryRelayMetrics
      expect(m.get('natkit_relay_malformed_total', 'internal-error')).to.equal(0)
      // Not vacuous: the requests reach the handlers and get answers.
      expect(answered).to.be.greaterThan(1000)
    })

    it('counts malformed packets by reason', () => {
      const core = newCore()
      const h = new Harness(core)
      h.feed(Buffer.from([0, 1, 0, 3, 1, 2, 3]))
      h.feed(Buffer.from([0x40, 0x01, 0x00, 0x10, 1]))
      const m = core.metrics as InMemoryRelayMetrics
      expect(m.get('natkit_relay_malformed_total', 'stun-decode')).to.equal(1)
      expect(m.get('natkit_relay_malformed_total', 'channel-data')).to.equal(1)
    })
  })
})
