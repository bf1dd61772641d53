import { expect } from 'chai'
import { birthdaySprayProbability, estimateBirthdaySpray, predictPair } from '../../../src/discovery/predict.js'

const rnd = { pattern: 'random' as const, delta: null, samples: [] }
const seq = { pattern: 'sequential' as const, delta: 1, samples: [] }

describe('pair predictor: hard-NAT techniques', () => {
  it('computes the birthday-spray success probability', () => {
    expect(birthdaySprayProbability(256, 256)).to.be.closeTo(0.638, 0.01)
    expect(birthdaySprayProbability(256, 1024)).to.be.closeTo(0.983, 0.01)
    expect(birthdaySprayProbability(0, 1000)).to.equal(0)
    expect(birthdaySprayProbability(64512, 1)).to.equal(1)
  })
  it('offers a birthday spray, with its odds and cost, for symmetric (random ports) × port-restricted cone', () => {
    const p = predictPair({ type: 'symmetric', portAllocation: rnd }, { type: 'port-restricted-cone' })
    expect(p.strategy).to.equal('relay-udp')
    expect(p.alternatives).to.deep.equal(['birthday-spray'])
    expect(p.costs?.['birthday-spray']).to.match(/^256 sockets .* up to 2048 probes .*R = 64512.*: P = 1 − \(1 − N\/R\)\^M = 99\.97% \(98\.29% with 1024 probes\)/)
    expect(p.costs?.['birthday-spray']).to.match(/expected 252 probes \(508 packets .* ~252 ms at 1000\/s\), at most 2304 packets and 256 ports .* 2048 ms$/)
    expect(p.direct?.strategy).to.equal('birthday-spray')
    expect(p.direct?.enable).to.match(/--birthday-spray \(at both ends\)/)
    expect(p.direct?.spray?.probability).to.be.closeTo(0.99970, 0.00005)
  })
  it('the spray works the same whichever side is symmetric, and hedges when the port pattern was not measured', () => {
    const p = predictPair({ type: 'port-restricted-cone' }, { type: 'symmetric' })
    expect(p.direct?.strategy).to.equal('birthday-spray')
    expect(p.costs?.['birthday-spray']).to.match(/^if the symmetric side's ports are random: /)
  })
  it('offers no spray where punching works already (symmetric × restricted cone) or for sequential ports', () => {
    const r = predictPair({ type: 'symmetric', portAllocation: rnd }, { type: 'restricted-cone' })
    expect(r.strategy).to.equal('punch')
    expect(r.alternatives).to.not.include('birthday-spray')
    expect(r.direct).to.equal(undefined)
    const s = predictPair({ type: 'symmetric', portAllocation: seq }, { type: 'port-restricted-cone' })
    expect(s.alternatives).to.not.include('birthday-spray')
    expect(s.direct?.strategy).to.equal('port-prediction')
  })
  it('names no direct technique where none can work (symmetric × symmetric, random ports)', () => {
    const p = predictPair({ type: 'symmetric', portAllocation: rnd }, { type: 'symmetric', portAllocation: rnd })
    expect(p.strategy).to.equal('relay-udp')
    expect(p.direct).to.equal(undefined)
  })
  it('names port prediction at both ends for two sequential symmetric NATs, and none when one of them is random', () => {
    const p = predictPair({ type: 'symmetric', portAllocation: seq }, { type: 'symmetric', portAllocation: seq })
    expect(p.alternatives).to.deep.equal(['port-prediction'])
    expect(p.direct?.strategy).to.equal('port-prediction')
    expect(p.costs?.['port-prediction']).to.match(/in order: at most 12 checks per side/)
    expect(predictPair({ type: 'symmetric', portAllocation: seq }, { type: 'symmetric', portAllocation: rnd }).direct).to.equal(undefined)
  })
  it('estimates the spray: probability, expected probes (truncated geometric), packets and time', () => {
    const e = estimateBirthdaySpray({ sockets: 256, probes: 2048, portRange: 64512, rate: 1000 })
    const p = 256 / 64512
    expect(e.probability).to.be.closeTo(1 - Math.pow(1 - p, 2048), 1e-12)
    expect(e.expectedProbes).to.equal(Math.round((1 - Math.pow(1 - p, 2048)) / p))
    expect(e.packets).to.deep.equal({ expected: 256 + e.expectedProbes, max: 2304 })
    expect(e.timeMs).to.deep.equal({ expected: e.expectedProbes, max: 2048 })
    // A hopeless spray spends all its probes.
    const poor = estimateBirthdaySpray({ sockets: 1, probes: 100, portRange: 64512 })
    expect(poor.expectedProbes).to.equal(100)
    expect(poor.probability).to.be.closeTo(100 / 64512, 1e-5)
    // Sockets covering the whole range hit on the first probe.
    expect(estimateBirthdaySpray({ sockets: 1000, probes: 50, portRange: 1000 })).to.include({ probability: 1, expectedProbes: 1 })
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
    const tcpOnly = { type: 'udp-blocked' as const, tcp: true, tls: false, tcpPorts: [{ port: 443, outcome: 'open' }, { port: 3478, outcome: 'refused' }] }
    for (const other of [tcpOnly, { type: 'full-cone' as const }, { type: 'restricted-cone' as const }, { type: 'port-restricted-cone' as const, tcp: true }, { type: 'open' as const }]) {
      const p = predictPair(tcpOnly, other)
      expect(p.strategy, other.type).to.equal('relay-tcp')
      expect(p.alternatives[0], other.type).to.equal('tcp-simultaneous-open')
      expect(p.costs?.['tcp-simultaneous-open'], other.type).to.match(/connect\(\) per side .* RFC 4571 .* keeps the TCP source port/)
      expect(p.reason, other.type).to.match(/--tcp-punch/)
      expect(p.direct?.strategy, other.type).to.equal('tcp-simultaneous-open')
    }
  })
  it('offers no TCP simultaneous open where it cannot work or is not needed', () => {
    const cases: Array<[string, Parameters<typeof predictPair>[0], Parameters<typeof predictPair>[1]]> = [
      ['TCP blocked on one side', { type: 'udp-blocked', tcp: true }, { type: 'udp-blocked', tcp: false }],
      ['TCP blocked at the cone', { type: 'udp-blocked', tcp: true }, { type: 'port-restricted-cone', tcp: false }],
      ['a symmetric peer', { type: 'udp-blocked', tcp: true }, { type: 'symmetric', portAllocation: rnd }],
      ['only the web ports get out (443 and 80 open, the STUN port not)', {
        type: 'udp-blocked', tcp: true, tcpPorts: [{ port: 443, outcome: 'open' }, { port: 80, outcome: 'open' }, { port: 3478, outcome: 'timeout' }]
      }, { type: 'full-cone' }],
      ['UDP works on both sides', { type: 'port-restricted-cone' }, { type: 'full-cone' }]
    ]
    for (const [name, a, b] of cases) expect(predictPair(a, b).alternatives, name).to.not.include('tcp-simultaneous-open')
  })
})
