import { expect } from 'chai'
import type { Page } from 'playwright-core'
import { buildIceSdp, candidateFromSdp, isMdnsName, parseIceSdp } from '../../src/traversal/index.js'
import { hasCommand, isRoot, requireOrSkip } from '../support/env.js'
import { JsonPeer } from '../interop/support/json-peer.js'
import { linkedNamespaces, type LinkedNamespaces } from '../interop/support/link-netns.js'
import { answerAndWaitScript, answerSdp, HeadlessChromium, offerScript, requireChromium } from './support.js'

/**
 * Chromium's host candidates, as a browser really sends them: hidden behind `<uuid>.local` names that its own mDNS
 * responder answers for (draft-ietf-mmusic-mdns-ice-candidates). Chromium runs inside one of two network namespaces the
 * test links with a veth (a wrapper execs it under `ip netns exec`), natkit's agent in the other, so Chromium's
 * multicast DNS and natkit's queries stay on that link and never reach the host's interfaces.
 */
describe('Chromium host candidates as mDNS names ↔ natkit Agent (network namespaces)', function () {
  this.timeout(90_000)
  let net: LinkedNamespaces | undefined
  let browser: HeadlessChromium | undefined

  before(async function () {
    requireChromium(this)
    requireOrSkip(this, process.platform === 'linux' && isRoot() && hasCommand('ip'), 'needs Linux, root and iproute2 for network namespaces')
    net = await linkedNamespaces('nkice-')
    browser = await HeadlessChromium.launch('natkit-chromium-mdns-', { netns: net.names[1] })
  })

  after(async () => {
    await browser?.close()
    await net?.down()
  })

  it('Chromium (offerer, controlling) hides its host address behind an mDNS name; natkit resolves it by multicast DNS and ICE connects host ↔ host', async () => {
    const n = net as LinkedNamespaces
    const page: Page = await (browser as HeadlessChromium).context.newPage()
    const natkit = JsonPeer.natkit({ role: 'controlled', bindAddress: '0.0.0.0', mdnsTimeoutMs: 1500 }, n.names[0])
    try {
      const offer = await page.evaluate(offerScript({ iceServers: [] })) as string
      const remote = parseIceSdp(offer)
      const udp = remote.candidates.filter(c => c.transport === 'udp')
      // What Chromium does by default: its host address never appears, only a name.
      expect(udp.length, offer).to.be.above(0)
      expect(udp.every(c => c.type === 'host' && isMdnsName(c.address)), offer).to.equal(true)
      expect(offer).to.not.include(n.addresses[1])
      const lines = offer.split(/\r?\n/).filter(l => l.startsWith('a=candidate:'))
      natkit.write({ type: 'remote', ufrag: remote.ufrag, pwd: remote.pwd, candidates: lines.map(l => l.slice(2)) })
      const { resolutions } = await natkit.next('mdns', 10_000)
      expect(resolutions.filter(r => r.name === udp[0].address).map(r => r.address)).to.include(n.addresses[1])
      const ours = await natkit.next('local')
      const answer = answerSdp(buildIceSdp({ ufrag: ours.ufrag, pwd: ours.pwd, candidates: ours.candidates.map(c => candidateFromSdp(c)), endOfCandidates: true }))
      const state = await page.evaluate(answerAndWaitScript(answer)) as string
      expect(state).to.be.oneOf(['connected', 'completed'])
      const path = (await natkit.next('connected', 10_000)).path
      expect(path?.remote).to.deep.include({ type: 'host', address: n.addresses[1], port: udp[0].port })
      // With a=setup:passive Chromium is the DTLS client: its ClientHello reaches natkit's app raw (RFC 7983: 20-63).
      const [hello] = await natkit.next('recv', 5000).then(d => [d.hex])
      expect(hello.slice(0, 2)).to.equal('16')
    } catch (err) {
      throw new Error(`${(err as Error).message}\n--- natkit stderr:\n${natkit.log}`)
    } finally {
      await page.evaluate('window.pc && window.pc.close()').catch(() => {})
      await page.close()
      await natkit.stop()
    }
  })
})
