import { expect } from 'chai'
import { hasCommand, isRoot, requireOrSkip } from '../support/env.js'
import { JsonPeer, PAYLOADS, PYTHON, aioiceAvailable, collect } from './support/json-peer.js'
import { linkedNamespaces, type LinkedNamespaces } from './support/link-netns.js'

const MDNS_LINE = /^candidate:\S+ 1 \S+ \d+ ([0-9a-f-]{36}\.local) (\d+) typ host/

/**
 * mDNS host candidates over real multicast DNS (RFC 6762), the way a browser hides its host address: aioice signals its
 * host candidate as `<uuid>.local` and answers queries for it with its own mDNS responder; natkit resolves the name
 * with a query to 224.0.0.251:5353. Everything runs in two network namespaces the test creates, joined by one veth
 * link, so no multicast reaches the host's interfaces.
 */
describe('interop: natkit resolves aioice\'s mDNS host candidates (multicast DNS in namespaces)', function () {
  this.timeout(60_000)
  let net: LinkedNamespaces | undefined

  before(async function () {
    requireOrSkip(this, process.platform === 'linux' && isRoot() && hasCommand('ip'), 'needs Linux, root and iproute2 for network namespaces')
    requireOrSkip(this, aioiceAvailable(), `${PYTHON} cannot import aioice (apt-get install python3-aioice)`)
    net = await linkedNamespaces('nkice-')
  })

  after(async () => { await net?.down() })

  async function session (mdns: 'publish' | 'silent'): Promise<{ natkit: JsonPeer, aioice: JsonPeer, name: string, port: number }> {
    const n = net as LinkedNamespaces
    // natkit answers aioice's offer, as a server answers a browser: it has the peer's candidates first.
    const natkit = JsonPeer.natkit({ role: 'controlled', bindAddress: '0.0.0.0', mdnsTimeoutMs: 1500 }, n.names[0])
    const aioice = JsonPeer.aioice('controlling', { host: n.addresses[1], mdns }, n.names[1])
    const theirs = await aioice.next('local', 20_000)
    const named = theirs.candidates.map(c => MDNS_LINE.exec(c)).filter(m => m !== null)
    expect(named, `aioice signalled its host candidate by name: ${theirs.candidates.join(' | ')}`).to.have.length(1)
    expect(theirs.candidates.join(' ')).to.not.include(n.addresses[1])
    natkit.write({ type: 'remote', ufrag: theirs.ufrag, pwd: theirs.pwd, candidates: theirs.candidates })
    return { natkit, aioice, name: named[0][1], port: Number(named[0][2]) }
  }

  it('a published name resolves by multicast DNS to aioice\'s address; the pair is host ↔ host, raw datagrams both ways', async () => {
    const n = net as LinkedNamespaces
    const { natkit, aioice, name, port } = await session('publish')
    try {
      // The answer, not the peer's checks, taught natkit the address: aioice gets natkit's candidates only now.
      const { resolutions } = await natkit.next('mdns', 10_000)
      expect(resolutions.map(r => [r.name, r.port, r.address])).to.deep.equal([[name, port, n.addresses[1]]])
      expect(resolutions[0].ms).to.be.below(1500)
      const ours = await natkit.next('local')
      aioice.write({ type: 'remote', ufrag: ours.ufrag, pwd: ours.pwd, candidates: ours.candidates })
      await aioice.next('connected', 20_000)
      const path = (await natkit.next('connected', 20_000)).path
      expect(path?.remote).to.deep.equal({ type: 'host', address: n.addresses[1], port })
      for (const hex of PAYLOADS) natkit.write({ type: 'send', hex })
      expect((await collect(() => aioice.received(), PAYLOADS.length)).sort()).to.deep.equal([...PAYLOADS].sort())
      for (const hex of PAYLOADS) aioice.write({ type: 'send', hex })
      expect((await collect(() => natkit.received(), PAYLOADS.length)).sort()).to.deep.equal([...PAYLOADS].sort())
    } catch (err) {
      throw new Error(`${(err as Error).message}\n--- natkit stderr:\n${natkit.log}\n--- aioice stderr:\n${aioice.log}`)
    } finally { await natkit.stop(); await aioice.stop() }
  })

  it('a name nobody answers for times out (bounded), and aioice\'s checks make the pair peer-reflexive instead', async () => {
    const n = net as LinkedNamespaces
    const { natkit, aioice, name, port } = await session('silent')
    try {
      const ours = await natkit.next('local')
      aioice.write({ type: 'remote', ufrag: ours.ufrag, pwd: ours.pwd, candidates: ours.candidates })
      await aioice.next('connected', 20_000)
      const path = (await natkit.next('connected', 20_000)).path
      expect(path?.remote).to.deep.equal({ type: 'prflx', address: n.addresses[1], port })
      const { resolutions } = await natkit.next('mdns', 10_000)
      expect(resolutions.map(r => [r.name, r.address])).to.deep.equal([[name, null]])
      expect(resolutions[0].ms).to.be.within(1400, 3000)
      for (const hex of PAYLOADS) aioice.write({ type: 'send', hex })
      expect((await collect(() => natkit.received(), PAYLOADS.length)).sort()).to.deep.equal([...PAYLOADS].sort())
      for (const hex of PAYLOADS) natkit.write({ type: 'send', hex })
      expect((await collect(() => aioice.received(), PAYLOADS.length)).sort()).to.deep.equal([...PAYLOADS].sort())
    } catch (err) {
      throw new Error(`${(err as Error).message}\n--- natkit stderr:\n${natkit.log}\n--- aioice stderr:\n${aioice.log}`)
    } finally { await natkit.stop(); await aioice.stop() }
  })
})
