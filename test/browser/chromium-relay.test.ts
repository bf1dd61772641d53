import { expect } from 'chai'
import type { TurnServer } from '../../src/relay/turn-server.js'
import type { InMemoryRelayMetrics } from '../../src/relay/metrics.js'
import { HeadlessChromium, requireChromium, startLoopbackRelay, WEB_USER } from './support.js'

/** What the page reports back. (The page script is a string: this project compiles without the DOM types.) */
interface PageResult {
  readonly received: { a: string[], b: string[] }
  readonly local: string | undefined
  readonly remote: string | undefined
  readonly error?: string
}

describe('Chromium WebRTC through natkit\'s TURN relay (127.0.0.1 only)', function () {
  this.timeout(60_000)
  let server: TurnServer | undefined
  let browser: HeadlessChromium | undefined

  before(async function () {
    requireChromium(this)
    server = await startLoopbackRelay()
    browser = await HeadlessChromium.launch('natkit-chromium-')
  })

  after(async () => {
    await browser?.close()
    await server?.close()
  })

  it('connects two RTCPeerConnections relay/relay and carries data-channel messages both ways', async () => {
    const s = server as TurnServer
    const page = await (browser as HeadlessChromium).context.newPage()
    const url = `turn:127.0.0.1:${s.addresses.udp[0].port}?transport=udp`
    const result = await page.evaluate(`(async (url, user) => {
      const config = { iceServers: [{ urls: url, username: user.username, credential: user.credential }], iceTransportPolicy: 'relay' }
      const a = new RTCPeerConnection(config)
      const b = new RTCPeerConnection(config)
      const received = { a: [], b: [] }
      const within = (p, ms, what) => Promise.race([p, new Promise((_, reject) => setTimeout(() => reject(new Error('timed out: ' + what + ', ICE ' + a.iceConnectionState + '/' + b.iceConnectionState)), ms))])
      try {
        a.onicecandidate = (e) => { if (e.candidate !== null) void b.addIceCandidate(e.candidate) }
        b.onicecandidate = (e) => { if (e.candidate !== null) void a.addIceCandidate(e.candidate) }
        const dcA = a.createDataChannel('natkit')
        const dcB = await within(new Promise((resolve) => { b.ondatachannel = (e) => { resolve(e.channel) } ; void (async () => {
          await a.setLocalDescription(await a.createOffer())
          await b.setRemoteDescription(a.localDescription)
          await b.setLocalDescription(await b.createAnswer())
          await a.setRemoteDescription(b.localDescription)
        })() }), 20000, 'negotiation')
        const opened = async (dc) => { if (dc.readyState !== 'open') await new Promise((resolve) => { dc.onopen = resolve }) }
        await within(Promise.all([opened(dcA), opened(dcB)]), 20000, 'data channels opening')
        const all = new Promise((resolve) => {
          const done = () => { if (received.a.length === 3 && received.b.length === 3) resolve() }
          dcA.onmessage = (e) => { received.a.push(String(e.data)); done() }
          dcB.onmessage = (e) => { received.b.push(String(e.data)); done() }
        })
        for (let i = 0; i < 3; i++) { dcA.send('a→b ' + i); dcB.send('b→a ' + i) }
        await within(all, 10000, 'messages')
        // The selected pair, from the transport's selectedCandidatePairId.
        const stats = await a.getStats()
        let pairId
        stats.forEach((r) => { if (r.type === 'transport' && r.selectedCandidatePairId !== undefined) pairId = r.selectedCandidatePairId })
        const pair = pairId === undefined ? undefined : stats.get(pairId)
        const local = pair === undefined ? undefined : stats.get(pair.localCandidateId).candidateType
        const remote = pair === undefined ? undefined : stats.get(pair.remoteCandidateId).candidateType
        return { received, local, remote }
      } catch (err) {
        return { received, local: undefined, remote: undefined, error: String(err) }
      } finally {
        a.close(); b.close()
      }
    })(${JSON.stringify(url)}, ${JSON.stringify(WEB_USER)})`) as PageResult
    expect(result.error).to.equal(undefined)
    expect(result.received.b).to.deep.equal(['a→b 0', 'a→b 1', 'a→b 2'])
    expect(result.received.a).to.deep.equal(['b→a 0', 'b→a 1', 'b→a 2'])
    expect(result.local).to.equal('relay')
    expect(result.remote).to.equal('relay')
    const m = s.metrics as InMemoryRelayMetrics
    expect(m.get('natkit_relay_packets_total', 'client-to-peer')).to.be.greaterThan(10)
    expect(m.get('natkit_relay_packets_total', 'peer-to-client')).to.be.greaterThan(10)
    expect(m.total('natkit_relay_allocations_total')).to.be.at.least(2)
  })
})
