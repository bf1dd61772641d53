import { expect } from 'chai'
import { readdirSync } from 'node:fs'
import { SocketAddress } from 'node:net'
import { TransportError } from '../../../src/errors.js'
import { BatchUdpSocket, formatAddress } from '../../../src/net/batch-udp.js'
import { ipToBytes } from '../../../src/net/ip.js'
import { bindDatagramSocket, nativeUdpAvailable, nativeUdpUnavailableReason, wantsNativeUdp } from '../../../src/net/native.js'
import { UdpSocket } from '../../../src/net/udp.js'
import { expectRejection } from '../../support/assert.js'
import { requireOrSkip } from '../../support/env.js'

const BUILD_HINT = (): string => `native UDP addon unavailable (${nativeUdpUnavailableReason() ?? ''}); build it with node scripts/build-native.mjs -v (needs g++, make, python3 and Node headers)`

describe('BatchUdpSocket', () => {
  describe('formatAddress', () => {
    // Expected text: what node:dgram reports (libuv's inet_ntop), which SocketAddress also uses.
    const cases = ['127.0.0.1', '0.0.0.0', '255.255.255.255', '::', '::1', '::ffff:127.0.0.1', '::ffff:0.0.0.0',
      '::1.2.3.4', '2001:db8::1', '2001:db8:0:0:1:0:0:1', '2001:db8:0:1:1:1:1:1', 'fe80::1', '::1:ffff:102:304', 'ffff::']
    for (const text of cases) {
      it(`formats ${text} as Node does`, () => {
        const bytes = ipToBytes(text)
        const family = bytes.length === 4 ? 4 : 6
        const padded = Buffer.alloc(24)
        padded.set(bytes, 8)
        const expected = new SocketAddress({ address: text, family: family === 4 ? 'ipv4' : 'ipv6' }).address
        expect(formatAddress(family, padded, 8)).to.equal(expected)
      })
    }
  })

  describe('bindDatagramSocket', () => {
    let saved: string | undefined
    beforeEach(() => { saved = process.env.NATKIT_NATIVE })
    afterEach(() => { if (saved === undefined) delete process.env.NATKIT_NATIVE; else process.env.NATKIT_NATIVE = saved })

    it('says why the native socket is unavailable, or nothing when it is available', () => {
      if (nativeUdpAvailable()) expect(nativeUdpUnavailableReason()).to.equal(undefined)
      else expect(nativeUdpUnavailableReason()).to.be.a('string').and.not.equal('')
    })

    it('uses node:dgram when asked to (native: false)', async () => {
      const s = await bindDatagramSocket({ address: '127.0.0.1', native: false })
      try { expect(s).to.be.instanceOf(UdpSocket) } finally { await s.close() }
    })

    it('uses node:dgram when NATKIT_NATIVE=0', async () => {
      process.env.NATKIT_NATIVE = '0'
      expect(wantsNativeUdp()).to.equal(false)
      const s = await bindDatagramSocket({ address: '127.0.0.1' })
      try { expect(s).to.be.instanceOf(UdpSocket) } finally { await s.close() }
    })

    it('uses the native socket when it is built', async function () {
      requireOrSkip(this, nativeUdpAvailable(), BUILD_HINT())
      delete process.env.NATKIT_NATIVE
      const s = await bindDatagramSocket({ address: '127.0.0.1' })
      try { expect(s).to.be.instanceOf(BatchUdpSocket) } finally { await s.close() }
    })
  })

  describe('bind', () => {
    before(function () { requireOrSkip(this, nativeUdpAvailable(), BUILD_HINT()) })

    const bad = [
      { name: 'a host name', options: { address: 'localhost' } },
      { name: 'a port out of range', options: { address: '127.0.0.1', port: 70000 } },
      { name: 'a non-local address', options: { address: '192.0.2.1' } },
      { name: 'a negative buffer size', options: { address: '127.0.0.1', bufferSize: -1 } }
    ]
    for (const c of bad) {
      it(`rejects ${c.name} with TransportError`, async () => {
        await expectRejection(BatchUdpSocket.bind(c.options), TransportError)
      })
    }

    it('rejects a port in use with TransportError naming EADDRINUSE', async () => {
      const a = await BatchUdpSocket.bind({ address: '127.0.0.1' })
      try {
        const err = await expectRejection(BatchUdpSocket.bind({ address: '127.0.0.1', port: a.local.port }), TransportError)
        expect(err.message).to.include('EADDRINUSE')
      } finally { await a.close() }
    })

    it('reports the bound address from getsockname', async () => {
      for (const address of ['127.0.0.1', '::1', '::', '0.0.0.0']) {
        const s = await BatchUdpSocket.bind({ address })
        try {
          expect(s.local.address).to.equal(address)
          expect(s.local.port).to.be.within(1, 65535)
        } finally { await s.close() }
      }
    })

    it('starts with zero counters', async () => {
      const s = await BatchUdpSocket.bind({ address: '127.0.0.1' })
      try {
        expect(s.stats()).to.deep.equal({
          received: 0, receiveBatches: 0, receiveTruncated: 0, receiveErrors: 0, sent: 0, sendBatches: 0, sendDrops: 0, sendErrors: 0,
          gsoMessages: 0, gsoDatagrams: 0
        })
      } finally { await s.close() }
    })

    it('releases its file descriptor, poll handle and port on close, over many open/close cycles', async () => {
      const fds = (): number => readdirSync('/proc/self/fd').length
      const handles = (): number => process.getActiveResourcesInfo().length
      // One cycle first: the shared arena and the addon are created on first use and stay.
      const warm = await BatchUdpSocket.bind({ address: '127.0.0.1' })
      warm.send(Buffer.from('x'), warm.local)
      await warm.close()
      const [fdsBefore, handlesBefore] = [fds(), handles()]
      const ports = new Set<number>()
      for (let i = 0; i < 200; i++) {
        const s = await BatchUdpSocket.bind({ address: '127.0.0.1' })
        expect(fds()).to.equal(fdsBefore + 1)
        s.send(Buffer.from('x'), s.local)
        ports.add(s.local.port)
        await s.close()
      }
      await new Promise<void>(resolve => { setImmediate(resolve) })
      expect(fds()).to.equal(fdsBefore)
      expect(handles()).to.be.at.most(handlesBefore)
      // Closed sockets gave their ports back: a node:dgram socket can bind each of a sample of them.
      for (const port of [...ports].slice(0, 10)) {
        const d = await UdpSocket.bind({ address: '127.0.0.1', port })
        await d.close()
      }
    })
  })
})
