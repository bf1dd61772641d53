/**
 * TCP simultaneous open on real kernel NATs (`tcpSimultaneousOpen`, RFC 6544 `so` candidates): a tcp-only site
 * (UDP dropped, outbound TCP NATed with its source port kept, stateful) against another tcp-only site and against a
 * port-restricted cone. Without the option the pair relays (TURN over TCP); with it both peers learn their public TCP
 * endpoint over STUN/TCP, connect() to each other's at the coordinated moment, authenticate the stream with an ICE
 * check and exchange datagrams over it — directly, NAT to NAT, also when no TURN server is given at all.
 */
import { expect } from 'chai'
import { Lab, labDown, LAB_STUN_PORT } from '../../src/lab/index.js'
import type { LabNatType } from '../../src/lab/index.js'
import { pairWithCli } from '../../src/lab/pair-cli.js'
import type { PeerWorkerResult } from '../../src/lab/worker.js'
import { expectRelayed, requireLab, runLabPeers } from './support/lab-helpers.js'

const COUNT = 10

for (const [natB, tag] of [['tcp-only', 't'], ['port-restricted-cone', 'c']] as Array<[LabNatType, string]>) {
  describe(`lab: TCP simultaneous open (tcp-only × ${natB})`, function () {
    this.timeout(180_000)
    const prefix = `nktp-${tag}${process.pid % 10000}-`
    let lab: Lab

    before(async function () {
      requireLab(this, false)
      lab = await Lab.up({ natA: 'tcp-only', natB, servers: true, prefix })
    })
    after(async () => { await labDown(prefix) })

    /** Both peers through the lab's rendezvous, with TURN (UDP and TCP) or none, the TCP punch on or off. */
    const run = async (run: string, punch: boolean, turn: boolean): Promise<[PeerWorkerResult, PeerWorkerResult]> => {
      const extra = { turn: turn ? lab.services?.turn ?? [] : [], settleMs: 6000, stun: [`${lab.info.server.primaryIp}:${LAB_STUN_PORT}`], ...(punch ? { tcpSimultaneousOpen: true } : {}) }
      return await runLabPeers(lab, run, COUNT, { a: extra, b: extra })
    }

    it('natcheck pair, fed both sites\' real reports, names TCP simultaneous open first', async () => {
      const r = await pairWithCli(lab)
      expect(r.code, r.stderr).to.equal(0)
      const p = r.prediction
      expect(p, r.stdout).to.not.equal(undefined)
      expect(p?.a, r.stdout).to.equal('udp-blocked')
      expect(p?.strategy, r.stdout).to.equal('relay-tcp')
      expect(p?.alternatives[0], r.stdout).to.equal('tcp-simultaneous-open')
      expect(p?.costs?.['tcp-simultaneous-open'], r.stdout).to.match(/connect\(\) per side/)
    })

    it('relays (TURN over TCP) without the option', async () => {
      expectRelayed(await run('off', false, true), COUNT, 'tcpPunch')
    })

    it('connects directly over TCP with the option, each side reaching the other NAT\'s public TCP endpoint', async () => {
      const [a, b] = await run('on', true, true)
      const where = JSON.stringify({ a, b })
      expect(a.error, where).to.equal(null)
      expect(b.error, where).to.equal(null)
      for (const [me, peer, peerWan] of [[a, b, lab.info.b.wanIp], [b, a, lab.info.a.wanIp]] as const) {
        expect(me.tcpPunch?.result, where).to.equal('tcp-so-connected')
        expect(me.path?.type, where).to.equal('direct')
        expect(me.transport, where).to.equal('tcp')
        // The remote end is the peer's NAT: its public address and the port its STUN/TCP mapping reported.
        expect(me.path?.remote, where).to.equal(`srflx ${peerWan}:${(peer.tcpPunch?.mapping?.mapped ?? '').split(':')[1]}`)
        expect(peer.tcpPunch?.mapping?.mapped.startsWith(`${peerWan}:`), where).to.equal(true)
        expect(me.delivered, where).to.equal(COUNT)
      }
      // The tcp-only NAT keeps the source port: the public port is the local one.
      const [local, mapped] = [a.tcpPunch?.mapping?.local.split(':')[1], a.tcpPunch?.mapping?.mapped.split(':')[1]]
      expect(mapped, where).to.equal(local)
    })

    it('connects with no TURN server at all: the datagrams cannot have gone through a relay', async () => {
      const [a, b] = await run('noturn', true, false)
      const where = JSON.stringify({ a, b })
      expect(a.error, where).to.equal(null)
      expect(b.error, where).to.equal(null)
      expect(a.path?.type, where).to.equal('direct')
      expect(b.path?.type, where).to.equal('direct')
      expect(a.transport, where).to.equal('tcp')
      expect(a.delivered, where).to.equal(COUNT)
      expect(b.delivered, where).to.equal(COUNT)
    })
  })
}

/** Both peers with the TCP punch (TURN over UDP and TCP available), in a fresh lab of the given pair. */
async function punchPair (lab: Lab, tag: string, settleMs: number): Promise<[PeerWorkerResult, PeerWorkerResult]> {
  const extra = { turn: lab.services?.turn ?? [], settleMs, stun: [`${lab.info.server.primaryIp}:${LAB_STUN_PORT}`], tcpSimultaneousOpen: true }
  return await runLabPeers(lab, tag, COUNT, { a: extra, b: extra })
}

describe('lab: TCP simultaneous open against the other cones and an open host', function () {
  this.timeout(120_000)
  for (const [natB, tag] of [['full-cone', 'f'], ['restricted-cone', 'r'], ['none', 'n']] as Array<[LabNatType, string]>) {
    it(`tcp-only × ${natB} goes direct over TCP`, async function () {
      requireLab(this, false)
      const prefix = `nktp-${tag}${process.pid % 10000}-`
      try {
        const lab = await Lab.up({ natA: 'tcp-only', natB, servers: true, prefix })
        const [a, b] = await punchPair(lab, 'x', 6000)
        const where = JSON.stringify({ a, b })
        expect(a.error, where).to.equal(null)
        expect(b.error, where).to.equal(null)
        expect(a.transport, where).to.equal('tcp')
        expect(b.transport, where).to.equal('tcp')
        expect(a.path?.remote, where).to.equal(`srflx ${b.tcpPunch?.mapping?.mapped ?? '?'}`)
        expect(b.path?.remote, where).to.equal(`srflx ${lab.info.a.wanIp}:${(a.tcpPunch?.mapping?.mapped ?? '').split(':')[1]}`)
        expect(a.delivered + b.delivered, where).to.equal(2 * COUNT)
      } finally { await labDown(prefix) }
    })
  }
})

describe('lab: TCP simultaneous open cannot open tcp-only × symmetric', function () {
  this.timeout(120_000)
  const prefix = `nktp-s${process.pid % 10000}-`
  after(async () => { await labDown(prefix) })

  it('times out every attempt (the symmetric NAT gives the punch connection a port the peer never learnt) and relays', async function () {
    requireLab(this, false)
    const lab = await Lab.up({ natA: 'tcp-only', natB: 'symmetric', servers: true, prefix })
    // Settle long enough for all three attempts (3 × 2.5 s and the pacing between them) to end.
    const [a, b] = await punchPair(lab, 'sym', 15_000)
    const where = JSON.stringify({ a, b })
    expectRelayed([a, b], COUNT)
    for (const me of [a, b]) {
      expect(me.tcpPunch?.attempts.map(x => `${x.n} ${x.outcome}`), where).to.deep.equal(['1 tcp-so-timeout', '2 tcp-so-timeout', '3 tcp-so-timeout'])
      expect(me.tcpPunch?.result, where).to.equal('tcp-so-timeout')
    }
    // B's STUN/TCP mapping came from another connection than its punch: fully random ports differ per connection.
    expect(b.tcpPunch?.mapping?.mapped.startsWith(`${lab.info.b.wanIp}:`), where).to.equal(true)
  })
})
