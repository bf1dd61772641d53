import { expect } from 'chai'
import { Agent, type PathInfo } from '../../../src/traversal/index.js'

async function until (cond: () => boolean, ms: number): Promise<void> {
  const deadline = Date.now() + ms
  while (!cond() && Date.now() < deadline) await new Promise(resolve => setTimeout(resolve, 5))
}

describe('Agent: ICE restart (RFC 8445 §9), loopback', function () {
  this.timeout(20_000)

  it('keeps data on the old path while restarting, then moves to a pair checked with the new credentials', async () => {
    const a = await Agent.create({ bindAddress: '127.0.0.1', role: 'controlling' })
    const b = await Agent.create({ bindAddress: '127.0.0.1', role: 'controlled' })
    try {
      const [la, lb] = await Promise.all([a.gather(), b.gather()])
      a.setRemoteCredentials(b.ufrag, b.pwd); a.addRemoteCandidates(lb)
      b.setRemoteCredentials(a.ufrag, a.pwd); b.addRemoteCandidates(la)
      a.start(); b.start()
      await until(() => a.path !== undefined && b.path !== undefined, 5000)
      expect(a.path?.type).to.equal('direct')
      const got = new Set<number>()
      b.on('message', (d) => { if (d.length === 4) got.add(d.readUInt32BE(0)) })
      let n = 0
      const send = (): boolean => { const x = Buffer.alloc(4); x.writeUInt32BE(n++); return a.send(x) }
      const paths: Array<[PathInfo, PathInfo | undefined]> = []
      a.on('path', (p, prev) => { paths.push([p, prev]) })
      const oldChecks = a.checks
      const oldUfrag = a.ufrag

      const ca = a.restart()
      expect(a.restarting).to.equal(true)
      expect(ca.ufrag).to.not.equal(oldUfrag)
      expect(a.checks).to.not.equal(oldChecks)
      // Before the peer has the new credentials, the old path still carries data.
      for (let i = 0; i < 20; i++) { expect(send()).to.equal(true); await new Promise(resolve => setTimeout(resolve, 2)) }
      await until(() => got.size >= 20, 2000)
      expect(got.size).to.equal(20)
      expect(a.checks.pairs.every(p => p.checksSent === 0), 'no new check before the peer\'s new credentials').to.equal(true)

      const cb = b.restart()
      b.setRemoteCredentials(ca.ufrag, ca.pwd)
      a.setRemoteCredentials(cb.ufrag, cb.pwd)
      for (let i = 0; i < 50 && (a.restarting || b.restarting); i++) { send(); await new Promise(resolve => setTimeout(resolve, 5)) }
      await until(() => !a.restarting && !b.restarting, 3000)
      expect(a.restarting).to.equal(false)
      expect(b.restarting).to.equal(false)
      expect(a.checks.pairs.some(p => p.state === 'succeeded' && p.checksSent > 0), 'a pair of the new generation was checked and works').to.equal(true)
      expect(paths.length).to.be.at.least(1)
      expect(paths[0][1], 'the switch came from the old path').to.not.equal(undefined)
      for (let i = 0; i < 20; i++) { send(); await new Promise(resolve => setTimeout(resolve, 2)) }
      await until(() => got.size >= n, 2000)
      expect(got.size, 'datagrams delivered across the restart').to.be.at.least(n - 2)
    } finally { await a.close(); await b.close() }
  })
})
