import { expect } from 'chai'
import { Lab, type LabNatType } from '../../src/lab/index.js'
import { CLI } from '../support/cli.js'
import { PROBE, requireLab, startTurnserver, STUN_ALT_PORT, STUN_PORT, type LabProcess } from './support/lab-helpers.js'

/**
 * natcheck against real kernel NATs: for every lab NAT type, with and without hairpinning, natcheck's JSON report
 * must equal the ground truth the lab was built to have. The server is natkit's own RFC 5780 server in the lab's
 * server namespace (203.0.113.10 and .11); a few types are repeated against coturn and Vovida stund.
 */

interface Truth {
  type: string
  mapping: string
  filtering: string
  pattern: string
  delta?: number
  hairpinTested: boolean
}

const TRUTH: Record<LabNatType, Truth> = {
  none: { type: 'open', mapping: 'endpoint-independent', filtering: 'endpoint-independent', pattern: 'preserving', hairpinTested: false },
  'full-cone': { type: 'full-cone', mapping: 'endpoint-independent', filtering: 'endpoint-independent', pattern: 'preserving', hairpinTested: true },
  'restricted-cone': { type: 'restricted-cone', mapping: 'endpoint-independent', filtering: 'address-dependent', pattern: 'preserving', hairpinTested: true },
  'port-restricted-cone': { type: 'port-restricted-cone', mapping: 'endpoint-independent', filtering: 'address-and-port-dependent', pattern: 'preserving', hairpinTested: true },
  symmetric: { type: 'symmetric', mapping: 'address-and-port-dependent', filtering: 'address-and-port-dependent', pattern: 'random', hairpinTested: true },
  'symmetric-sequential': { type: 'symmetric', mapping: 'address-and-port-dependent', filtering: 'address-and-port-dependent', pattern: 'sequential', delta: 1, hairpinTested: true },
  'udp-blocked': { type: 'udp-blocked', mapping: 'unknown', filtering: 'unknown', pattern: 'unknown', hairpinTested: false },
  'tcp-only': { type: 'udp-blocked', mapping: 'unknown', filtering: 'unknown', pattern: 'unknown', hairpinTested: false }
}

interface Report {
  nat: { type: string, mapping: string, filtering: string, hairpinning: boolean | null, portAllocation: { pattern: string, delta: number | null }, behindNat: boolean | null, alg: boolean | null }
  udp: boolean
  tcp: boolean | null
  timings: { totalMs: number }
}

async function natcheckIn (lab: Lab, server: string, extra: string[] = []): Promise<Report> {
  const r = await lab.exec('a', [process.execPath, CLI, '--server', server, '--json', '--timeout', '1500', ...extra], { timeoutMs: 30_000 })
  if (r.stdout.trim() === '') throw new Error(`natcheck printed nothing (exit ${r.code}): ${r.stderr}`)
  return JSON.parse(r.stdout) as Report
}

async function waitUntilAnswering (lab: Lab, p: LabProcess, to: string): Promise<void> {
  for (let i = 0; i < 50; i++) {
    if (p.child.exitCode !== null) throw new Error(`server exited: ${p.output()}`)
    const r = await lab.exec('server', [process.execPath, PROBE, 'stun-ping', JSON.stringify({ to, timeoutMs: 300 })], { timeoutMs: 5000 })
    if (r.code === 0) return
    await new Promise(resolve => setTimeout(resolve, 100))
  }
  throw new Error(`server at ${to} never answered: ${p.output()}`)
}

function capture (child: LabProcess['child']): LabProcess {
  let out = ''
  child.stdout?.on('data', (d: Buffer) => { out = (out + d.toString()).slice(-4000) })
  child.stderr?.on('data', (d: Buffer) => { out = (out + d.toString()).slice(-4000) })
  return { child, output: () => out }
}

/** natkit's RFC 5780 server on both public addresses, plus STUN over TCP on port 443 (what a udp-blocked site lets out). */
async function startNatkitServer (lab: Lab): Promise<LabProcess[]> {
  const { primaryIp, secondaryIp } = lab.info.server
  const main = capture(lab.spawn('server', [process.execPath, CLI, 'server', '--listen', `${primaryIp}:${STUN_PORT}`, '--alternate', `${secondaryIp}:${STUN_ALT_PORT}`, '--tcp'], { stdio: ['ignore', 'pipe', 'pipe'] }))
  const https = capture(lab.spawn('server', [process.execPath, CLI, 'server', '--listen', `${primaryIp}:443`, '--tcp'], { stdio: ['ignore', 'pipe', 'pipe'] }))
  await waitUntilAnswering(lab, main, `${secondaryIp}:${STUN_ALT_PORT}`)
  await waitUntilAnswering(lab, https, `${primaryIp}:443`)
  return [main, https]
}

async function stop (procs: LabProcess[]): Promise<void> {
  await Promise.all(procs.map(async (p) => {
    if (p.child.exitCode !== null || p.child.signalCode !== null) return
    const exited = new Promise<void>(resolve => p.child.once('exit', () => { resolve() }))
    p.child.kill('SIGTERM')
    const t = setTimeout(() => { p.child.kill('SIGKILL') }, 2000)
    await exited
    clearTimeout(t)
  }))
}

function expectTruth (r: Report, nat: LabNatType, hairpin: boolean): void {
  const t = TRUTH[nat]
  const where = `${nat}${hairpin ? ' +hairpin' : ''}: ${JSON.stringify(r.nat)}`
  expect(r.nat.type, where).to.equal(t.type)
  expect(r.nat.mapping, where).to.equal(t.mapping)
  expect(r.nat.filtering, where).to.equal(t.filtering)
  expect(r.nat.portAllocation.pattern, where).to.equal(t.pattern)
  if (t.delta !== undefined) expect(r.nat.portAllocation.delta, where).to.equal(t.delta)
  expect(r.nat.hairpinning, where).to.equal(t.hairpinTested ? hairpin : null)
  if (nat === 'udp-blocked' || nat === 'tcp-only') {
    expect(r.udp, where).to.equal(false)
    expect(r.tcp, where).to.equal(true)
  } else {
    expect(r.udp, where).to.equal(true)
    expect(r.nat.alg, where).to.equal(false)
  }
}

describe('lab: natcheck classifies every real kernel NAT', function () {
  this.timeout(120_000)
  const types = Object.keys(TRUTH) as LabNatType[]
  const labs: Array<{ lab: Lab, nat: LabNatType, hairpin: boolean, procs: LabProcess[] }> = []

  before(async function () {
    requireLab(this, false)
    for (const hairpin of [false, true]) {
      for (const nat of types) {
        if (!TRUTH[nat].hairpinTested && hairpin) continue
        const lab = await Lab.up({ natA: nat, natB: 'none', hairpin })
        labs.push({ lab, nat, hairpin, procs: [] })
      }
    }
    for (const l of labs) l.procs = await startNatkitServer(l.lab)
  })
  after(async () => {
    for (const l of labs) { await stop(l.procs); await l.lab.down() }
  })

  for (const hairpin of [false, true]) {
    for (const nat of Object.keys(TRUTH) as LabNatType[]) {
      if (!TRUTH[nat].hairpinTested && hairpin) continue
      it(`${nat}${hairpin ? ' with hairpinning' : ''}: natcheck's JSON equals the ground truth`, async () => {
        const l = labs.find(x => x.nat === nat && x.hairpin === hairpin)
        if (l === undefined) throw new Error('lab missing')
        const r = await natcheckIn(l.lab, `${l.lab.info.server.primaryIp}:${STUN_PORT}`)
        expectTruth(r, nat, hairpin)
      })
    }
  }
})

describe('lab: natcheck against coturn and Vovida stund', function () {
  this.timeout(120_000)
  const cases: LabNatType[] = ['full-cone', 'restricted-cone', 'port-restricted-cone', 'symmetric']

  for (const nat of cases) {
    it(`${nat}: the same facts against coturn's turnserver (two IPs, alternate port)`, async function () {
      requireLab(this)
      const lab = await Lab.up({ natA: nat, natB: 'none', hairpin: true })
      let server: LabProcess | undefined
      try {
        server = await startTurnserver(lab)
        const r = await natcheckIn(lab, `${lab.info.server.primaryIp}:${STUN_PORT}`)
        expectTruth(r, nat, true)
      } finally {
        if (server !== undefined) await stop([server])
        await lab.down()
      }
    })
  }

  for (const nat of ['full-cone', 'port-restricted-cone', 'symmetric'] as LabNatType[]) {
    it(`${nat}: the same mapping and filtering against Vovida stund (classic RFC 3489)`, async function () {
      requireLab(this, false)
      const { hasCommand, requireOrSkip } = await import('../support/env.js')
      requireOrSkip(this, hasCommand('stund'), 'Vovida stund is not installed (apt-get install stun-server)')
      const lab = await Lab.up({ natA: nat, natB: 'none', hairpin: true })
      let server: LabProcess | undefined
      try {
        const { primaryIp, secondaryIp } = lab.info.server
        server = capture(lab.spawn('server', ['stund', '-h', primaryIp, '-a', secondaryIp], { stdio: ['ignore', 'pipe', 'pipe'] }))
        await waitUntilAnswering(lab, server, `${primaryIp}:${STUN_PORT}`)
        const r = await natcheckIn(lab, `${primaryIp}:${STUN_PORT}`)
        const t = TRUTH[nat]
        expect(r.nat.type, JSON.stringify(r.nat)).to.equal(t.type)
        expect(r.nat.mapping).to.equal(t.mapping)
        expect(r.nat.filtering).to.equal(t.filtering)
      } finally {
        if (server !== undefined) await stop([server])
        await lab.down()
      }
    })
  }
})

describe('lab: natcheck --lifetime measures the mapping lifetime', function () {
  this.timeout(120_000)
  it('brackets an 8 s UDP mapping timeout between the 5 s and 10 s checkpoints', async function () {
    requireLab(this, false)
    const lab = await Lab.up({ natA: 'port-restricted-cone', natB: 'none', udpTimeoutS: 8 })
    let procs: LabProcess[] = []
    try {
      procs = await startNatkitServer(lab)
      const r = await lab.exec('a', [process.execPath, CLI, '--server', `${lab.info.server.primaryIp}:${STUN_PORT}`, '--json', '--lifetime', '20'], { timeoutMs: 60_000 })
      const doc = JSON.parse(r.stdout) as { nat: { mappingLifetimeS: number | null, mappingLifetimeIsLowerBound: boolean } }
      expect(doc.nat.mappingLifetimeS, r.stderr).to.equal(5)
      expect(doc.nat.mappingLifetimeIsLowerBound, 'a checkpoint after 8 s saw the mapping expired').to.equal(false)
    } finally {
      await stop(procs)
      await lab.down()
    }
  })
})
