import { expect } from 'chai'
import { InvalidArgumentError } from '../../../src/errors.js'
import { Agent, makeCandidate } from '../../../src/traversal/index.js'
import { FakeSocket } from '../../support/fake-socket.js'

describe('Agent and ICE-lite (RFC 8445 §2.5, §6.1.1)', () => {
  it('a lite agent is controlled, gathers host candidates only and sends nothing of its own', async () => {
    const socket = new FakeSocket({ address: '192.0.2.10', port: 5000 })
    const agent = await Agent.create({ socket, lite: true, role: 'controlling', stunServers: ['192.0.2.1:3478'], turnServers: [{ server: '192.0.2.1:3478', credentials: { username: 'u', password: 'p' } }] })
    try {
      expect(agent.role).to.equal('controlled')
      const local = await agent.gather()
      expect(local.map(c => c.type)).to.deep.equal(['host'])
      expect(agent.gatheringComplete).to.equal(true)
      agent.setRemoteCredentials('peer', 'peer-password-peer-password')
      agent.addRemoteCandidates([makeCandidate({ type: 'host', address: '192.0.2.20', port: 6000 })])
      agent.start()
      await new Promise(resolve => setTimeout(resolve, 50))
      expect(socket.sent).to.deep.equal([])
      expect(() => { agent.setRemoteLite() }).to.throw(InvalidArgumentError)
    } finally { await agent.close() }
  })

  it('a full agent facing a lite peer takes the controlling role', async () => {
    const agent = await Agent.create({ socket: new FakeSocket(), role: 'controlled' })
    try {
      agent.setRemoteLite()
      expect(agent.role).to.equal('controlling')
      expect(agent.remoteLite).to.equal(true)
    } finally { await agent.close() }
  })
})
