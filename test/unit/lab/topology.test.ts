import { expect } from 'chai'
import { InvalidArgumentError } from '../../../src/errors.js'
import { LAB_NODES, planLab, resolveLabOptions } from '../../../src/lab/index.js'
import type { LabOptions } from '../../../src/lab/index.js'
import { conntrackSysctls, nodeBatch, nodeSysctls, rootBatch } from '../../../src/lab/topology.js'

const id = (): string => 'abcd'

describe('lab topology', function () {
  describe('resolveLabOptions', function () {
    it('applies defaults', function () {
      expect(resolveLabOptions({ natA: 'full-cone', natB: 'symmetric' }, id)).to.deep.equal({
        natA: 'full-cone', natB: 'symmetric', hairpin: false, udpTimeoutS: 120, prefix: 'nk-abcd-', servers: false, upnp: []
      })
    })
    const bad: Array<[string, unknown]> = [
      ['an unknown NAT type', { natA: 'cone', natB: 'none' }],
      ['a missing natB', { natA: 'none' }],
      ['a fractional timeout', { natA: 'none', natB: 'none', udpTimeoutS: 1.5 }],
      ['a prefix with a slash', { natA: 'none', natB: 'none', prefix: 'nk/x' }],
      ['servers that is not a boolean', { natA: 'none', natB: 'none', servers: 'yes' }],
      ['upnp on a site without NAT', { natA: 'none', natB: 'symmetric', upnp: ['a'] }],
      ['upnp naming no site', { natA: 'symmetric', natB: 'symmetric', upnp: ['c'] }],
      ['a prefix with a space', { natA: 'none', natB: 'none', prefix: 'nk x' }],
      ['a too long prefix', { natA: 'none', natB: 'none', prefix: 'n'.repeat(21) }],
      ['a non-boolean hairpin', { natA: 'none', natB: 'none', hairpin: 'yes' }]
    ]
    for (const [name, o] of bad) {
      it(`rejects ${name}`, function () {
        expect(() => resolveLabOptions(o as LabOptions, id)).to.throw(InvalidArgumentError)
      })
    }
  })

  describe('planLab', function () {
    it('uses documentation ranges for the internet and private LANs behind NATs', function () {
      const info = planLab(resolveLabOptions({ natA: 'port-restricted-cone', natB: 'none', prefix: 'nk-x-' }, id))
      expect(info.server).to.deep.equal({ ns: 'nk-x-server', primaryIp: '203.0.113.10', secondaryIp: '203.0.113.11' })
      expect(info.a).to.include({ wanIp: '198.51.100.1', hostIp: '10.0.1.10', publicIp: '198.51.100.1', routerNs: 'nk-x-router-a', hostNs: 'nk-x-a' })
      expect(info.b).to.include({ wanIp: '192.0.2.1', hostIp: '192.0.2.130', publicIp: '192.0.2.130', hairpin: false })
      expect(Object.values(info.namespaces).every((n) => n.startsWith('nk-x-'))).to.equal(true)
    })
  })

  describe('ip batches', function () {
    const info = planLab(resolveLabOptions({ natA: 'none', natB: 'symmetric', prefix: 'nk-y-' }, id))
    it('creates every namespace and five veth links in one root batch', function () {
      const lines = rootBatch(info).trim().split('\n')
      expect(lines.filter((l) => l.startsWith('netns add'))).to.have.length(LAB_NODES.length)
      expect(lines.filter((l) => l.includes('type veth'))).to.have.length(5)
    })
    it('routes the public LAN of a none site through its router', function () {
      expect(nodeBatch(info, 'inet')).to.include('route add 198.51.100.128/25 via 198.51.100.1')
      expect(nodeBatch(info, 'inet')).to.not.include('192.0.2.128/25')
      expect(nodeBatch(info, 'a')).to.include('addr add 198.51.100.130/25 dev eth0')
      expect(nodeBatch(info, 'b')).to.include('route add default via 10.0.2.1')
    })
    it('brings loopback up everywhere and forwards only on routers', function () {
      for (const node of LAB_NODES) {
        expect(nodeBatch(info, node).startsWith('link set lo up\n'), node).to.equal(true)
        expect(nodeSysctls(node).includes('net.ipv4.ip_forward=1'), node).to.equal(node === 'inet' || node.startsWith('router-'))
        expect(nodeSysctls(node), node).to.include('net.ipv4.conf.all.rp_filter=0')
      }
    })
    it('sets both conntrack UDP timeouts', function () {
      expect(conntrackSysctls(9)).to.deep.equal(['net.netfilter.nf_conntrack_udp_timeout=9', 'net.netfilter.nf_conntrack_udp_timeout_stream=9'])
    })
  })
})
