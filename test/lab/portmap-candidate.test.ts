/**
 * The agent's port-mapped candidate on real kernel NATs: site A behind a symmetric NAT whose router grants PCP /
 * NAT-PMP mappings and really forwards them (support/forwarding-gateway), site B behind a port-restricted cone.
 * Standard punching cannot open that pair (lab/matrix `punchable`), so without port mapping it relays; with the
 * agent's `portMapping` on it goes direct over the mapped port, and the router's table is empty once the peer exits.
 */
import { expect } from 'chai'
import type { ChildProcess } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { Lab, labDown } from '../../src/lab/index.js'
import type { PeerWorkerResult } from '../../src/lab/worker.js'
import { requireLab, runLabPeers } from './support/lab-helpers.js'

const GATEWAY = fileURLToPath(new URL('./support/forwarding-gateway.js', import.meta.url))
const COUNT = 10

describe('lab: port-mapped candidate (symmetric + mapping gateway × port-restricted cone)', function () {
  this.timeout(180_000)
  const prefix = `nkhp-m${process.pid % 10000}-`
  let lab: Lab
  let gw: ChildProcess | undefined
  let gwOut = ''

  before(async function () {
    requireLab(this, false)
    lab = await Lab.up({ natA: 'symmetric', natB: 'port-restricted-cone', servers: true, prefix })
    gw = lab.spawn('router-a', [process.execPath, GATEWAY, JSON.stringify({ bind: lab.info.a.lanGateway, externalIp: lab.info.a.wanIp })], { stdio: ['ignore', 'pipe', 'pipe'] })
    gw.stdout?.on('data', (d: Buffer) => { gwOut += d.toString() })
    gw.stderr?.on('data', (d: Buffer) => { gwOut += d.toString() })
    for (let i = 0; i < 100 && !gwOut.includes('ready'); i++) await new Promise((resolve) => setTimeout(resolve, 50))
    expect(gwOut, 'the forwarding gateway started').to.include('ready')
  })

  after(async () => {
    const g = gw
    if (g?.pid !== undefined && g.exitCode === null && g.signalCode === null) {
      const exited = new Promise((resolve) => g.once('exit', resolve))
      process.kill(g.pid, 'SIGTERM')
      await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 3000))])
    }
    await labDown(prefix)
  })

  /** Both peers through the lab's rendezvous and relay; A asks its gateway for a mapping when `mapA`. */
  const run = async (tag: string, mapA: boolean): Promise<[PeerWorkerResult, PeerWorkerResult]> =>
    await runLabPeers(lab, tag, COUNT, mapA ? { a: { portMapping: { gateway: lab.info.a.lanGateway, protocols: ['pcp', 'nat-pmp'] } } } : {})

  const mappingRules = async (): Promise<string> => {
    const r = await lab.exec('router-a', ['nft', 'list', 'table', 'ip', 'nkhn_pm'])
    expect(r.code, r.stderr).to.equal(0)
    return r.stdout
  }

  it('relays without port mapping (the symmetric NAT defeats punching)', async () => {
    const [a, b] = await run('off', false)
    const where = JSON.stringify({ a, b })
    expect(a.error, where).to.equal(null)
    expect(b.error, where).to.equal(null)
    expect(a.path?.type, where).to.equal('relay')
    expect(b.path?.type, where).to.equal('relay')
    expect(a.portMapped, where).to.equal(undefined)
    expect(a.delivered + b.delivered, where).to.equal(2 * COUNT)
    expect(await mappingRules()).to.not.match(/dnat|snat/)
  })

  it('goes direct over the port-mapped candidate, and leaves the router\'s mapping table empty', async () => {
    const [a, b] = await run('on', true)
    const where = JSON.stringify({ a, b, gateway: gwOut.slice(-500) })
    expect(a.error, where).to.equal(null)
    expect(b.error, where).to.equal(null)
    expect(a.portMapped, where).to.be.a('string')
    expect(a.portMapped?.startsWith(`${lab.info.a.wanIp}:`), where).to.equal(true)
    expect(a.path?.type, where).to.equal('direct')
    expect(b.path?.type, where).to.equal('direct')
    // B's chosen pair sends to A's mapped public endpoint (as the signalled srflx or, if A's check came first, as the
    // peer-reflexive address it showed, which is the same endpoint).
    expect(b.path?.remote.split(' ')[1], where).to.equal(a.portMapped)
    expect(a.delivered, where).to.equal(COUNT)
    expect(b.delivered, where).to.equal(COUNT)
    expect(await mappingRules(), 'mapping removed when the agent closed').to.not.match(/dnat|snat/)
  })
})
