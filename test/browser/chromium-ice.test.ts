import { relayPortBase } from '../support/net.js'
import { expect } from 'chai'
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { chromium, type BrowserContext, type Page } from 'playwright-core'
import { TurnServer } from '../../src/relay/turn-server.js'
import { Agent, buildIceSdp, parseIceSdp } from '../../src/traversal/index.js'
import { requireOrSkip } from '../support/env.js'
import { freePort } from '../integration/relay/support.js'

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

describe('Chromium RTCPeerConnection ↔ natkit Agent as the remote ICE agent (127.0.0.1 only)', function () {
  this.timeout(60_000)
  let server: TurnServer | undefined
  let context: BrowserContext | undefined
  let profile: string | undefined

  before(async function () {
    requireOrSkip(this, existsSync(CHROMIUM), `${CHROMIUM} not installed (Debian package chromium)`)
    const port = await freePort()
    const base = relayPortBase()
    server = await TurnServer.start({
      realm: 'natkit.test', users: { web: 'webpass' }, listen: [{ address: '127.0.0.1', port }],
      allowPeer: ['127.0.0.0/8'], portRange: [base, base + 199]
    })
    profile = mkdtempSync(join(tmpdir(), 'natkit-chromium-ice-'))
    context = await chromium.launchPersistentContext(profile, { executablePath: CHROMIUM, headless: true, args: ARGS, timeout: 30_000 })
  })

  after(async () => {
    await context?.close()
    await server?.close()
    if (profile !== undefined) rmSync(profile, { recursive: true, force: true })
  })

  it('Chromium (offerer, controlling, relay-only through natkit\'s TURN on loopback) reaches iceConnectionState connected with natkit', async () => {
    const s = server as TurnServer
    const page: Page = await (context as BrowserContext).newPage()
    const agent = await Agent.create({ bindAddress: '127.0.0.1', role: 'controlled' })
    try {
      // Chromium's candidates are all relayed on 127.0.0.1: nothing leaves loopback.
      const url = `turn:127.0.0.1:${s.addresses.udp[0].port}?transport=udp`
      const offer = await page.evaluate(`(async (url) => {
        const pc = new RTCPeerConnection({ iceServers: [{ urls: url, username: 'web', credential: 'webpass' }], iceTransportPolicy: 'relay' })
        window.pc = pc
        pc.createDataChannel('natkit')
        const gathered = new Promise((resolve) => { pc.onicecandidate = (e) => { if (e.candidate === null) resolve() } })
        await pc.setLocalDescription(await pc.createOffer())
        await Promise.race([gathered, new Promise((resolve) => setTimeout(resolve, 10000))])
        return pc.localDescription.sdp
      })(${JSON.stringify(url)})`) as string
      const remote = parseIceSdp(offer)
      expect(remote.ufrag).to.be.a('string')
      expect(remote.options).to.include('trickle')
      expect(remote.candidates.map(c => c.type)).to.include('relay')
      agent.setRemoteCredentials(remote.ufrag as string, remote.pwd as string)
      agent.addRemoteCandidates(remote.candidates)
      const local = await agent.gather()
      const dtls: Buffer[] = []
      agent.on('message', (d) => { dtls.push(d) })
      agent.start()
      const answer = answerSdp(buildIceSdp({ ufrag: agent.ufrag, pwd: agent.pwd, options: ['trickle'], candidates: local, endOfCandidates: true }))
      const state = await page.evaluate(`(async (sdp) => {
        const pc = window.pc
        await pc.setRemoteDescription({ type: 'answer', sdp })
        const deadline = Date.now() + 15000
        while (!['connected', 'completed'].includes(pc.iceConnectionState) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20))
        return pc.iceConnectionState
      })(${JSON.stringify(answer)})`) as string
      expect(state).to.be.oneOf(['connected', 'completed'])
      const until = Date.now() + 5000
      while (agent.path === undefined && Date.now() < until) await new Promise(resolve => setTimeout(resolve, 20))
      expect(agent.path, JSON.stringify(agent.attempts().map(a => [a.remote.type, a.remote.address, a.remote.port, a.state, a.outcome, a.detail, a.nominated]))).to.not.equal(undefined)
      expect(agent.path?.local.type).to.equal('host')
      expect(agent.path?.remote.type).to.equal('relay')
      // With a=setup:passive Chromium is the DTLS client: its ClientHello reaches natkit's app raw (RFC 7983: 20-63).
      const deadline = Date.now() + 5000
      while (dtls.length === 0 && Date.now() < deadline) await new Promise(resolve => setTimeout(resolve, 20))
      expect(dtls.length, 'a DTLS record from Chromium').to.be.above(0)
      expect(dtls[0][0]).to.equal(22) // handshake record
    } finally {
      await page.evaluate('window.pc && window.pc.close()').catch(() => {})
      await page.close()
      await agent.close()
    }
  })
})
