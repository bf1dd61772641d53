import { expect } from 'chai'
import { hasCommand, isRoot, requireOrSkip } from '../support/env.js'
import { JsonPeer, PAYLOADS, collect } from './support/json-peer.js'
import { linkedNamespaces, type LinkedNamespaces } from './support/link-netns.js'

const MDNS_LINE = /^candidate:\S+ 1 \S+ \d+ ([0-9a-f-]{36}\.local) (\d+) typ host/

/**
 * natkit publishing its own host candidates as mDNS names (`mdnsHostCandidates`, draft-ietf-mmusic-mdns-ice-candidates
 * §3.1, as browsers do) and another natkit agent resolving them over real multicast DNS (RFC 6762), in two network
 * namespaces the test creates, joined by one veth link, so no multicast reaches the host's interfaces.
 */
describe('interop: natkit publishes its host candidates as mDNS names (multicast DNS in namespaces)', function () {
  this.timeout(60_000)
  let net: LinkedNamespaces | undefined

  before(async function () {
    requireOrSkip(this, process.platform === 'linux' && isRoot() && hasCommand('ip'), 'needs Linux, root and iproute2 for network namespaces')
    net = await linkedNamespaces('nkicc-')
  })

  after(async () => { await net?.down() })

  it('the named candidate hides the address; the peer resolves it by multicast DNS and the pair is host ↔ host', async () => {
    const n = net as LinkedNamespaces
    const publisher = JsonPeer.natkit({ role: 'controlling', bindAddress: '0.0.0.0', mdnsHostCandidates: true }, n.names[0])
    const resolver = JsonPeer.natkit({ role: 'controlled', bindAddress: '0.0.0.0', mdnsTimeoutMs: 1500 }, n.names[1])
    try {
      const named = await publisher.next('local', 20_000)
      const lines = named.candidates.map(c => MDNS_LINE.exec(c)).filter(m => m !== null)
      expect(lines, `one host candidate, by name: ${named.candidates.join(' | ')}`).to.have.length(1)
      expect(named.candidates.join(' ')).to.not.include(n.addresses[0])
      const [, name, port] = lines[0]
      // The resolver gets the named candidate first: the publisher knows nothing of it yet, so it sends nothing, and
      // only the mDNS answer can teach the resolver the address.
      resolver.write({ type: 'remote', ufrag: named.ufrag, pwd: named.pwd, candidates: named.candidates })
      const { resolutions } = await resolver.next('mdns', 10_000)
      expect(resolutions.map(r => [r.name, r.port, r.address])).to.deep.equal([[name, Number(port), n.addresses[0]]])
      expect(resolutions[0].ms).to.be.below(1500)
      const theirs = await resolver.next('local')
      publisher.write({ type: 'remote', ufrag: theirs.ufrag, pwd: theirs.pwd, candidates: theirs.candidates })
      const path = (await resolver.next('connected', 20_000)).path
      expect(path?.remote).to.deep.equal({ type: 'host', address: n.addresses[0], port: Number(port) })
      await publisher.next('connected', 20_000)
      for (const hex of PAYLOADS) publisher.write({ type: 'send', hex })
      expect((await collect(() => resolver.received(), PAYLOADS.length)).sort()).to.deep.equal([...PAYLOADS].sort())
      for (const hex of PAYLOADS) resolver.write({ type: 'send', hex })
      expect((await collect(() => publisher.received(), PAYLOADS.length)).sort()).to.deep.equal([...PAYLOADS].sort())
    } catch (err) {
      throw new Error(`${(err as Error).message}\n--- publisher stderr:\n${publisher.log}\n--- resolver stderr:\n${resolver.log}`)
    } finally { await publisher.stop(); await resolver.stop() }
  })
})
