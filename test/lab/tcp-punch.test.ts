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
import { WORKER_PATH, type PeerWorkerResult, type PeerTask } from '../../src/lab/worker.js'
import { requireLab } from './support/lab-helpers.js'

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
      const s = lab.services
      if (s === undefined) throw new Error('the lab has no servers')
      const task = (me: string, peer: string): PeerTask => ({
        task: 'peer', rendezvous: s.rendezvous, id: me, peer, secret: s.secret, turn: turn ? s.turn : [], count: COUNT, timeoutMs: 20_000, settleMs: 6000,
        stun: [`${lab.info.server.primaryIp}:${LAB_STUN_PORT}`],
        ...(punch ? { tcpSimultaneousOpen: true } : {})
      })
      const one = async (site: 'a' | 'b', t: PeerTask): Promise<PeerWorkerResult> => {
        const r = await lab.exec(site, [process.execPath, WORKER_PATH, JSON.stringify(t)], { timeoutMs: 60_000 })
        try { return JSON.parse(r.stdout) as PeerWorkerResult } catch { throw new Error(`peer ${site} printed no result: ${r.stderr.slice(-600)}`) }
      }
      return await Promise.all([one('a', task(`${run}-a`, `${run}-b`)), one('b', task(`${run}-b`, `${run}-a`))])
    }

    it('relays (TURN over TCP) without the option', async () => {
      const [a, b] = await run('off', false, true)
      const where = JSON.stringify({ a, b })
      expect(a.error, where).to.equal(null)
      expect(b.error, where).to.equal(null)
      expect(a.path?.type, where).to.equal('relay')
      expect(b.path?.type, where).to.equal('relay')
      expect(a.tcpPunch, where).to.equal(undefined)
      expect(a.delivered, where).to.equal(COUNT)
      expect(b.delivered, where).to.equal(COUNT)
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
