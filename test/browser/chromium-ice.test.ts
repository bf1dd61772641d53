import { expect } from 'chai'
import type { Page } from 'playwright-core'
import type { TurnServer } from '../../src/relay/turn-server.js'
import { Agent, buildIceSdp, parseIceSdp } from '../../src/traversal/index.js'
import { answerAndWaitScript, answerSdp, HeadlessChromium, offerScript, requireChromium, startLoopbackRelay, WEB_USER } from './support.js'

describe('Chromium RTCPeerConnection ↔ natkit Agent as the remote ICE agent (127.0.0.1 only)', function () {
  this.timeout(60_000)
  let server: TurnServer | undefined
  let browser: HeadlessChromium | undefined

  before(async function () {
    requireChromium(this)
    server = await startLoopbackRelay()
    browser = await HeadlessChromium.launch('natkit-chromium-ice-')
  })

  after(async () => {
    await browser?.close()
    await server?.close()
  })

  it('Chromium (offerer, controlling, relay-only through natkit\'s TURN on loopback) reaches iceConnectionState connected with natkit', async () => {
    const s = server as TurnServer
    const page: Page = await (browser as HeadlessChromium).context.newPage()
    const agent = await Agent.create({ bindAddress: '127.0.0.1', role: 'controlled' })
    try {
      // Chromium's candidates are all relayed on 127.0.0.1: nothing leaves loopback.
      const url = `turn:127.0.0.1:${s.addresses.udp[0].port}?transport=udp`
      const offer = await page.evaluate(offerScript({ iceServers: [{ urls: url, ...WEB_USER }], iceTransportPolicy: 'relay' })) as string
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
      const state = await page.evaluate(answerAndWaitScript(answer)) as string
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
