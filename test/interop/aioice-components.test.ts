import { expect } from 'chai'
import { TurnServer } from '../../src/relay/turn-server.js'
import { Agent, buildIceSdp, parseIceSdp, type AgentOptions } from '../../src/traversal/index.js'
import { requireOrSkip } from '../support/env.js'
import { JsonPeer, PYTHON, aioiceAvailable, collect } from './support/json-peer.js'

const RTP = '80e0000100000064cafebabe0102030405'
const RTCP = '81c80006cafebabe0000000000000000'

describe('interop: two components (RTP and RTCP without rtcp-mux) with aioice (python3-aioice, components=2)', function () {
  this.timeout(60_000)
  before(function () {
    requireOrSkip(this, aioiceAvailable(), `${PYTHON} cannot import aioice (apt-get install python3-aioice)`)
  })

  async function twoComponents (role: 'controlling' | 'controlled', extra: AgentOptions = {}): Promise<void> {
    const agent = await Agent.create({ bindAddress: '127.0.0.1', role, components: 2, ...extra })
    const peer = JsonPeer.aioice(role === 'controlling' ? 'controlled' : 'controlling', { components: 2 })
    try {
      const local = await agent.gather()
      expect(local.map(c => [c.component, c.type]).sort()).to.deep.equal(extra.policy === 'relay' ? [[1, 'relay'], [2, 'relay']] : [[1, 'host'], [2, 'host']])
      const theirs = await peer.next('local')
      const remote = parseIceSdp([`a=ice-ufrag:${theirs.ufrag}`, `a=ice-pwd:${theirs.pwd}`, ...theirs.candidates.map(c => `a=${c}`)].join('\r\n'))
      expect([remote.components, remote.rtcpMux]).to.deep.equal([2, false])
      agent.setRemoteCredentials(remote.ufrag as string, remote.pwd as string)
      agent.addRemoteCandidates(remote.candidates)
      agent.setRemoteGatheringComplete()
      peer.write({ type: 'remote', ufrag: agent.ufrag, pwd: agent.pwd, candidates: buildIceSdp({ ufrag: agent.ufrag, pwd: agent.pwd, candidates: local }).filter(l => l.startsWith('a=candidate:')) })
      agent.start()
      const connected = await peer.next('connected', 20_000)
      const deadline = Date.now() + 10_000
      while ((agent.pathOf(1) === undefined || agent.pathOf(2) === undefined) && Date.now() < deadline) await new Promise(resolve => setTimeout(resolve, 10))
      const [p1, p2] = [agent.pathOf(1), agent.pathOf(2)]
      expect([p1?.component, p2?.component]).to.deep.equal([1, 2])
      expect(p1?.local.port).to.not.equal(p2?.local.port)
      expect([p1?.local.type, p2?.local.type]).to.deep.equal(extra.policy === 'relay' ? ['relay', 'relay'] : ['host', 'host'])
      // aioice nominated one pair per component, each ending at natkit's base of that component.
      expect(connected.components?.['1']?.[1][1]).to.equal(p1?.local.port)
      expect(connected.components?.['2']?.[1][1]).to.equal(p2?.local.port)
      // natkit → aioice: each datagram arrives on its component.
      expect(agent.send(Buffer.from(RTP, 'hex'), 1)).to.equal(true)
      expect(agent.send(Buffer.from(RTCP, 'hex'), 2)).to.equal(true)
      const got = await collect(() => peer.receivedDocs(), 2)
      expect(got.map(d => [d.component, d.hex]).sort()).to.deep.equal([[1, RTP], [2, RTCP]])
      // aioice → natkit: the message event carries the component.
      const back: Array<[number, string]> = []
      agent.on('message', (d, component) => { back.push([component, d.toString('hex')]) })
      peer.write({ type: 'send', hex: RTP, component: 1 })
      peer.write({ type: 'send', hex: RTCP, component: 2 })
      expect((await collect(() => back.splice(0), 2)).sort()).to.deep.equal([[1, RTP], [2, RTCP]])
    } finally { await peer.stop(); await agent.close() }
  }

  for (const role of ['controlling', 'controlled'] as const) {
    it(`natkit ${role}: a selected pair per component, RTP on 1 and RTCP on 2 both ways`, async () => { await twoComponents(role) })
  }

  it('relay-only on the natkit side (natkit\'s TURN server): a relayed candidate and a relayed pair per component', async () => {
    const turn = await TurnServer.start({ listen: [{ address: '127.0.0.1', port: 0 }], realm: 'natkit.test', users: { u: 'p' }, allowPeer: ['127.0.0.0/8'] })
    try {
      await twoComponents('controlling', { policy: 'relay', turnServers: [{ server: `127.0.0.1:${turn.addresses.udp[0].port}`, credentials: { username: 'u', password: 'p' } }] })
    } finally { await turn.close() }
  })
})
