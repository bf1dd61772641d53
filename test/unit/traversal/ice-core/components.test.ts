import { expect } from 'chai'
import { InvalidArgumentError } from '../../../../src/errors.js'
import { Priority } from '../../../../src/stun/index.js'
import { makeCandidate } from '../../../../src/traversal/candidate.js'
import { candidateKey } from '../../../../src/traversal/ice-core/check-list.js'
import { IceCore } from '../../../../src/traversal/ice-core/ice-core.js'
import type { IceAction } from '../../../../src/traversal/ice-core/types.js'
import { HOST, checks, decode, makeCore, peerCheck, remote, respond } from './harness.js'

const RTCP_HOST = makeCandidate({ type: 'host', address: '10.0.0.1', port: 5001, component: 2 })
const RTCP_BASE = candidateKey(RTCP_HOST)
const BASE1 = candidateKey(HOST)
const states = (actions: IceAction[]): string[] => actions.flatMap(a => a.type === 'state' ? [a.state] : [])

describe('IceCore with two components (RTP and RTCP without rtcp-mux, RFC 8445 §4, §6.1.2.6)', () => {
  function twoComponents (): IceCore {
    const core = makeCore({ components: 2, role: 'controlling', initialBurst: 1 }, [HOST, RTCP_HOST])
    core.addRemoteCandidates([remote(6000), remote(6001, { component: 2 })])
    return core
  }

  it('pairs each component with its own remote candidates; the same foundation waits in component 1 and is frozen in 2', () => {
    const core = twoComponents()
    expect(core.checks.pairs.map(p => [p.component, p.local.port, p.remote.port, p.state])).to.deep.equal([[1, 5000, 6000, 'waiting'], [2, 5001, 6001, 'frozen']])
    expect(core.checks.pairs[0].foundation).to.equal(core.checks.pairs[1].foundation)
  })

  it('unfreezes the other component when a pair of the foundation succeeds, and selects a pair per component', () => {
    const core = twoComponents()
    const c1 = checks(core.start(0))[0]
    expect(c1.base).to.equal(BASE1)
    const out1 = core.handle(BASE1, respond(c1), c1.to, 10)
    expect(core.checks.pairs[1].state).to.equal('waiting')
    expect(states(out1), 'one component is not connected yet').to.deep.equal([])
    // The nomination of component 1 went at once; component 2's first check is paced.
    const c2 = checks(core.tick(50)).filter(c => c.base === RTCP_BASE)[0]
    expect(c2.to.port).to.equal(6001)
    // PRIORITY carries the component (RFC 8445 §5.1.2.1: 256 - component).
    expect((decode(c2).get(Priority) ?? 0) & 0xff).to.equal(254)
    const out2 = core.handle(RTCP_BASE, respond(c2, { address: RTCP_HOST.address, port: RTCP_HOST.port }), c2.to, 60)
    expect(states(out2)).to.deep.equal(['connected'])
    expect(core.path(1)?.remote.port).to.equal(6000)
    expect(core.path(2)?.remote.port).to.equal(6001)
    expect(core.send(Buffer.from([0x80, 0xc8]), 2)).to.include({ base: RTCP_BASE })
    expect(core.send(Buffer.from([0x80, 0x60]), 1)).to.include({ base: BASE1 })
  })

  it('tags application data with the component of the base it arrived on', () => {
    const core = twoComponents()
    core.start(0)
    const from = { address: '10.0.0.2', port: 6001 }
    core.handle(RTCP_BASE, peerCheck(), from, 1)
    const out = core.handle(RTCP_BASE, Buffer.from([0x81, 0xc9, 0, 1]), from, 2)
    expect(out.map(a => a.type === 'data' ? a.component : 0)).to.deep.equal([2])
  })

  it('learns a component-2 peer-reflexive candidate on the component-2 base', () => {
    const core = twoComponents()
    core.handle(RTCP_BASE, peerCheck(), { address: '10.0.0.7', port: 7001 }, 1)
    expect(core.remote.find(r => r.port === 7001)?.component).to.equal(2)
    expect(core.checks.pairs.find(p => p.remote.port === 7001)?.component).to.equal(2)
  })

  it('rejects a component count outside 1-256', () => {
    expect(() => new IceCore({ now: 0, components: 0 })).to.throw(InvalidArgumentError)
  })
})
