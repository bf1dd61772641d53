import { expect } from 'chai'
import { availableParallelism } from 'node:os'
import { portSlice, reusePortUnavailable, workerCount } from '../../../src/cli/relay-workers.js'
import { newCore, Harness } from './harness.js'
import { MessageClass } from '../../../src/stun/index.js'

describe('relay workers (natcheck relay --workers)', () => {
  it('splits the relay port range into disjoint slices covering it', () => {
    const range: [number, number] = [49152, 65535]
    for (const n of [1, 2, 3, 7]) {
      const slices = Array.from({ length: n }, (_, i) => portSlice(range, i, n))
      expect(slices[0][0]).to.equal(49152)
      expect(slices[n - 1][1]).to.equal(65535)
      for (let i = 1; i < n; i++) expect(slices[i][0]).to.equal(slices[i - 1][1] + 1)
    }
    expect(() => portSlice([50000, 50002], 0, 2)).to.throw(/too small for 2 workers/)
  })

  it('defaults to the CPU count and refuses nonsense', () => {
    expect(workerCount(undefined)).to.equal(availableParallelism())
    expect(workerCount(3)).to.equal(3)
    for (const bad of [0, -1, 1.5, Number.NaN]) expect(() => workerCount(bad)).to.throw(/--workers/)
  })

  it('says why workers cannot share UDP listeners without native I/O', () => {
    expect(reusePortUnavailable({ nativeIo: false })).to.match(/SO_REUSEPORT needs native UDP I\/O: --native-io off/)
    expect(reusePortUnavailable({ nativeIo: false, udp: false })).to.equal(undefined)
  })

  it('adds allocations held by other workers when checking the quotas', () => {
    const core = newCore({ userQuota: 3, totalQuota: 5 })
    const elsewhere = { alice: 2, total: 2 }
    core.quotaElsewhere = { user: (u) => u === 'alice' ? elsewhere.alice : 0, total: () => elsewhere.total }
    expect(new Harness(core, { address: '198.51.100.7', port: 1 }).allocate().res?.cls).to.equal(MessageClass.SuccessResponse)
    expect(Harness.errorCode(new Harness(core, { address: '198.51.100.7', port: 2 }).allocate().res)).to.equal(486) // 1 here + 2 elsewhere
    elsewhere.alice = 0; elsewhere.total = 4
    expect(Harness.errorCode(new Harness(core, { address: '198.51.100.7', port: 3 }).allocate().res)).to.equal(486) // 1 + 4 = total 5
    elsewhere.total = 3
    expect(new Harness(core, { address: '198.51.100.7', port: 4 }).allocate().res?.cls).to.equal(MessageClass.SuccessResponse)
  })
})
