import { expect } from 'chai'
import { MessageClass, StunMessage, shortTermKey } from '../../../src/stun/index.js'
import { Agent, makeCandidate } from '../../../src/traversal/index.js'
import { buildCheckRequest } from '../../../src/traversal/ice-core/check-messages.js'
import { FakeSocket } from '../../support/fake-socket.js'

describe('Agent components (RTP and RTCP apart, or rtcp-mux as one)', () => {
  it('gathers a host candidate per component on its own socket and answers component-2 checks on that socket', async () => {
    const rtp = new FakeSocket({ address: '192.0.2.10', port: 5000 })
    const rtcp = new FakeSocket({ address: '192.0.2.10', port: 5001 })
    const agent = await Agent.create({ socket: rtp, componentSockets: [rtcp], components: 2 })
    try {
      expect(agent.components).to.equal(2)
      const local = await agent.gather()
      expect(local.map(c => [c.component, c.port])).to.deep.equal([[1, 5000], [2, 5001]])
      agent.setRemoteCredentials('peer', 'peer-password-peer-pass')
      agent.addRemoteCandidates([makeCandidate({ type: 'host', address: '192.0.2.20', port: 6001, component: 2 })])
      const check = buildCheckRequest({ localUfrag: 'peer', remoteUfrag: agent.ufrag, remoteKey: shortTermKey(agent.pwd), priority: 1, role: 'controlled', tiebreaker: 1n, nominate: false })
      rtcp.deliver(check, { address: '192.0.2.20', port: 6001 })
      const answers = rtcp.sent.filter(s => StunMessage.decode(s.data).cls === MessageClass.SuccessResponse)
      expect(answers.map(a => a.to.port)).to.deep.equal([6001])
      expect(rtp.sent).to.deep.equal([])
      const got: Array<[number, string]> = []
      agent.on('message', (d, component) => { got.push([component, d.toString('hex')]) })
      rtcp.deliver(Buffer.from('81c90001', 'hex'), { address: '192.0.2.20', port: 6001 })
      await new Promise(resolve => setImmediate(resolve))
      expect(got).to.deep.equal([[2, '81c90001']])
    } finally { await agent.close() }
    expect(rtcp.closed, 'a given socket is the caller\'s').to.equal(false)
  })

  it('runs one component with rtcpMux, whatever components says', async () => {
    const agent = await Agent.create({ socket: new FakeSocket(), components: 2, rtcpMux: true })
    try {
      expect(agent.components).to.equal(1)
      expect((await agent.gather()).map(c => c.component)).to.deep.equal([1])
    } finally { await agent.close() }
  })
})
