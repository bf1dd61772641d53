import { expect } from 'chai'
import { randomBytes } from 'node:crypto'
import { fileURLToPath } from 'node:url'
import { Lab } from '../../src/lab/index.js'
import { requireLab } from '../lab/support/lab-helpers.js'
import { requireOrSkip } from '../support/env.js'
import { JsonPeer, PAYLOADS, PYTHON, aioiceAvailable, collect, type BriefCandidate } from './support/json-peer.js'

/** The built natcheck CLI, for the STUN server the test runs in the lab's server namespace. */
const CLI = fileURLToPath(new URL('../../src/cli.js', import.meta.url))

/** Server-reflexive candidates (RFC 8445 §5.1.1.2) of a candidate list: [address, port]. */
function srflx (lines: string[]): Array<[string, number]> {
  return lines.map(l => l.split(/\s+/)).filter(f => f[7] === 'srflx').map(f => [f[4], Number(f[5])])
}

/**
 * natkit ↔ aioice where server-reflexive candidates are the only way through: each agent sits behind its own real kernel
 * NAT (port-restricted cone: endpoint-independent mapping, address-and-port-dependent filtering) in the NAT lab's
 * namespaces, their private host addresses are unroutable from each other, and both learn their public mapping from
 * a STUN server (natkit's `natcheck server`) the test starts in the lab's server namespace. Each NAT lets the other's
 * checks in only after its own agent has sent towards the other's srflx address: both agents punch.
 */
describe('interop: natkit ↔ aioice behind real kernel NATs (srflx only)', function () {
  this.timeout(120_000)
  let lab: Lab | undefined

  before(async function () {
    requireLab(this, false)
    requireOrSkip(this, aioiceAvailable(), `${PYTHON} cannot import aioice (apt-get install python3-aioice)`)
    lab = await Lab.up({ natA: 'port-restricted-cone', natB: 'port-restricted-cone', prefix: `nkice-${randomBytes(2).toString('hex')}-` })
    const stun = lab.spawn('server', [process.execPath, CLI, 'server', '--listen', `${lab.info.server.primaryIp}:3478`], { stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => { reject(new Error(`STUN server not ready in 15 s:\n${out}`)) }, 15_000)
      const on = (d: Buffer): void => { out += d.toString(); if (/STUN on UDP/.test(out)) { clearTimeout(t); resolve() } }
      stun.stdout?.on('data', on); stun.stderr?.on('data', on)
      stun.once('exit', (code) => { clearTimeout(t); reject(new Error(`STUN server exited (${code}):\n${out}`)) })
    })
  })

  after(async () => { await lab?.down() })

  for (const natkitRole of ['controlling', 'controlled'] as const) {
    it(`natkit ${natkitRole} behind NAT A, aioice behind NAT B: the pair is srflx ↔ srflx, raw datagrams both ways`, async () => {
      const l = lab as Lab
      const stunServer = `${l.info.server.primaryIp}:3478`
      const natkit = JsonPeer.natkit({ role: natkitRole, bindAddress: '0.0.0.0', stunServers: [stunServer] }, l.ns('a'))
      const aioice = JsonPeer.aioice(natkitRole === 'controlling' ? 'controlled' : 'controlling', { host: l.info.b.hostIp, stun: stunServer }, l.ns('b'))
      try {
        const ours = await natkit.next('local', 20_000)
        const theirs = await aioice.next('local', 20_000)
        // Each learnt its NAT's public address from the STUN server; the host addresses are private (10.0.x.x).
        expect(srflx(ours.candidates).map(([a]) => a)).to.deep.equal([l.info.a.publicIp])
        expect(srflx(theirs.candidates).map(([a]) => a)).to.deep.equal([l.info.b.publicIp])
        natkit.write({ type: 'remote', ufrag: theirs.ufrag, pwd: theirs.pwd, candidates: theirs.candidates })
        aioice.write({ type: 'remote', ufrag: ours.ufrag, pwd: ours.pwd, candidates: ours.candidates })
        const seen = await aioice.next('connected', 25_000)
        const path = (await natkit.next('connected', 25_000)).path
        // natkit sends to aioice's srflx address; aioice sees natkit at natkit's srflx address.
        const [theirSrflx] = srflx(theirs.candidates)
        const [ourSrflx] = srflx(ours.candidates)
        expect(path?.type).to.equal('direct')
        expect([path?.remote.address, path?.remote.port]).to.deep.equal(theirSrflx)
        expect(seen.remote).to.deep.equal(ourSrflx)
        // Raw datagrams both ways, byte for byte.
        for (const hex of PAYLOADS) natkit.write({ type: 'send', hex })
        expect((await collect(() => aioice.received(), PAYLOADS.length)).sort()).to.deep.equal([...PAYLOADS].sort())
        for (const hex of PAYLOADS) aioice.write({ type: 'send', hex })
        expect((await collect(() => natkit.received(), PAYLOADS.length)).sort()).to.deep.equal([...PAYLOADS].sort())
        // No host pair can work across the two private LANs: what worked went through the NATs.
        const closed = await natkit.stop()
        const attempts = (closed as { attempts: Array<{ remote: BriefCandidate, state: string }> }).attempts
        expect(attempts.filter(a => a.remote.address === l.info.b.hostIp && a.state === 'succeeded')).to.deep.equal([])
        expect(attempts.some(a => a.remote.address === l.info.b.publicIp && a.state === 'succeeded')).to.equal(true)
      } catch (err) {
        throw new Error(`${(err as Error).message}\n--- natkit stderr:\n${natkit.log}\n--- aioice stderr:\n${aioice.log}`)
      } finally {
        await natkit.stop(); await aioice.stop()
      }
    })
  }
})
