import { expect } from 'chai'
import { chmodSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { chromium, type BrowserContext, type Page } from 'playwright-core'
import { buildIceSdp, candidateFromSdp, isMdnsName, parseIceSdp } from '../../src/traversal/index.js'
import { hasCommand, isRoot, requireOrSkip } from '../support/env.js'
import { JsonPeer } from '../interop/support/json-peer.js'
import { linkedNamespaces, type LinkedNamespaces } from '../interop/support/link-netns.js'

const CHROMIUM = '/usr/bin/chromium'
const ARGS = ['--no-sandbox', '--headless', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
  '--disable-component-update', '--disable-sync']

/** A data-channel answer around natkit's ICE lines. DTLS is the app's business: the fingerprint is a placeholder. */
function answerSdp (iceLines: string[]): string {
  const fingerprint = Array.from({ length: 32 }, (_, i) => (i * 7 + 1).toString(16).padStart(2, '0').toUpperCase()).join(':')
  return ['v=0', 'o=- 4215775240449105457 2 IN IP4 127.0.0.1', 's=-', 't=0 0', 'a=group:BUNDLE 0', 'a=msid-semantic: WMS',
    'm=application 9 UDP/DTLS/SCTP webrtc-datachannel', 'c=IN IP4 0.0.0.0', 'a=mid:0', ...iceLines,
    `a=fingerprint:sha-256 ${fingerprint}`, 'a=setup:passive', 'a=sctp-port:5000', 'a=max-message-size:262144'].join('\r\n') + '\r\n'
}

/**
 * Chromium's host candidates, as a browser really sends them: hidden behind `<uuid>.local` names that its own mDNS
 * responder answers for (draft-ietf-mmusic-mdns-ice-candidates). Chromium runs inside one of two network namespaces the
 * test links with a veth (a wrapper execs it under `ip netns exec`), natkit's agent in the other, so Chromium's
 * multicast DNS and natkit's queries stay on that link and never reach the host's interfaces.
 */
describe('Chromium host candidates as mDNS names ↔ natkit Agent (network namespaces)', function () {
  this.timeout(90_000)
  let net: LinkedNamespaces | undefined
  let context: BrowserContext | undefined
  let dir: string | undefined

  before(async function () {
    requireOrSkip(this, existsSync(CHROMIUM), `${CHROMIUM} not installed (Debian package chromium)`)
    requireOrSkip(this, process.platform === 'linux' && isRoot() && hasCommand('ip'), 'needs Linux, root and iproute2 for network namespaces')
    net = await linkedNamespaces('nkice-')
    dir = mkdtempSync(join(tmpdir(), 'natkit-chromium-mdns-'))
    const wrapper = join(dir, 'chromium-in-netns')
    writeFileSync(wrapper, `#!/bin/sh\nexec ip netns exec ${net.names[1]} ${CHROMIUM} "$@"\n`)
    chmodSync(wrapper, 0o755)
    context = await chromium.launchPersistentContext(join(dir, 'profile'), { executablePath: wrapper, headless: true, args: ARGS, timeout: 30_000 })
  })

  after(async () => {
    await context?.close()
    await net?.down()
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true })
  })

  it('Chromium (offerer, controlling) hides its host address behind an mDNS name; natkit resolves it by multicast DNS and ICE connects host ↔ host', async () => {
    const n = net as LinkedNamespaces
    const page: Page = await (context as BrowserContext).newPage()
    const natkit = JsonPeer.natkit({ role: 'controlled', bindAddress: '0.0.0.0', mdnsTimeoutMs: 1500 }, n.names[0])
    try {
      const offer = await page.evaluate(`(async () => {
        const pc = new RTCPeerConnection({ iceServers: [] })
        window.pc = pc
        pc.createDataChannel('natkit')
        const gathered = new Promise((resolve) => { pc.onicecandidate = (e) => { if (e.candidate === null) resolve() } })
        await pc.setLocalDescription(await pc.createOffer())
        await Promise.race([gathered, new Promise((resolve) => setTimeout(resolve, 10000))])
        return pc.localDescription.sdp
      })()`) as string
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
      const state = await page.evaluate(`(async (sdp) => {
        const pc = window.pc
        await pc.setRemoteDescription({ type: 'answer', sdp })
        const deadline = Date.now() + 15000
        while (!['connected', 'completed'].includes(pc.iceConnectionState) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20))
        return pc.iceConnectionState
      })(${JSON.stringify(answer)})`) as string
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
