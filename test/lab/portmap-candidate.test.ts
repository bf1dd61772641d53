/**
 * The agent's port-mapped candidate on real kernel NATs: site A behind a symmetric NAT whose router runs Debian's
 * miniupnpd (UPnP IGD v2, NAT-PMP, PCP; it grants real mappings in the lab: src/lab/miniupnpd.ts), site B behind a
 * port-restricted cone. Standard punching cannot open that pair (lab/matrix `punchable`), so without port mapping it
 * relays; with the agent's `portMapping` on it goes direct over the mapped port — with each protocol on its own — and
 * the router's table is empty once the peer exits.
 */
import { expect } from 'chai'
import { Lab, labDown } from '../../src/lab/index.js'
import type { PeerWorkerResult } from '../../src/lab/worker.js'
import type { PortMapProtocol } from '../../src/portmap/index.js'
import { hasCommand, requireOrSkip } from '../support/env.js'
import { expectRelayed, requireLab, runLabPeers } from './support/lab-helpers.js'

const COUNT = 10

describe('lab: port-mapped candidate (symmetric + miniupnpd × port-restricted cone)', function () {
  this.timeout(180_000)
  const prefix = `nkhp-m${process.pid % 10000}-`
  let lab: Lab

  before(async function () {
    requireLab(this, false)
    requireOrSkip(this, hasCommand('miniupnpd'), 'the port-mapping lab tests need miniupnpd (apt install miniupnpd)')
    lab = await Lab.up({ natA: 'symmetric', natB: 'port-restricted-cone', upnp: ['a'], servers: true, prefix })
  })

  after(async () => { await labDown(prefix) })

  /** Both peers through the lab's rendezvous and relay; A asks its gateway for a mapping with `protocols`. */
  const run = async (tag: string, protocols?: PortMapProtocol[]): Promise<[PeerWorkerResult, PeerWorkerResult]> =>
    await runLabPeers(lab, tag, COUNT, protocols === undefined ? {} : { a: { portMapping: { gateway: lab.info.a.lanGateway, protocols } } })

  /** miniupnpd's forwarding rules in the router (its DNAT chain of table inet filter). */
  const mappingRules = async (): Promise<string[]> => {
    const r = await lab.exec('router-a', ['nft', 'list', 'chain', 'inet', 'filter', 'prerouting_miniupnpd'])
    expect(r.code, r.stderr).to.equal(0)
    return r.stdout.split('\n').filter((l) => /dnat/.test(l))
  }

  it('relays without port mapping (the symmetric NAT defeats punching)', async () => {
    expectRelayed(await run('off'), COUNT, 'portMapped')
    expect(await mappingRules()).to.deep.equal([])
  })

  for (const protocol of ['pcp', 'nat-pmp', 'upnp', 'all'] as const) {
    it(`goes direct over the port-mapped candidate from ${protocol === 'all' ? 'all three protocols asked at once (the default)' : protocol}, and leaves the router's mapping table empty`, async () => {
      const [a, b] = await run(protocol, protocol === 'all' ? ['pcp', 'nat-pmp', 'upnp'] : [protocol])
      const where = JSON.stringify({ a, b })
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
      expect(await mappingRules(), 'mapping removed when the agent closed').to.deep.equal([])
    })
  }
})
