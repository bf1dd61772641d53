/** Lab bring-up and teardown on the real kernel: speed, idempotence, crash recovery, isolation. */
import { expect } from 'chai'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { InvalidArgumentError, LabError } from '../../src/errors.js'
import { Lab, labDown, LAB_NODES, listLabs } from '../../src/lab/index.js'
import { listNetns } from '../../src/lab/netns.js'
import { labStateDir } from '../../src/lab/state.js'
import { requireLab } from './support/lab-helpers.js'

async function expectReject (p: Promise<unknown>, cls: new (...args: any[]) => Error): Promise<void> {
  let err: unknown
  await p.then(() => { err = undefined }, (e: unknown) => { err = e })
  expect(err).to.be.instanceOf(cls)
}

async function labNamespaces (prefix: string): Promise<string[]> {
  return (await listNetns()).filter((n) => n.startsWith(prefix)).sort()
}

describe('Lab lifecycle', function () {
  this.timeout(30_000)
  const prefix = `nk-t${process.pid % 10000}-`
  const labs: Lab[] = []

  before(function () { requireLab(this, false) })
  after(async function () {
    for (const lab of labs) await lab.down()
    await labDown(prefix)
  })

  it('comes up in well under 3 s with six namespaces and a state file', async function () {
    const lab = await Lab.up({ natA: 'symmetric-sequential', natB: 'full-cone', hairpin: true, prefix })
    labs.push(lab)
    expect(lab.upMs).to.be.below(3000)
    expect(await labNamespaces(prefix)).to.deep.equal(LAB_NODES.map((n) => prefix + n).sort())
    expect(existsSync(join(labStateDir(), `${prefix}.json`))).to.equal(true)
    const status = (await listLabs()).find((s) => s.info.prefix === prefix)
    expect(status?.complete).to.equal(true)
    const addr = await lab.exec('server', ['ip', '-4', '-o', 'addr', 'show', 'dev', 'eth0'])
    expect(addr.stdout).to.include('203.0.113.10/25').and.include('203.0.113.11/25')
    this.test!.title += ` (${lab.upMs} ms)`
  })

  it('up is idempotent: a second up with the same prefix replaces the first lab', async function () {
    const lab = await Lab.up({ natA: 'none', natB: 'udp-blocked', prefix })
    labs.push(lab)
    expect(lab.info.a.publicIp).to.equal(lab.info.a.hostIp)
    expect(await labNamespaces(prefix)).to.have.length(LAB_NODES.length)
    const rules = await lab.exec('router-b', ['nft', 'list', 'ruleset'])
    expect(rules.stdout).to.include('tcp dport { 80, 443 } accept')
  })

  it('attach drives a lab from its state file; labDown cleans up without a Lab object (crash recovery)', async function () {
    const attached = await Lab.attach(prefix)
    const r = await attached.exec('a', ['ip', '-4', '-o', 'addr', 'show', 'dev', 'eth0'])
    expect(r.stdout).to.include(attached.info.a.hostIp)
    const sleeper = attached.spawn('a', ['sleep', '30'], { stdio: 'ignore' })
    await labDown(prefix)
    expect(await labNamespaces(prefix)).to.deep.equal([])
    expect(existsSync(join(labStateDir(), `${prefix}.json`))).to.equal(false)
    await new Promise<void>((resolve) => { if (sleeper.exitCode !== null || sleeper.signalCode !== null) resolve(); else sleeper.once('exit', () => resolve()) })
    expect(sleeper.signalCode).to.equal('SIGKILL')
    await expectReject(Lab.attach(prefix), InvalidArgumentError)
  })

  it('down is idempotent and kills the processes it spawned', async function () {
    const lab = await Lab.up({ natA: 'full-cone', natB: 'full-cone', prefix })
    const child = lab.spawn('server', ['sleep', '30'], { stdio: 'ignore' })
    await Promise.all([lab.down(), lab.down()])
    await lab.down()
    expect(child.exitCode !== null || child.signalCode !== null).to.equal(true)
    expect(await labNamespaces(prefix)).to.deep.equal([])
    await expectReject(lab.exec('a', ['true']), LabError)
  })
})
