import { relayPortBase } from '../../support/net.js'
import { expect } from 'chai'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { restApiPassword } from '../../../src/relay/credentials.js'
import { TurnClient } from '../../../src/relay/turn-client.js'
import type { Endpoint } from '../../../src/net/endpoint.js'
import { UdpSocket } from '../../../src/net/udp.js'
import {
  AttrType, ChannelNumber, ErrorCode, Lifetime, MessageBuilder, MessageClass, Method, Nonce, Realm, RequestedAddressFamily,
  RequestedTransport, StunMessage, TransportProtocol, Username, XorPeerAddress, XorRelayedAddress, longTermKey
} from '../../../src/stun/index.js'
import { natcheckStart } from '../../support/cli.js'
import { hasCommand, requireOrSkip } from '../../support/env.js'
import { start, type Started } from '../../support/process.js'
import { echoPeer, freePort, roundTrip, udpRequest } from '../relay/support.js'

/**
 * Attacks on a real `natcheck relay` process (and, for the integrity forgeries, on coturn's turnserver as the
 * reference), each while a legitimate client keeps relaying through the same relay: every test asserts both that
 * the attack fails and that the legitimate client is still served.
 */

const REALM = 'attack.test'
const USER = { username: 'u', password: 'p' }
const SECRET = 'rest-secret'

/** A REST username that expires in an hour. */
const restUser = (): string => `${Math.floor(Date.now() / 1000) + 3600}:mallory`

/** An attacker's raw STUN socket on a chosen loopback address. */
async function attacker (address = '127.0.0.3'): Promise<UdpSocket> {
  return await UdpSocket.bind({ address, port: 0 })
}

/** REALM and NONCE from the 401 to an unauthenticated Allocate. */
async function challenge (server: Endpoint, socket: UdpSocket): Promise<{ realm: string, nonce: string }> {
  const res = await udpRequest(server, new MessageBuilder(Method.Allocate, MessageClass.Request).add(RequestedTransport, TransportProtocol.UDP).build(), socket)
  if (res === undefined) throw new Error('no 401 challenge')
  return { realm: res.require(Realm), nonce: res.require(Nonce) }
}

/** An Allocate with USERNAME, REALM, NONCE and then `integrity` bytes as the last attribute (no FINGERPRINT). */
function forged (username: string, realm: string, nonce: string, type: number, value: Uint8Array): Buffer {
  return new MessageBuilder(Method.Allocate, MessageClass.Request).add(RequestedTransport, TransportProtocol.UDP)
    .add(Username, username).add(Realm, realm).add(Nonce, nonce).addRaw(type, value).build()
}

/** A correctly signed Allocate whose MESSAGE-INTEGRITY-SHA256 is then cut to `keep` bytes. */
function truncatedMac (username: string, password: string, realm: string, nonce: string, keep: number): Buffer {
  const full = new MessageBuilder(Method.Allocate, MessageClass.Request).add(RequestedTransport, TransportProtocol.UDP)
    .add(Username, username).add(Realm, realm).add(Nonce, nonce).integritySha256(longTermKey(username, realm, password, 'md5')).build()
  const at = full.length - 36
  const out = Buffer.concat([full.subarray(0, at + 4), full.subarray(at + 4, at + 4 + keep), Buffer.alloc((4 - (keep & 3)) & 3)])
  out.writeUInt16BE(keep, at + 2)
  out.writeUInt16BE(out.length - 20, 2)
  return out
}

function codeOf (m: StunMessage | undefined): number | 'success' | 'no answer' {
  if (m === undefined) return 'no answer'
  if (m.cls === MessageClass.SuccessResponse) return 'success'
  return m.get(ErrorCode)?.code ?? 0
}

/** Every forged-integrity variant: its name and how to build it from the challenge's REALM and NONCE. */
function forgeries (restUser: () => string): Array<{ name: string, build: (realm: string, nonce: string) => Buffer }> {
  const list: Array<{ name: string, build: (realm: string, nonce: string) => Buffer }> = []
  for (const who of ['static user', 'REST user'] as const) {
    const user = (): string => who === 'static user' ? USER.username : restUser()
    const password = (name: string): string => who === 'static user' ? USER.password : restApiPassword(SECRET, name)
    for (const [type, lengths] of [[AttrType.MessageIntegritySha256, [0, 4, 12, 16, 32, 36]], [AttrType.MessageIntegrity, [0, 4, 19, 20, 21]]] as const) {
      for (const length of lengths) {
        const name = type === AttrType.MessageIntegrity ? 'MESSAGE-INTEGRITY' : 'MESSAGE-INTEGRITY-SHA256'
        list.push({ name: `${who}: zeroed ${name} of ${length} bytes`, build: (r, n) => forged(user(), r, n, type, Buffer.alloc(length)) })
      }
    }
    list.push({ name: `${who}: the real MESSAGE-INTEGRITY-SHA256 truncated to 8 bytes`, build: (r, n) => { const u = user(); return truncatedMac(u, password(u), r, n, 8) } })
  }
  return list
}

describe('attacks on natcheck relay (real process) while a legitimate client relays', function () {
  this.timeout(60_000)
  let relay: Started
  let port = 0
  let adminPort = 0
  let rendezvousPort = 0
  let peer: Awaited<ReturnType<typeof echoPeer>>
  let legit: TurnClient
  const server = (): Endpoint => ({ address: '127.0.0.1', port })

  before(async function () {
    port = await freePort(); adminPort = await freePort(); rendezvousPort = await freePort()
    const base = relayPortBase()
    // A wildcard listener: the peer policy must treat 0.0.0.0 as every local address.
    relay = await natcheckStart(['relay', '--listen', `0.0.0.0:${port}`, '--listen', `[::1]:${port}`, '--relay-ip', '127.0.0.1',
      '--realm', REALM, '--user', `${USER.username}:${USER.password}`, '--auth-secret', SECRET, '--ports', `${base}-${base + 199}`,
      '--allow-peer', '127.0.0.0/8', '--allow-peer', '::1/128', '--admin', `127.0.0.1:${adminPort}`, '--rendezvous', `127.0.0.1:${rendezvousPort}`],
    /admin http:/)
    peer = await echoPeer()
    legit = await TurnClient.allocate({ server: `127.0.0.1:${port}`, credentials: USER, localAddress: '127.0.0.1' })
    expect(await roundTrip(legit, peer.endpoint, 20)).to.equal(20)
  })
  after(async () => {
    await legit?.close()
    await peer?.close()
    await relay?.stop()
  })

  /** The legitimate client still relays every datagram. */
  async function legitStillServed (): Promise<void> {
    expect(await roundTrip(legit, peer.endpoint, 30), 'the legitimate client lost datagrams').to.equal(30)
  }

  describe('forged, truncated and zeroed integrity', () => {
    // Each forgery from its own address: a source that echoes its nonce and keeps failing is rate-limited (no answer).
    for (const [i, f] of forgeries(restUser).entries()) {
      it(`refuses ${f.name}`, async () => {
        const s = await attacker(`127.0.1.${i + 1}`)
        try {
          const { realm, nonce } = await challenge(server(), s)
          const res = await udpRequest(server(), f.build(realm, nonce), s)
          const code = codeOf(res)
          expect(code, 'a forged integrity attribute was accepted').to.not.equal('success')
          expect([400, 401]).to.include(code)
          expect(res?.get(XorRelayedAddress)).to.equal(undefined)
        } finally { await s.close() }
        await legitStillServed()
      })
    }

    it('refuses a correctly signed REST username whose expiry is years ahead (99999999999:mallory)', async () => {
      const s = await attacker()
      try {
        const { realm, nonce } = await challenge(server(), s)
        const username = '99999999999:mallory'
        const req = new MessageBuilder(Method.Allocate, MessageClass.Request).add(RequestedTransport, TransportProtocol.UDP)
          .add(Username, username).add(Realm, realm).add(Nonce, nonce).integrity(longTermKey(username, realm, restApiPassword(SECRET, username), 'md5')).build()
        expect(codeOf(await udpRequest(server(), req, s))).to.equal(401)
        // The same request with a sane expiry is accepted: the refusal is the expiry, not the signature.
        const ok = restUser()
        const good = new MessageBuilder(Method.Allocate, MessageClass.Request).add(RequestedTransport, TransportProtocol.UDP).add(Lifetime, 0)
          .add(Username, ok).add(Realm, realm).add(Nonce, nonce).integrity(longTermKey(ok, realm, restApiPassword(SECRET, ok), 'md5')).build()
        const answer = codeOf(await udpRequest(server(), good, s))
        expect(answer).to.equal('success')
      } finally { await s.close() }
      await legitStillServed()
    })

    it('refuses a signed request replayed from another address (nonce bound to the sender\'s IP)', async () => {
      const victim = await attacker('127.0.0.1')
      const replayer = await attacker('127.0.0.4')
      try {
        const { realm, nonce } = await challenge(server(), victim)
        const req = new MessageBuilder(Method.Allocate, MessageClass.Request).add(RequestedTransport, TransportProtocol.UDP)
          .add(Username, USER.username).add(Realm, realm).add(Nonce, nonce).integrity(longTermKey(USER.username, realm, USER.password, 'md5')).build()
        const replayed = await udpRequest(server(), req, replayer)
        expect(codeOf(replayed)).to.equal(438)
        expect(replayed?.get(XorRelayedAddress)).to.equal(undefined)
      } finally { await victim.close(); await replayer.close() }
      await legitStillServed()
    })

    it('survives truncated and garbage datagrams of every length', async () => {
      const s = await attacker()
      try {
        const { realm, nonce } = await challenge(server(), s)
        const req = truncatedMac(USER.username, USER.password, realm, nonce, 32)
        for (let cut = 0; cut < req.length; cut += 3) s.send(req.subarray(0, cut), server())
        for (let n = 1; n <= 64; n++) s.send(Buffer.alloc(n, n), server())
      } finally { await s.close() }
      await legitStillServed()
    })
  })

  describe('spoofed-source authentication failures cannot lock a victim out', () => {
    it('failures sent from the victim\'s IP without its nonce are not charged to it; a proven source is limited', async () => {
      const spoofer = await attacker('127.0.0.2')
      const elsewhere = await attacker('127.0.0.5')
      const guesser = await attacker('127.0.0.6')
      try {
        // The spoofer cannot read the victim's 401s: it only has nonces issued to another address.
        const foreign = await challenge(server(), elsewhere)
        for (let i = 0; i < 100; i++) spoofer.send(forged(USER.username, foreign.realm, foreign.nonce, AttrType.MessageIntegrity, Buffer.alloc(20, i)), server())
        await new Promise(resolve => setTimeout(resolve, 300))
        // The victim on 127.0.0.2 allocates and relays.
        const victim = await TurnClient.allocate({ server: `127.0.0.1:${port}`, credentials: USER, localAddress: '127.0.0.2' })
        try { expect(await roundTrip(victim, peer.endpoint, 20)).to.equal(20) } finally { await victim.close() }
        // Control: a guesser that proves its address (echoes its own nonce) is cut off after the burst (20).
        const own = await challenge(server(), guesser)
        let answered = 0
        for (let i = 0; i < 40; i++) {
          const res = await udpRequest(server(), forged(USER.username, own.realm, own.nonce, AttrType.MessageIntegrity, Buffer.alloc(20, i)), guesser, 150)
          if (res !== undefined) answered++
        }
        expect(answered).to.be.within(15, 25)
      } finally { await spoofer.close(); await elsewhere.close(); await guesser.close() }
      await legitStillServed()
    })
  })

  describe('peer policy behind a wildcard listener', () => {
    /** A signed request from a raw socket as user u (handles the 401). */
    async function signed (s: UdpSocket, to: Endpoint, method: number, add: (b: MessageBuilder) => void): Promise<StunMessage | undefined> {
      const { realm, nonce } = await challenge(to, s)
      const b = new MessageBuilder(method, MessageClass.Request)
      add(b)
      b.add(Username, USER.username).add(Realm, realm).add(Nonce, nonce).integrity(longTermKey(USER.username, realm, USER.password, 'md5'))
      return await udpRequest(to, b.fingerprint().build(), s)
    }

    it('never binds a channel to the relay\'s own listener (on any local address), admin or rendezvous port, despite --allow-peer', async () => {
      const s = await attacker('127.0.0.7')
      try {
        expect(codeOf(await signed(s, server(), Method.Allocate, b => b.add(RequestedTransport, TransportProtocol.UDP)))).to.equal('success')
        let channel = 0x4000
        const bind = async (peerEp: Endpoint): Promise<ReturnType<typeof codeOf>> =>
          codeOf(await signed(s, server(), Method.ChannelBind, b => b.add(ChannelNumber, channel++).add(XorPeerAddress, peerEp)))
        // Not vacuous: an ordinary loopback peer (allowed by --allow-peer) is bound.
        expect(await bind(peer.endpoint)).to.equal('success')
        for (const target of [
          { address: '127.0.0.1', port }, { address: '127.0.0.9', port }, { address: '127.0.0.1', port: adminPort },
          { address: '127.0.0.1', port: rendezvousPort }
        ]) {
          expect(await bind(target), `${target.address}:${target.port}`).to.equal(403)
        }
      } finally { await s.close() }
      await legitStillServed()
    })

    it('denies 6to4, Teredo, SIIT and the 6to4 relay anycast as peers', async () => {
      const s4 = await attacker('127.0.0.8')
      const s6 = await UdpSocket.bind({ address: '::1', port: 0 })
      const server6: Endpoint = { address: '::1', port }
      try {
        expect(codeOf(await signed(s4, server(), Method.Allocate, b => b.add(RequestedTransport, TransportProtocol.UDP)))).to.equal('success')
        expect(codeOf(await signed(s4, server(), Method.CreatePermission, b => b.add(XorPeerAddress, { address: '192.88.99.1', port: 0 })))).to.equal(403)
        expect(codeOf(await signed(s6, server6, Method.Allocate, b => b.add(RequestedTransport, TransportProtocol.UDP).add(RequestedAddressFamily, 6)))).to.equal('success')
        // Not vacuous: an allowed IPv6 peer gets its permission.
        expect(codeOf(await signed(s6, server6, Method.CreatePermission, b => b.add(XorPeerAddress, { address: '::1', port: 0 })))).to.equal('success')
        for (const address of ['2002:c000:204::1', '2001:0:4136:e378:8000:63bf:3fff:fdd2', '::ffff:0:7f00:1', '::ffff:0:c000:201']) {
          expect(codeOf(await signed(s6, server6, Method.CreatePermission, b => b.add(XorPeerAddress, { address, port: 0 }))), address).to.equal(403)
        }
      } finally { await s4.close(); await s6.close() }
      await legitStillServed()
    })
  })
})

describe('coturn (reference) on the same forged-integrity attacks', function () {
  this.timeout(60_000)
  let coturn: Started
  let port = 0
  let dir = ''
  before(async function () {
    requireOrSkip(this, hasCommand('turnserver'), 'coturn is not installed (apt-get install coturn)')
    port = await freePort()
    dir = mkdtempSync(join(tmpdir(), 'natkit-attack-coturn-'))
    coturn = await start('turnserver', ['-c', '/dev/null', '-n', '--no-cli', '--listening-ip', '127.0.0.1', '--relay-ip', '127.0.0.1',
      '--listening-port', String(port), '--realm', REALM, '--lt-cred-mech', '--user', `${USER.username}:${USER.password}`,
      '--no-tls', '--no-dtls', '--simple-log', '--log-file', 'stdout', '--min-port', '51000', '--max-port', '51199', '--pidfile', join(dir, 'pid')],
    { ready: /Total (UDP|General) servers|IPv4. UDP listener opened/, timeoutMs: 10_000 })
  })
  after(async () => {
    await coturn?.stop()
    if (dir !== '') rmSync(dir, { recursive: true, force: true })
  })

  for (const f of forgeries(restUser).filter(x => x.name.startsWith('static'))) {
    it(`coturn refuses ${f.name} too`, async () => {
      const s = await attacker()
      try {
        const server: Endpoint = { address: '127.0.0.1', port }
        const { realm, nonce } = await challenge(server, s)
        const code = codeOf(await udpRequest(server, f.build(realm, nonce), s))
        expect(code).to.not.equal('success')
      } finally { await s.close() }
    })
  }
})
