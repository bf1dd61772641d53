import { expect } from 'chai'
import { MATRIX_TYPES, matrixMarkdown, runConnectMatrix, type MatrixCell } from '../../src/lab/matrix.js'
import { requireLab } from './support/lab-helpers.js'

const COUNT = 10

/**
 * The connection matrix on real kernel NATs: for every pair of lab NAT types the two hosts connect through natkit's
 * rendezvous and relay and exchange datagrams both ways; the path is direct exactly where standard punching can open
 * it, relay elsewhere; and `natcheck pair`, fed both hosts' real discovery reports, predicts what happened.
 */
describe('lab: connection matrix (every pair of NAT types)', function () {
  this.timeout(20 * 60_000)
  let cells: MatrixCell[] = []

  before(async function () {
    requireLab(this, false)
    cells = await runConnectMatrix({ count: COUNT })
    process.stderr.write(`\n${matrixMarkdown(cells)}\n\n`)
  })

  for (let i = 0; i < MATRIX_TYPES.length; i++) {
    for (let j = i; j < MATRIX_TYPES.length; j++) {
      const a = MATRIX_TYPES[i]; const b = MATRIX_TYPES[j]
      it(`${a} × ${b}`, () => {
        const c = cells.find(x => x.a === a && x.b === b)
        if (c === undefined) throw new Error('cell missing')
        const where = JSON.stringify(c)
        expect(c.peerA.error, where).to.equal(null)
        expect(c.peerB.error, where).to.equal(null)
        expect(c.peerA.path, where).to.equal(c.expected)
        expect(c.peerB.path, where).to.equal(c.expected)
        expect(c.peerA.delivered, where).to.equal(COUNT)
        expect(c.peerB.delivered, where).to.equal(COUNT)
        const predictedPath = c.predicted === 'direct' || c.predicted === 'punch' ? 'direct' : c.predicted === null ? null : 'relay'
        expect(predictedPath, `natcheck pair predicted ${String(c.predicted)} for ${c.predictedTypes.join(' × ')}`).to.equal(c.expected)
      })
    }
  }
})
