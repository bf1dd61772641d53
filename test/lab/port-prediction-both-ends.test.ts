/**
 * Port prediction at both ends on real kernel NATs (symmetric-sequential × symmetric-sequential). The one-sided case
 * (symmetric-sequential × port-restricted cone) is test/lab/port-prediction.
 */
import { expect } from 'chai'
import { Lab, labDown, LAB_STUN_PORT } from '../../src/lab/index.js'
import type { PeerWorkerResult } from '../../src/lab/worker.js'
import { expectRelayed, requireLab, runLabPeers, type PeerExtras } from './support/lab-helpers.js'

const COUNT = 10

/**
 * Two sequential symmetric NATs, both peers predicting: each side's first new flows after its measurement go to the
 * other's predicted ports in order (the agent's prediction burst), so A's flow a+k → b+k and B's flow b+k → a+k are
 * each other's reply and the pair opens without a relay. Without prediction it relays.
 */
describe('lab: port prediction at both ends (symmetric-sequential × symmetric-sequential)', function () {
  this.timeout(180_000)
  const prefix = `nksq-p${process.pid % 10000}-`
  let lab: Lab

  before(async function () {
    requireLab(this, false)
    lab = await Lab.up({ natA: 'symmetric-sequential', natB: 'symmetric-sequential', servers: true, prefix })
  })
  after(async () => { await labDown(prefix) })

  const run = async (tag: string, predict: boolean): Promise<[PeerWorkerResult, PeerWorkerResult]> => {
    const side: PeerExtras = { stun: [`${lab.info.server.primaryIp}:${LAB_STUN_PORT}`], ...(predict ? { portPrediction: { ports: 12 } } : {}) }
    return await runLabPeers(lab, tag, COUNT, { a: side, b: side })
  }

  it('relays with prediction off', async () => {
    expectRelayed(await run('off', false), COUNT, 'prediction')
  })

  it('goes direct with prediction at both ends, between ports both sides predicted', async () => {
    const [a, b] = await run('on', true)
    const where = JSON.stringify({ a, b })
    expect(a.error, where).to.equal(null)
    expect(b.error, where).to.equal(null)
    expect(a.prediction?.reason, where).to.equal('predicted')
    expect(b.prediction?.reason, where).to.equal('predicted')
    expect(a.path?.type, where).to.equal('direct')
    expect(b.path?.type, where).to.equal('direct')
    const remote = (r: PeerWorkerResult): [string, number] => { const [ip, port] = (r.path?.remote.split(' ')[1] ?? '').split(':'); return [ip, Number(port)] }
    const [aSeesIp, aSeesPort] = remote(a)
    const [bSeesIp, bSeesPort] = remote(b)
    expect(aSeesIp, where).to.equal(lab.info.b.wanIp)
    expect(bSeesIp, where).to.equal(lab.info.a.wanIp)
    // Each reaches the other on a port the other predicted: the k-th on both sides.
    expect(b.prediction?.ports, where).to.include(aSeesPort)
    expect(a.prediction?.ports, where).to.include(bSeesPort)
    expect(a.prediction?.ports.indexOf(bSeesPort), where).to.equal(b.prediction?.ports.indexOf(aSeesPort))
    expect(a.delivered, where).to.equal(COUNT)
    expect(b.delivered, where).to.equal(COUNT)
  })
})
