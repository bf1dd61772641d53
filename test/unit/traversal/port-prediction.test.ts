import { expect } from 'chai'
import { InvalidArgumentError } from '../../../src/errors.js'
import { makeCandidate } from '../../../src/traversal/candidate.js'
import {
  PREDICTED_LOCAL_PREFERENCE, isPredictedCandidate, predictedBurst, predictedPortCount, predictPorts, type AllocationSample
} from '../../../src/traversal/port-prediction.js'

const at = (ports: number[], address = '198.51.100.1', local = 40000): AllocationSample[] => ports.map(external => ({ local, external, address }))

describe('predictPorts', () => {
  const cases: Array<{ name: string, samples: AllocationSample[], count: number, reason: string, delta: number | null, ports: number[] }> = [
    { name: 'a step of 1 (one stray mapping in between) predicts the next ports', samples: at([50005, 50007, 50008, 50009]), count: 4, reason: 'predicted', delta: 1, ports: [50010, 50011, 50012, 50013] },
    { name: 'a step of 2', samples: at([1000, 1002, 1004]), count: 3, reason: 'predicted', delta: 2, ports: [1006, 1008, 1010] },
    { name: 'a falling step', samples: at([6000, 5999, 5998]), count: 2, reason: 'predicted', delta: -1, ports: [5997, 5996] },
    { name: 'ports past 65535 are left out', samples: at([65532, 65533, 65534]), count: 3, reason: 'predicted', delta: 1, ports: [65535] },
    { name: 'one port for every destination: endpoint-independent, nothing to predict', samples: at([33010, 33010, 33010, 33010]), count: 4, reason: 'endpoint-independent', delta: null, ports: [] },
    { name: 'random ports: not sequential', samples: at([41234, 9876, 61002, 23456]), count: 4, reason: 'not-sequential', delta: null, ports: [] },
    { name: 'two different ports are too few to see a step', samples: at([50000, 50001]), count: 4, reason: 'too-few-samples', delta: null, ports: [] },
    { name: 'no answer at all', samples: [], count: 4, reason: 'too-few-samples', delta: null, ports: [] }
  ]
  for (const c of cases) {
    it(c.name, () => {
      const p = predictPorts(c.samples, c.count)
      expect(p.reason).to.equal(c.reason)
      expect(p.delta).to.equal(c.delta)
      expect(p.ports).to.deep.equal(c.ports)
      expect(p.samples).to.deep.equal(c.samples.map(s => s.external))
    })
  }

  it('the same port from two public addresses is not endpoint-independent', () => {
    const p = predictPorts([...at([5000], '198.51.100.1'), ...at([5000], '198.51.100.2')], 4)
    expect(p.reason).to.equal('too-few-samples')
  })
})

describe('predictedPortCount', () => {
  it('defaults to 12 and accepts 1..64', () => {
    expect(predictedPortCount({})).to.equal(12)
    expect(predictedPortCount({ ports: 1 })).to.equal(1)
    expect(predictedPortCount({ ports: 64 })).to.equal(64)
  })
  for (const ports of [0, 65, 2.5, -1]) {
    it(`rejects ${ports} ports`, () => {
      expect(() => predictedPortCount({ ports })).to.throw(InvalidArgumentError)
    })
  }
})

describe('predictedBurst', () => {
  const predicted = (port: number, k: number) => makeCandidate({ type: 'srflx', address: '192.0.2.1', port, base: '10.0.2.10', server: 'port-prediction', localPreference: PREDICTED_LOCAL_PREFERENCE - k })
  // Trickled out of order, with the peer's other candidates in between.
  const remote = [
    predicted(50007, 2), makeCandidate({ type: 'host', address: '10.0.2.10', port: 4000 }), predicted(50005, 0),
    makeCandidate({ type: 'srflx', address: '192.0.2.1', port: 50000 }), makeCandidate({ type: 'relay', address: '203.0.113.10', port: 6000, localPreference: PREDICTED_LOCAL_PREFERENCE }), predicted(50006, 1)
  ]
  it('recognises a natkit peer\'s predicted candidates by their local preference band', () => {
    expect(remote.map(isPredictedCandidate)).to.deep.equal([true, false, true, false, false, true])
  })
  it('sends to the peer\'s predicted ports in the order the peer predicted them, when this side predicted too', () => {
    expect(predictedBurst({ reason: 'predicted' }, remote).map(e => e.port)).to.deep.equal([50005, 50006, 50007])
  })
  for (const reason of ['endpoint-independent', 'not-sequential', 'too-few-samples'] as const) {
    it(`sends nothing ahead of the checks when this side's measurement says ${reason}`, () => {
      expect(predictedBurst({ reason }, remote)).to.deep.equal([])
    })
  }
  it('sends nothing without a measurement', () => { expect(predictedBurst(undefined, remote)).to.deep.equal([]) })
})
