import { expect } from 'chai'
import { birthdaySprayProbability, predictPair } from '../../../src/discovery/predict.js'

const rnd = { pattern: 'random' as const, delta: null, samples: [] }
const seq = { pattern: 'sequential' as const, delta: 1, samples: [] }

describe('pair predictor: hard-NAT techniques', () => {
  it('computes the birthday-spray success probability', () => {
    expect(birthdaySprayProbability(256, 256)).to.be.closeTo(0.638, 0.01)
    expect(birthdaySprayProbability(256, 1024)).to.be.closeTo(0.983, 0.01)
    expect(birthdaySprayProbability(0, 1000)).to.equal(0)
    expect(birthdaySprayProbability(64512, 1)).to.equal(1)
  })
  it('offers a birthday spray, with its odds, for symmetric (random ports) × port-restricted cone', () => {
    const p = predictPair({ type: 'symmetric', portAllocation: rnd }, { type: 'port-restricted-cone' })
    expect(p.strategy).to.equal('relay-udp')
    expect(p.alternatives).to.deep.equal(['birthday-spray'])
    expect(p.costs?.['birthday-spray']).to.match(/256 sockets .* 1024 probes .*: 98%/)
  })
  it('offers no spray for symmetric × symmetric', () => {
    expect(predictPair({ type: 'symmetric', portAllocation: rnd }, { type: 'symmetric', portAllocation: rnd }).alternatives).to.deep.equal([])
  })
  it('prices port prediction for sequential ports', () => {
    const p = predictPair({ type: 'symmetric', portAllocation: seq }, { type: 'port-restricted-cone' })
    expect(p.alternatives).to.deep.equal(['port-prediction'])
    expect(p.costs?.['port-prediction']).to.match(/burst/)
  })
  it('puts port mapping first when a side\'s gateway granted one, never when the pair is direct anyway', () => {
    const p = predictPair({ type: 'symmetric', portAllocation: rnd, portMapped: true }, { type: 'symmetric', portAllocation: rnd })
    expect(p.alternatives[0]).to.equal('port-mapping')
    expect(predictPair({ type: 'open', portMapped: true }, { type: 'symmetric' }).alternatives).to.deep.equal([])
  })
  it('offers TCP simultaneous open, first and with its cost, when a UDP-blocked side gets TCP out and the other side can take a SYN', () => {
    const tcpOnly = { type: 'udp-blocked' as const, tcp: true, tls: false }
    for (const other of [tcpOnly, { type: 'full-cone' as const }, { type: 'restricted-cone' as const }, { type: 'port-restricted-cone' as const, tcp: true }, { type: 'open' as const }]) {
      const p = predictPair(tcpOnly, other)
      expect(p.strategy, other.type).to.equal('relay-tcp')
      expect(p.alternatives[0], other.type).to.equal('tcp-simultaneous-open')
      expect(p.costs?.['tcp-simultaneous-open'], other.type).to.match(/connect\(\) per side .* RFC 4571 .* keeps the TCP source port/)
      expect(p.reason, other.type).to.match(/--tcp-punch/)
    }
  })
  it('offers no TCP simultaneous open where it cannot work or is not needed', () => {
    const cases: Array<[string, Parameters<typeof predictPair>[0], Parameters<typeof predictPair>[1]]> = [
      ['TCP blocked on one side', { type: 'udp-blocked', tcp: true }, { type: 'udp-blocked', tcp: false }],
      ['TCP blocked at the cone', { type: 'udp-blocked', tcp: true }, { type: 'port-restricted-cone', tcp: false }],
      ['a symmetric peer', { type: 'udp-blocked', tcp: true }, { type: 'symmetric', portAllocation: rnd }],
      ['UDP works on both sides', { type: 'port-restricted-cone' }, { type: 'full-cone' }]
    ]
    for (const [name, a, b] of cases) expect(predictPair(a, b).alternatives, name).to.not.include('tcp-simultaneous-open')
  })
})
