/**
 * The agent's port prediction against an RFC 5780 server on loopback: the measurement reaches all four of the server's
 * transport addresses (learned from OTHER-ADDRESS), loopback maps nothing, so the report says endpoint-independent
 * and no predicted candidate is offered. The predicting case needs a sequential NAT: test/lab/port-prediction.
 */
import { expect } from 'chai'
import { InvalidArgumentError } from '../../../src/errors.js'
import { StunServer } from '../../../src/stun/server.js'
import { Agent } from '../../../src/traversal/index.js'
import { expectRejection } from '../../support/assert.js'

describe('Agent: port prediction (loopback RFC 5780 server)', function () {
  this.timeout(20_000)
  let server: StunServer
  before(async () => { server = await StunServer.start({ listen: { address: '127.0.0.1', port: 0 }, alternate: { address: '127.0.0.2', port: 0 } }) })
  after(async () => { await server.close() })

  it('measures four mappings and reports endpoint-independent, offering no predicted ports', async () => {
    const port = server.addresses().udp[0].port
    const agent = await Agent.create({ bindAddress: '127.0.0.1', includeLoopback: true, stunServers: [`127.0.0.1:${port}`], portPrediction: true })
    try {
      await agent.gather()
      const p = agent.portPrediction
      expect(p?.reason).to.equal('endpoint-independent')
      expect(p?.samples).to.deep.equal([1, 2, 3, 4].map(() => agent.mux.socket.local.port))
      expect(p?.ports).to.deep.equal([])
      const attempt = agent.gatherAttempts.find(a => a.kind === 'prediction')
      expect(attempt?.reason).to.equal('endpoint-independent')
      expect(attempt?.ok).to.equal(false)
      expect(agent.local.filter(c => c.type === 'srflx')).to.deep.equal([])
    } finally {
      await agent.close()
    }
  })

  it('with no server to measure against: too-few-samples', async () => {
    const agent = await Agent.create({ bindAddress: '127.0.0.1', portPrediction: true })
    try {
      await agent.gather()
      expect(agent.portPrediction?.reason).to.equal('too-few-samples')
    } finally {
      await agent.close()
    }
  })

  it('rejects a burst larger than 64 ports', async () => {
    await expectRejection(Agent.create({ bindAddress: '127.0.0.1', portPrediction: { ports: 500 } }), InvalidArgumentError)
  })
})
