import { expect } from 'chai'
import { spawn, type ChildProcess } from 'node:child_process'
import { CLI, natcheck, natcheckStart } from '../support/cli.js'
import { relayPortBase } from '../support/net.js'
import type { Started } from '../support/process.js'
import { freePort } from '../integration/relay/support.js'
import { RendezvousServer } from '../../src/rendezvous/server.js'

const SECRET = 'failover-test'
const sleep = async (ms: number): Promise<void> => { await new Promise((resolve) => setTimeout(resolve, ms)) }

interface Peer { child: ChildProcess, out: () => string, err: () => string, exit: Promise<number | null> }

function peer (args: string[]): Peer {
  const child = spawn(process.execPath, [CLI, 'connect', '--auth-secret', SECRET, '--local-address', '127.0.0.1', '--include-loopback', ...args], { env: { ...process.env, NO_COLOR: '1' }, stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''; let err = ''
  child.stdout?.on('data', (d: Buffer) => { out += d.toString() })
  child.stderr?.on('data', (d: Buffer) => { err += d.toString() })
  const exit = new Promise<number | null>(resolve => child.on('exit', (code) => { resolve(code) }))
  return { child, out: () => out, err: () => err, exit }
}

/** natcheck connect --turn A --turn-failover B: relay node A is killed with SIGKILL while the session runs. */
describe('natcheck connect --turn-failover (CLI)', function () {
  this.timeout(120_000)
  const started: Started[] = []
  const peers: Peer[] = []
  let rendezvous: RendezvousServer | undefined
  after(async () => {
    for (const p of peers) if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGKILL')
    for (const s of started) await s.stop()
    await rendezvous?.close()
  })

  it('moves the relayed candidate to the failover node and the echo goes on through it', async () => {
    const port = await freePort()
    const nodes: Started[] = []
    for (const ip of ['127.0.0.2', '127.0.0.3']) {
      const base = relayPortBase(100)
      const s = await natcheckStart(['relay', '--listen', `${ip}:${port}`, '--ports', `${base}-${base + 99}`, '--realm', 'natkit.test', '--auth-secret', SECRET,
        '--allow-peer', '127.0.0.0/8', '--workers', '1'], /listening udp/)
      started.push(s); nodes.push(s)
    }
    rendezvous = await RendezvousServer.start({ listen: { address: '127.0.0.1', port: 0 }, authSecret: SECRET })
    // 3000 echo pings, one every 5 ms or more: the exchange lasts 15 s or more, and node A dies early in it.
    const common = ['--rendezvous', rendezvous.url ?? '', '--count', '3000', '--settle', '1', '--timeout', '20000']
    const alice = peer([...common, '--id', 'alice', '--peer', 'bob', '--relay-only', '--turn', `127.0.0.2:${port}`,
      '--turn-failover', `127.0.0.3:${port}`, '--turn-failover-check', '1'])
    const bob = peer([...common, '--id', 'bob', '--peer', 'alice'])
    peers.push(alice, bob)

    // Connected over node A (127.0.0.2); then A dies without a word.
    const end = Date.now() + 30_000
    while (!/connected \(/.test(alice.err()) && alice.child.exitCode === null && Date.now() < end) await sleep(50)
    expect(alice.err()).to.match(/connected \(\w+\) in \d+ ms over a relay path/)
    nodes[0].child.kill('SIGKILL')

    const [aliceCode, bobCode] = await Promise.all([alice.exit, bob.exit])
    // The relayed candidate moved to node B (within a probe interval and its 3 s timeout), the peer was told, and
    // the echo went on through B: more than half of the pings came back, while A carried only the first second or
    // so of them. Without failover, nothing comes back after the kill.
    expect(alice.err(), alice.err()).to.match(/path is now relay: 127\.0\.0\.3:\d+ →/)
    const delivered = (p: Peer): number => Number(/echo\s+(\d+)\/3000 delivered/.exec(p.out())?.[1] ?? -1)
    console.log(`      echo delivered: alice ${delivered(alice)}/3000, bob ${delivered(bob)}/3000 (node A killed in the first second)`)
    expect(delivered(alice), alice.out() + alice.err()).to.be.at.least(1500)
    expect(delivered(bob), bob.out() + bob.err()).to.be.at.least(1500)
    expect([aliceCode, bobCode]).to.deep.equal([0, 0])
  })

  it('refuses a failover node no --turn server can move to, and one without --turn', async () => {
    const tcp = await natcheck(['connect', '--manual', '--auth-secret', SECRET, '--turn', '127.0.0.1:3478', '--turn-failover', 'turn:127.0.0.1:3479?transport=tcp'])
    expect(tcp.code).to.equal(1)
    expect(tcp.stderr).to.match(/--turn-failover 127\.0\.0\.1:3479 is reached over TCP, but no --turn server is/)
    const alone = await natcheck(['connect', '--manual', '--auth-secret', SECRET, '--turn-failover', '127.0.0.1:3479'])
    expect(alone.code).to.equal(1)
    expect(alone.stderr).to.match(/--turn-failover needs --turn/)
    const check = await natcheck(['connect', '--manual', '--auth-secret', SECRET, '--turn', '127.0.0.1:3478', '--turn-failover', '127.0.0.1:3479', '--turn-failover-check', '0'])
    expect(check.code).to.equal(1)
    expect(check.stderr).to.match(/--turn-failover-check must be a positive number of seconds/)
  })
})
