import { expect } from 'chai'
import { spawnSync } from 'node:child_process'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { loadNativeUdp, nativeUdpAvailable, nativeUdpUnavailableReason } from '../../../src/net/native.js'
import { hasCommand, isRoot, requireOrSkip } from '../../support/env.js'

const CHILD = join(dirname(fileURLToPath(import.meta.url)), 'gso-mtu-child.js')
const MTU = 1300

describe('TurnServer fast path: a UDP GSO message the kernel refuses (segments over the MTU)', function () {
  this.timeout(30_000)

  it('sends those datagrams one by one, all of them intact and in order, and still uses GSO for smaller ones', function () {
    requireOrSkip(this, nativeUdpAvailable(), `native UDP addon unavailable (${nativeUdpUnavailableReason() ?? ''})`)
    requireOrSkip(this, typeof loadNativeUdp()?.setGso === 'function', 'the native addon was built without UDP GSO')
    requireOrSkip(this, isRoot() && hasCommand('unshare') && hasCommand('ip'), 'needs root, unshare and ip (a network namespace of its own)')
    // A fresh network namespace (gone with the process): only its loopback, with a small MTU.
    const r = spawnSync('unshare', ['--net', '--', 'sh', '-c', `ip link set lo mtu ${MTU} up && exec "$0" "$1"`, process.execPath, CHILD],
      { encoding: 'utf8', timeout: 25_000 })
    expect(r.status, `child failed: ${r.stderr}`).to.equal(0)
    const out = JSON.parse(r.stdout.trim().split('\n').pop() ?? '{}') as {
      fastPath: boolean, mtu: number, sent: number[], received: number[], intact: boolean,
      relay: { sent: number, sendErrors: number, sendDrops: number, gsoMessages: number, gsoDatagrams: number }
    }
    expect(out.fastPath).to.equal(true)
    expect(out.mtu).to.equal(MTU)
    expect(out.received, 'sizes at the peer, in order').to.deep.equal(out.sent)
    expect(out.intact, 'every datagram intact').to.equal(true)
    // 1400-byte datagrams cannot be GSO segments under a 1300-byte MTU: the first run (20 of them and the first
    // 100-byte one, a run may end shorter) is refused and sent one by one (the kernel fragments each 1400-byte one, as
    // it would any datagram); the last run is not tried as GSO again; the other 19 100-byte ones leave as one GSO message.
    expect(out.relay).to.deep.equal({ sent: 60, sendErrors: 0, sendDrops: 0, gsoMessages: 1, gsoDatagrams: 19 })
  })
})
