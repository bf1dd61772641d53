/**
 * Port prediction on real kernel NATs: site A behind a symmetric NAT with sequential ports (each new destination gets
 * the previous port + 1), site B behind a port-restricted cone. Standard punching cannot open that pair (B's filter
 * never saw the port A's NAT gives the flow towards B), so it relays; with `portPrediction` on, A measures its step
 * through the lab's RFC 5780 server and offers the next ports, B's paced checks to them open its filter, and the
 * pair goes direct over a predicted port.
 */
import { expect } from 'chai'
import { Lab, labDown, LAB_STUN_PORT } from '../../src/lab/index.js'
import type { PeerWorkerResult } from '../../src/lab/worker.js'
import { expectRelayed, requireLab, runLabPeers } from './support/lab-helpers.js'

const COUNT = 10

describe('lab: port prediction (symmetric-sequential × port-restricted cone)', function () {
  this.timeout(180_000)
  const prefix = `nkhp-p${process.pid % 10000}-`
  let lab: Lab

  before(async function () {
    requireLab(this, false)
    lab = await Lab.up({ natA: 'symmetric-sequential', natB: 'port-restricted-cone', servers: true, prefix })
  })
  after(async () => { await labDown(prefix) })

  /** Both peers through the lab's rendezvous and relay, both with prediction on or off. */
  const run = async (tag: string, predict: boolean): Promise<[PeerWorkerResult, PeerWorkerResult]> => {
    const extra = { stun: [`${lab.info.server.primaryIp}:${LAB_STUN_PORT}`], ...(predict ? { portPrediction: { ports: 12 } } : {}) }
    return await runLabPeers(lab, tag, COUNT, { a: extra, b: extra })
  }

  it('relays with prediction off', async () => {
    expectRelayed(await run('off', false), COUNT, 'prediction')
  })

  it('goes direct with prediction on, over one of the ports A predicted', async () => {
    const [a, b] = await run('on', true)
    const where = JSON.stringify({ a, b })
    expect(a.error, where).to.equal(null)
    expect(b.error, where).to.equal(null)
    expect(a.prediction?.reason, where).to.equal('predicted')
    expect(a.prediction?.delta, where).to.equal(1)
    expect(b.prediction?.reason, where).to.equal('endpoint-independent')
    expect(a.path?.type, where).to.equal('direct')
    expect(b.path?.type, where).to.equal('direct')
    // B reaches A at A's public address on a port A predicted (not the STUN-learned one).
    const [address, port] = (b.path?.remote.split(' ')[1] ?? '').split(':')
    expect(address, where).to.equal(lab.info.a.wanIp)
    expect(a.prediction?.ports, where).to.include(Number(port))
    expect(a.delivered, where).to.equal(COUNT)
    expect(b.delivered, where).to.equal(COUNT)
  })
})
