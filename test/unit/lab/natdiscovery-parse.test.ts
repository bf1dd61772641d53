import { expect } from 'chai'
import { parseNatDiscovery } from '../../lab/support/lab-helpers.js'

const SAMPLE = `
-= Hairpinning Behavior Discovery =-
0: : IPv4. UDP reflexive addr: 198.51.100.1:53559
STUN receive timeout..
STUN receive timeout..

-= Mapping Behavior Discovery =-
6: : IPv4. UDP reflexive addr: 198.51.100.1:58627
========================================
NAT with Endpoint Independent Mapping!
========================================

-= Filtering Behavior Discovery =-
STUN receive timeout..
========================================
NAT with Address Dependent Filtering!
========================================
`

describe('parseNatDiscovery (coturn 4.6 turnutils_natdiscovery)', function () {
  it('reads each section\'s verdict', function () {
    expect(parseNatDiscovery(SAMPLE)).to.deep.equal({ anyResponse: true, mapping: 'endpoint-independent', filtering: 'address-dependent', hairpin: false })
  })
  it('tells address-and-port-dependent from address-dependent', function () {
    const v = parseNatDiscovery('-= Mapping Behavior Discovery =-\nreflexive addr: 1.2.3.4:5\nNAT with Address and Port Dependent Mapping!\n')
    expect(v.mapping).to.equal('address-and-port-dependent')
  })
  it('sees a successful hairpin and a blocked network', function () {
    expect(parseNatDiscovery('-= Hairpinning Behavior Discovery =-\nUDP reflexive addr: 1.2.3.4:5\nReceived a request (maybe a successful hairpinning)\n').hairpin).to.equal(true)
    expect(parseNatDiscovery('-= Hairpinning Behavior Discovery =-\nSTUN receive timeout..\n')).to.deep.equal({ anyResponse: false, hairpin: false })
  })
})
