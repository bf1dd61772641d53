/**
 * Port mapping against a real miniupnpd (Debian's 2.3, nftables backend) on a lab site router, driven by natkit's
 * PCP, NAT-PMP and UPnP IGD clients through `natcheck`.
 *
 * What the lab can show: the gateway speaks all three protocols, natcheck names them and the reason each gives, the
 * clients stay within their deadlines, and the router's mapping table (miniupnpd's nftables chains and its lease
 * file) is empty after a run, also after a client killed with SIGKILL. What it cannot: a granted mapping, because
 * miniupnpd refuses to forward while its external address is in the RFC 5737 ranges the lab must use as the
 * internet (see src/lab/miniupnpd.ts); the tests assert that refusal, so they fail if the situation changes.
 */
import { expect } from 'chai'
import { readFileSync } from 'node:fs'
import { Lab, labDown } from '../../src/lab/index.js'
import { hasCommand, requireOrSkip } from '../support/env.js'
import { CLI } from '../support/cli.js'
import { requireLab } from './support/lab-helpers.js'

interface Outcome { protocol: string, speaks: boolean, externalIp: string | null, mapping: unknown, error: string | null, detail: string | null, ms: number, removed: boolean | null }
interface PortMapping { gateway: string | null, localIp: string | null, protocols: Outcome[], speaks: string[], externalIp: string | null, ms: number }

/** Every rule miniupnpd holds: its three nftables chains' rules, in the router namespace. */
async function routerRules (lab: Lab): Promise<string[]> {
  const r = await lab.exec('router-a', ['nft', '-a', 'list', 'table', 'ip', 'filter'])
  expect(r.code, r.stderr).to.equal(0)
  return r.stdout.split('\n').map((l) => l.trim()).filter((l) => /(dnat|snat|accept|drop)\b/.test(l) && !l.startsWith('type '))
}

describe('lab: port mapping against a real miniupnpd', function () {
  this.timeout(90_000)
  const prefix = `nkhn-p${process.pid % 10000}-`
  let lab: Lab

  before(async function () {
    requireLab(this, false)
    requireOrSkip(this, hasCommand('miniupnpd'), 'the port-mapping lab tests need miniupnpd (apt install miniupnpd)')
    lab = await Lab.up({ natA: 'symmetric', natB: 'none', upnp: ['a'], servers: true, prefix })
  })
  after(async function () { await labDown(prefix) })

  it('natcheck names every protocol the gateway speaks and the reason each refuses, within its deadline', async () => {
    const r = await lab.exec('a', [process.execPath, CLI, '--server', lab.info.server.primaryIp, '--json', '--timeout', '1500'], { timeoutMs: 30_000 })
    expect(r.code, r.stderr).to.equal(0)
    const doc = JSON.parse(r.stdout) as { nat: { type: string }, portMapping: PortMapping }
    expect(doc.nat.type).to.equal('symmetric')
    const pm = doc.portMapping
    expect(pm.gateway).to.equal(lab.info.a.lanGateway)
    expect(pm.localIp).to.equal(lab.info.a.hostIp)
    expect(pm.speaks).to.deep.equal(['pcp', 'nat-pmp', 'upnp'])
    const by = (p: string): Outcome => pm.protocols.find((x) => x.protocol === p) as Outcome
    // miniupnpd: "Reserved / private IP address 198.51.100.1 on ext interface wan: Port forwarding is impossible".
    expect(by('pcp').error).to.equal('NO_RESOURCES')
    expect(by('nat-pmp').error).to.equal('NETWORK_FAILURE')
    expect(by('upnp').detail).to.equal('WANIPConnection:2')
    expect(by('upnp').error).to.match(/^UPnP error 501/)
    for (const p of pm.protocols) {
      expect(p.mapping, p.protocol).to.equal(null)
      expect(p.ms, p.protocol).to.be.below(2500)
    }
    const human = await lab.exec('a', [process.execPath, CLI, '--server', lab.info.server.primaryIp, '--timeout', '1500'], { timeoutMs: 30_000 })
    expect(human.stdout).to.match(/^port mapping \(gateway 10\.0\.1\.1\): speaks PCP, NAT-PMP, UPnP IGD$/m)
    expect(await routerRules(lab)).to.deep.equal([])
  })

  it('--no-portmap asks nothing: the gateway logs no request', async () => {
    const log = lab.upnp.find((p) => p.name === 'miniupnpd-a')?.logFile as string
    const before = readFileSync(log, 'utf8').length
    const r = await lab.exec('a', [process.execPath, CLI, '--server', lab.info.server.primaryIp, '--json', '--timeout', '1500', '--no-portmap'], { timeoutMs: 30_000 })
    expect((JSON.parse(r.stdout) as { portMapping: unknown }).portMapping).to.equal(null)
    expect(readFileSync(log, 'utf8').slice(before)).to.not.match(/NAT-PMP|PCP|HTTP REQUEST/)
  })

  it('leaves the router table and lease file empty after a client killed with SIGKILL mid-run', async () => {
    const child = lab.spawn('a', [process.execPath, CLI, '--server', lab.info.server.primaryIp, '--json', '--timeout', '1500'], { stdio: 'ignore' })
    await new Promise((resolve) => setTimeout(resolve, 400))
    child.kill('SIGKILL')
    await new Promise((resolve) => child.once('exit', resolve))
    await new Promise((resolve) => setTimeout(resolve, 1500))
    expect(await routerRules(lab)).to.deep.equal([])
    const leases = lab.upnp.find((p) => p.name === 'miniupnpd-a')?.files?.find((f) => f.endsWith('.leases')) as string
    let text = ''
    try { text = readFileSync(leases, 'utf8') } catch { /* miniupnpd writes it only when it holds a lease */ }
    expect(text.trim()).to.equal('')
  })

  it('lab down stops miniupnpd by its recorded PID and removes its config, lease and log files', async () => {
    const p = lab.upnp.find((x) => x.name === 'miniupnpd-a')
    expect(p, 'miniupnpd recorded in the lab state').to.not.equal(undefined)
    const alive = (pid: number): boolean => { try { process.kill(pid, 0); return true } catch { return false } }
    expect(alive(p!.pid)).to.equal(true)
    const { existsSync } = await import('node:fs')
    const second = `${prefix.slice(0, -1)}d-`
    let q: { pid: number, logFile: string, files?: string[] } | undefined
    try {
      q = (await Lab.up({ natA: 'symmetric', natB: 'none', upnp: ['a'], prefix: second })).upnp[0]
      expect(alive(q.pid)).to.equal(true)
    } finally {
      await labDown(second)
    }
    expect(alive(q.pid)).to.equal(false)
    for (const f of [q.logFile, ...(q.files ?? [])]) expect(existsSync(f), f).to.equal(false)
  })

  it('without miniupnpd the gateway speaks nothing, and natcheck still finishes within the deadline', async () => {
    const r = await lab.exec('b', [process.execPath, CLI, '--server', lab.info.server.primaryIp, '--json', '--timeout', '1500'], { timeoutMs: 30_000 })
    const pm = (JSON.parse(r.stdout) as { portMapping: PortMapping }).portMapping
    expect(pm.speaks).to.deep.equal([])
    for (const p of pm.protocols) expect(p.ms, p.protocol).to.be.below(2500)
  })
})
