import { expect } from 'chai'
import { InvalidArgumentError } from '../../../src/errors.js'
import { isEndpointIndependentMapping, LAB_NAT_TYPES, natRuleset } from '../../../src/lab/index.js'
import type { LabNatType } from '../../../src/lab/index.js'

const WAN = '198.51.100.1'

describe('natRuleset', function () {
  it('is empty for none (the router only routes)', function () {
    expect(natRuleset({ nat: 'none', wanIp: WAN })).to.equal('')
  })

  describe('per NAT type', function () {
    const cases: Array<{ nat: LabNatType, has: string[], hasNot: string[] }> = [
      {
        nat: 'full-cone',
        has: ['snat ip to 198.51.100.1 : ip saddr . udp sport map @eim_out', 'dnat ip to udp dport map @eim_in', 'update @eim_out', 'iifname "wan" ct status dnat accept'],
        hasNot: ['adf_peers', 'fully-random', 'numgen']
      },
      {
        nat: 'restricted-cone',
        has: ['udp dport . ip saddr @adf_peers dnat ip to udp dport map @eim_in', 'update @adf_peers { udp sport . ip daddr }', 'map @eim_out'],
        hasNot: ['fully-random', 'numgen']
      },
      {
        nat: 'port-restricted-cone',
        has: ['map @eim_out', 'iifname "wan" drop'],
        hasNot: ['dnat ip to', 'adf_peers', 'fully-random']
      },
      { nat: 'symmetric', has: ['snat ip to 198.51.100.1 fully-random'], hasNot: ['eim_out', 'eim_in', 'dnat ip to'] },
      { nat: 'symmetric-sequential', has: ['numgen inc mod 2048 map { 0 : 50000, 1 : 50001,', '2047 : 52047 }'], hasNot: ['eim_out', 'eim_in', 'fully-random'] },
      { nat: 'udp-blocked', has: ['iifname "lan" oifname "wan" tcp dport { 80, 443 } accept', 'policy drop'], hasNot: ['iifname "lan" accept', 'dnat ip to'] },
      { nat: 'tcp-only', has: ['iifname "lan" oifname "wan" meta l4proto tcp accept', 'ct state established,related accept', 'policy drop'], hasNot: ['iifname "lan" accept', 'dnat ip to', 'dport { 80, 443 }'] }
    ]
    for (const c of cases) {
      it(`${c.nat} uses ${c.has.length} characteristic rules`, function () {
        const text = natRuleset({ nat: c.nat, wanIp: WAN })
        expect(text.startsWith('flush ruleset\ntable ip natkit {')).to.equal(true)
        for (const h of c.has) expect(text).to.include(h)
        for (const h of c.hasNot) expect(text).to.not.include(h)
      })
    }
  })

  it('drops unsolicited inbound and non-hairpinned LAN packets to the public address', function () {
    for (const nat of LAB_NAT_TYPES.filter((n) => n !== 'none')) {
      const text = natRuleset({ nat, wanIp: WAN })
      expect(text, nat).to.include('iifname "wan" drop')
      expect(text, nat).to.include(`iifname "lan" ip daddr ${WAN} meta l4proto udp drop`)
    }
  })

  it('adds hairpin DNAT and SNAT only when asked, and never for udp-blocked', function () {
    for (const nat of ['full-cone', 'symmetric'] as const) {
      expect(natRuleset({ nat, wanIp: WAN })).to.not.include(`iifname "lan" ip daddr ${WAN} meta l4proto udp dnat`)
      const on = natRuleset({ nat, wanIp: WAN, hairpin: true })
      expect(on).to.include(`iifname "lan" ip daddr ${WAN} meta l4proto udp dnat ip to udp dport map @eim_in`)
      expect(on).to.include(`iifname "lan" oifname "lan" ct status dnat snat ip to ${WAN}`)
      expect(on).to.include('update @eim_in')
    }
    expect(natRuleset({ nat: 'udp-blocked', wanIp: WAN, hairpin: true })).to.not.include('dnat ip to')
    expect(natRuleset({ nat: 'tcp-only', wanIp: WAN, hairpin: true })).to.not.include('dnat ip to')
  })

  it('uses the UDP timeout for every dynamic map and set', function () {
    const text = natRuleset({ nat: 'restricted-cone', wanIp: WAN, udpTimeoutS: 7 })
    expect(text.match(/timeout 7s;/g)).to.have.length(3)
  })

  it('honours interface names and the sequential port range', function () {
    const text = natRuleset({ nat: 'symmetric-sequential', wanIp: WAN, wanIf: 'eth1', lanIf: 'eth2', sequentialBase: 60000, sequentialCount: 4 })
    expect(text).to.include('oifname "eth1"').and.include('iifname "eth2"')
    expect(text).to.include('numgen inc mod 4 map { 0 : 60000, 1 : 60001, 2 : 60002, 3 : 60003 }')
  })

  describe('rejects bad options', function () {
    const bad: Array<[string, Parameters<typeof natRuleset>[0]]> = [
      ['unknown type', { nat: 'cone' as LabNatType, wanIp: WAN }],
      ['bad address', { nat: 'full-cone', wanIp: '198.51.100.300' }],
      ['injection in an interface name', { nat: 'full-cone', wanIp: WAN, wanIf: 'wan"; flush' }],
      ['zero timeout', { nat: 'full-cone', wanIp: WAN, udpTimeoutS: 0 }],
      ['port range past 65535', { nat: 'symmetric-sequential', wanIp: WAN, sequentialBase: 65000, sequentialCount: 1000 }]
    ]
    for (const [name, o] of bad) {
      it(name, function () {
        expect(() => natRuleset(o)).to.throw(InvalidArgumentError)
      })
    }
  })

  it('classifies endpoint-independent mapping', function () {
    expect(LAB_NAT_TYPES.filter(isEndpointIndependentMapping)).to.deep.equal(['full-cone', 'restricted-cone', 'port-restricted-cone'])
  })
})
