/**
 * Port mapping against a real miniupnpd (Debian's 2.3, nftables backend) on a lab site router, driven by natkit's
 * PCP, NAT-PMP and UPnP IGD clients through `natcheck`.
 *
 * The lab's servers are up, so miniupnpd passes its STUN self-check against the lab's RFC 5780 server and grants
 * mappings although its WAN address is in the RFC 5737 ranges (src/lab/miniupnpd.ts). Each protocol's mapping is
 * checked from outside through the STUN server, then removed; the router's mapping table (miniupnpd's nftables chains
 * and its lease file) is empty after every run, and after a client killed with SIGKILL once the short leases expire.
 */
import { expect } from 'chai'
import { readFileSync } from 'node:fs'
import { Lab, labDown } from '../../src/lab/index.js'
import { hasCommand, requireOrSkip } from '../support/env.js'
import { CLI } from '../support/cli.js'
import { requireLab } from './support/lab-helpers.js'

interface Outcome { protocol: string, speaks: boolean, externalIp: string | null, mapping: unknown, error: string | null, detail: string | null, ms: number, reachable: boolean | null, removed: boolean | null }
interface PortMapping { gateway: string | null, localIp: string | null, protocols: Outcome[], speaks: string[], externalIp: string | null, ms: number }

/** Every rule miniupnpd holds: its three nftables chains' rules, in the router namespace. */
async function routerRules (lab: Lab): Promise<string[]> {
  const r = await lab.exec('router-a', ['nft', '-a', 'list', 'table', 'inet', 'filter'])
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

  it('natcheck gets a mapping from each protocol, sees it reachable from outside, and removes it again', async () => {
    const r = await lab.exec('a', [process.execPath, CLI, '--server', lab.info.server.primaryIp, '--json', '--timeout', '1500'], { timeoutMs: 30_000 })
    expect(r.code, r.stderr).to.equal(0)
    const doc = JSON.parse(r.stdout) as { nat: { type: string }, portMapping: PortMapping }
    expect(doc.nat.type).to.equal('symmetric')
    const pm = doc.portMapping
    expect(pm.gateway).to.equal(lab.info.a.lanGateway)
    expect(pm.localIp).to.equal(lab.info.a.hostIp)
    expect(pm.speaks).to.deep.equal(['pcp', 'nat-pmp', 'upnp'])
    expect(pm.externalIp).to.equal(lab.info.a.wanIp)
    const ports = new Set<number>()
    for (const p of pm.protocols) {
      const where = JSON.stringify(p)
      expect(p.error, where).to.equal(null)
      const m = p.mapping as { externalIp: string, internalPort: number, externalPort: number } | null
      expect(m, where).to.not.equal(null)
      expect(m?.externalIp, where).to.equal(lab.info.a.wanIp)
      ports.add(m?.internalPort ?? 0)
      // Through the symmetric NAT nothing unsolicited gets in: only the mapping lets the server's answer through.
      expect(p.reachable, where).to.equal(true)
      expect(p.removed, where).to.equal(true)
      expect(p.ms, where).to.be.below(2500)
    }
    // One internal port per protocol: on one port the three would be one table entry the last protocol takes over.
    expect(ports.size).to.equal(3)
    expect(pm.protocols.find((x) => x.protocol === 'upnp')?.detail).to.equal('WANIPConnection:2')
    const human = await lab.exec('a', [process.execPath, CLI, '--server', lab.info.server.primaryIp, '--timeout', '1500'], { timeoutMs: 30_000 })
    expect(human.stdout).to.match(/^port mapping \(gateway 10\.0\.1\.1\): speaks PCP, NAT-PMP, UPnP IGD$/m)
    for (const name of ['PCP', 'NAT-PMP', 'UPnP IGD \\(WANIPConnection:2\\)']) {
      expect(human.stdout).to.match(new RegExp(`^  ${name}: external address 198\\.51\\.100\\.1; mapped udp \\d+ → 198\\.51\\.100\\.1:\\d+ for \\d+ s, reachable from outside \\(verified through the STUN server\\), removed again$`, 'm'))
    }
    expect(await routerRules(lab)).to.deep.equal([])
  })

  it('--no-portmap asks nothing: the gateway logs no request', async () => {
    const log = lab.upnp.find((p) => p.name === 'miniupnpd-a')?.logFile as string
    const before = readFileSync(log, 'utf8').length
    const r = await lab.exec('a', [process.execPath, CLI, '--server', lab.info.server.primaryIp, '--json', '--timeout', '1500', '--no-portmap'], { timeoutMs: 30_000 })
    expect((JSON.parse(r.stdout) as { portMapping: unknown }).portMapping).to.equal(null)
    expect(readFileSync(log, 'utf8').slice(before)).to.not.match(/NAT-PMP|PCP|HTTP REQUEST/)
  })

  it('a client killed with SIGKILL while it holds mappings leaves nothing once their short leases expire', async () => {
    const child = lab.spawn('a', [process.execPath, CLI, '--server', lab.info.server.primaryIp, '--json', '--timeout', '1500'], { stdio: 'ignore' })
    let held = 0
    try {
      for (let i = 0; i < 100 && held === 0; i++) {
        held = (await routerRules(lab)).filter((l) => /dnat/.test(l)).length
        if (held === 0) await new Promise((resolve) => setTimeout(resolve, 20))
      }
    } finally {
      child.kill('SIGKILL')
      await new Promise((resolve) => child.once('exit', resolve))
    }
    expect(held, 'the client held a mapping when it was killed').to.be.above(0)
    // natcheck asks for 20 s leases; miniupnpd removes expired ones itself.
    let rules = await routerRules(lab)
    for (let i = 0; i < 40 && rules.length > 0; i++) {
      await new Promise((resolve) => setTimeout(resolve, 1000))
      rules = await routerRules(lab)
    }
    expect(rules).to.deep.equal([])
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
