import { expect } from 'chai'
import { matrixMarkdown, matrixPairs, runConnectMatrix, type MatrixCell } from '../../src/lab/matrix.js'
import { hasCommand, requireOrSkip } from '../support/env.js'
import { requireLab } from './support/lab-helpers.js'

const COUNT = 10

/**
 * The connection matrix on real kernel NATs, every opt-in technique on: for every pair of the eight lab NAT types
 * (and the pairs that relay otherwise again with miniupnpd on one or both routers) the two hosts connect through
 * natkit's rendezvous and relay and exchange datagrams both ways. The path is direct exactly where some technique can
 * open it, by that technique (standard punching, port mapping, port prediction, the birthday spray, TCP simultaneous
 * open), relay elsewhere; and `natcheck pair`, fed both hosts' real `natcheck --json` reports, predicts it.
 */
describe('lab: connection matrix (every pair of NAT types, ± UPnP, all techniques)', function () {
  this.timeout(30 * 60_000)
  let cells: MatrixCell[] = []

  before(async function () {
    requireLab(this, false)
    requireOrSkip(this, hasCommand('miniupnpd'), 'the matrix\'s port-mapping cells need miniupnpd (apt install miniupnpd)')
    cells = await runConnectMatrix({ count: COUNT })
    process.stderr.write(`\n${matrixMarkdown(cells)}\n\n`)
  })

  for (const p of matrixPairs()) {
    const name = `${p.a} × ${p.b}${p.upnp.length > 0 ? ` (UPnP on ${p.upnp.join(' and ')})` : ''}`
    it(name, () => {
      const c = cells.find(x => x.a === p.a && x.b === p.b && x.upnp.join() === p.upnp.join())
      if (c === undefined) throw new Error('cell missing')
      const where = JSON.stringify(c)
      expect(c.peerA.error, where).to.equal(null)
      expect(c.peerB.error, where).to.equal(null)
      expect(c.peerA.path, where).to.equal(c.expected)
      expect(c.peerB.path, where).to.equal(c.expected)
      expect(c.technique, where).to.equal(c.expectedTechnique)
      expect(c.peerA.delivered, where).to.equal(COUNT)
      expect(c.peerB.delivered, where).to.equal(COUNT)
      expect(c.predictedTechnique, `natcheck pair predicted ${String(c.predicted)} for ${c.predictedTypes.join(' × ')}`).to.equal(c.expectedTechnique)
    })
  }

  it('goes direct in every cell where a technique can, and relays only the rest', () => {
    const direct = cells.filter(c => c.peerA.path === 'direct' && c.peerB.path === 'direct').length
    const possible = cells.filter(c => c.expected === 'direct').length
    process.stderr.write(`direct: ${direct} of ${cells.length} cells (${possible} possible)\n`)
    expect(direct).to.equal(possible)
  })
})
