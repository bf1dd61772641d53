/**
 * Birthday spray on real kernel NATs: site A behind a symmetric NAT whose nftables rule picks every new mapping's port
 * at random (`snat … fully-random`, checked below in the loaded ruleset), site B behind a port-restricted cone. Standard
 * punching cannot open the pair: B's filter only admits the ports B has sent to, and A's NAT gives the flow towards B a
 * port nobody can know. Without the spray it relays; with `birthdaySpray` at both ends A opens 256 sockets towards B's
 * public endpoint, B probes random ports of A's public address until one is a mapped one, and the pair goes direct over
 * that socket; both reports name the spray, its reason code and the probability computed beforehand.
 */
import { expect } from 'chai'
import { Lab, labDown, LAB_STUN_PORT } from '../../src/lab/index.js'
import type { PeerWorkerResult } from '../../src/lab/worker.js'
import { expectRelayed, requireLab, runLabPeers, type PeerExtras } from './support/lab-helpers.js'

const COUNT = 10

describe('lab: birthday spray (symmetric, random ports × port-restricted cone)', function () {
  this.timeout(180_000)
  const prefix = `nksp-p${process.pid % 10000}-`
  let lab: Lab

  before(async function () {
    requireLab(this, false)
    lab = await Lab.up({ natA: 'symmetric', natB: 'port-restricted-cone', servers: true, prefix })
  })
  after(async () => { await labDown(prefix) })

  const run = async (tag: string, spray: boolean): Promise<[PeerWorkerResult, PeerWorkerResult]> => {
    const side: PeerExtras = { stun: [`${lab.info.server.primaryIp}:${LAB_STUN_PORT}`], settleMs: 6000, ...(spray ? { birthdaySpray: { sockets: 256, probes: 2048, rate: 2000 } } : {}) }
    return await runLabPeers(lab, tag, COUNT, { a: side, b: side })
  }

  it('the symmetric router really randomizes ports (fully-random source NAT)', async () => {
    const r = await lab.exec('router-a', ['nft', 'list', 'ruleset'], { timeoutMs: 10_000 })
    expect(r.code, r.stderr).to.equal(0)
    // nft prints the rule back as `oifname "wan" snat to IP fully-random` (no port range: 1024-65535, R = 64512).
    expect(r.stdout).to.match(new RegExp(`oifname "wan" snat (ip )?to ${lab.info.a.wanIp.replaceAll('.', '\\.')} fully-random\n`))
  })

  it('relays with the spray off', async () => {
    expectRelayed(await run('off', false), COUNT, 'spray')
  })

  it('goes direct with the spray on, over A\'s winning spray socket, and reports spray-hit with its probability', async () => {
    const [a, b] = await run('on', true)
    const where = JSON.stringify({ a, b })
    expect(a.error, where).to.equal(null)
    expect(b.error, where).to.equal(null)
    expect(a.path?.type, where).to.equal('direct')
    expect(b.path?.type, where).to.equal('direct')
    expect(a.spray?.role, where).to.equal('sockets')
    expect(b.spray?.role, where).to.equal('probes')
    expect(a.spray?.self?.mapping, where).to.equal('random')
    expect(b.spray?.self?.mapping, where).to.equal('endpoint-independent')
    expect(a.spray?.state, where).to.equal('spray-hit')
    expect(b.spray?.state, where).to.equal('spray-hit')
    const p = 1 - Math.pow(1 - 256 / 64512, 2048)
    expect(a.spray?.probability, where).to.be.closeTo(p, 1e-9)
    expect(b.spray?.probability, where).to.be.closeTo(p, 1e-9)
    expect(a.spray?.attempt, where).to.match(/^spray-hit: /)
    // A's path leaves from the winning spray socket; B reaches A's public address on a port it probed.
    expect(a.path?.local, where).to.match(new RegExp(`:${a.spray?.hitPort}$`))
    const [address, port] = (b.path?.remote.split(' ')[1] ?? '').split(':')
    expect(address, where).to.equal(lab.info.a.wanIp)
    expect(Number(port), where).to.equal(b.spray?.hitPort)
    expect(b.spray?.portsProbed, where).to.be.within(1, 2048)
    expect(a.spray?.socketsOpened, where).to.equal(256)
    expect(a.delivered, where).to.equal(COUNT)
    expect(b.delivered, where).to.equal(COUNT)
  })
})
