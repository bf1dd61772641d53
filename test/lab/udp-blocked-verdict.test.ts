/**
 * Discovery when UDP is blocked, on a real kernel firewall (the lab's `udp-blocked` site: only TCP 80/443 out).
 * natcheck must tell "UDP blocked, TCP 443 open" (the server answers TCP, even with a refusal) from "offline"
 * (nothing answers at all), and advise TURN over TLS on 443.
 */
import { expect } from 'chai'
import { Lab, labDown } from '../../src/lab/index.js'
import { CLI } from '../support/cli.js'
import { requireLab } from './support/lab-helpers.js'

interface Report {
  udp: boolean
  udpRefused: boolean | null
  tcp: boolean | null
  nat: { type: string }
  tcpPorts: Array<{ address: string, port: number, outcome: string }> | null
  verdict: { summary: string, advice: string[] }
}

async function natcheckIn (lab: Lab): Promise<{ code: number | null, report: Report }> {
  const r = await lab.exec('a', [process.execPath, CLI, '--server', lab.info.server.primaryIp, '--json', '--timeout', '1500'], { timeoutMs: 30_000 })
  if (r.stdout.trim() === '') throw new Error(`natcheck printed nothing (exit ${r.code}): ${r.stderr}`)
  return { code: r.code, report: JSON.parse(r.stdout) as Report }
}

const outcomes = (r: Report): string[] => (r.tcpPorts ?? []).map((p) => `${p.port} ${p.outcome}`)

describe('lab: natcheck behind a firewall that blocks UDP', function () {
  this.timeout(90_000)
  const prefix = `nkhn-u${process.pid % 10000}-`
  before(function () { requireLab(this, false) })
  afterEach(async function () { await labDown(prefix) })

  it('with the lab servers (TURN on TCP 443, rendezvous on 80): "UDP blocked, TCP 443 and 80 open"', async () => {
    const lab = await Lab.up({ natA: 'udp-blocked', natB: 'none', servers: true, prefix })
    const { code, report } = await natcheckIn(lab)
    expect(code).to.equal(0)
    expect(report.udp).to.equal(false)
    expect(report.nat.type).to.equal('udp-blocked')
    // The STUN port itself (3478) is probed too: the firewall drops it, so TCP punching is not offered.
    expect(outcomes(report)).to.deep.equal(['443 open', '80 open', '3478 timeout'])
    expect(report.verdict.summary).to.match(/^UDP blocked, TCP 443 and 80 open/)
    expect(report.verdict.advice[0]).to.match(/TURN over TLS on port 443/)
  })

  it('with nothing listening: the refusals prove the path is open, so still "UDP blocked", not offline', async () => {
    const lab = await Lab.up({ natA: 'udp-blocked', natB: 'none', servers: false, prefix })
    const { code, report } = await natcheckIn(lab)
    expect(code).to.equal(0)
    expect(report.tcp).to.equal(false)
    // The firewall drops UDP silently: no "port unreachable" comes back to confuse it with a missing server.
    expect(report.udpRefused).to.equal(false)
    expect(report.nat.type).to.equal('udp-blocked')
    expect(outcomes(report)).to.deep.equal(['443 refused', '80 refused', '3478 timeout'])
    expect(report.verdict.advice[0]).to.match(/TURN over TLS on port 443/)
  })

  it('when the server host drops everything: offline (exit 2), every TCP connect timed out', async () => {
    const lab = await Lab.up({ natA: 'udp-blocked', natB: 'none', servers: false, prefix })
    const drop = await lab.exec('server', ['nft', '-f', '-'], { input: 'table ip nkhn_drop {\n chain in { type filter hook input priority filter; policy drop; }\n}\n' })
    expect(drop.code, drop.stderr).to.equal(0)
    const { code, report } = await natcheckIn(lab)
    expect(code).to.equal(2)
    expect(report.nat.type).to.equal('unknown')
    expect(outcomes(report)).to.deep.equal(['443 timeout', '80 timeout', '3478 timeout'])
    expect(report.verdict.summary).to.match(/^Offline/)
  })
})
