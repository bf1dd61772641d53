/**
 * A port mapping verified from outside, not assumed: behind a real symmetric NAT, natkit's check (RFC 5780
 * CHANGE-REQUEST + RESPONSE-PORT through the lab's STUN server) sees the answer come in only when the router really
 * forwards the external port. The forward is made by hand with nftables here, so that both outcomes are under the
 * test's control (portmap-miniupnpd.test.ts checks real miniupnpd grants the same way).
 */
import { expect } from 'chai'
import { fileURLToPath } from 'node:url'
import { Lab, labDown } from '../../src/lab/index.js'
import { requireLab } from './support/lab-helpers.js'

const VERIFY = fileURLToPath(new URL('./support/verify-mapping.js', import.meta.url))

describe('lab: a port mapping is verified through the STUN server', function () {
  this.timeout(60_000)
  const prefix = `nkhn-v${process.pid % 10000}-`
  let lab: Lab
  before(async function () {
    requireLab(this, false)
    lab = await Lab.up({ natA: 'symmetric', natB: 'none', servers: true, prefix })
  })
  after(async function () { await labDown(prefix) })

  const verify = async (internalPort: number, externalPort: number): Promise<string> => {
    const r = await lab.exec('a', [process.execPath, VERIFY, JSON.stringify({ server: `${lab.info.server.primaryIp}:3478`, internalPort, externalPort })], { timeoutMs: 10_000 })
    expect(r.code, r.stderr).to.equal(0)
    return r.stdout.trim()
  }

  it('is not reachable without a forward: a symmetric NAT drops the changed-address answer', async () => {
    expect(await verify(40500, 40500)).to.equal('false')
  })

  it('is reachable once the router forwards the external port to the internal one, and only at that port', async () => {
    const rules = `table ip nkhn_fwd {\n chain pre { type nat hook prerouting priority dstnat - 10; policy accept;\n  iifname "wan" udp dport 40600 dnat to ${lab.info.a.hostIp}:40500\n }\n}\n`
    const r = await lab.exec('router-a', ['nft', '-f', '-'], { input: rules })
    expect(r.code, r.stderr).to.equal(0)
    expect(await verify(40500, 40600)).to.equal('true')
    expect(await verify(40500, 40601)).to.equal('false')
  })
})

describe('lab: natcheck with a gateway that grants and really forwards', function () {
  this.timeout(60_000)
  const prefix = `nkhn-g${process.pid % 10000}-`
  let lab: Lab
  before(async function () {
    requireLab(this, false)
    lab = await Lab.up({ natA: 'symmetric', natB: 'none', servers: true, prefix })
  })
  after(async function () { await labDown(prefix) })

  it('reports the grant, verifies it from outside through the STUN server, and leaves the router table empty', async () => {
    const gwScript = fileURLToPath(new URL('./support/forwarding-gateway.js', import.meta.url))
    const gw = lab.spawn('router-a', [process.execPath, gwScript, JSON.stringify({ bind: lab.info.a.lanGateway, externalIp: lab.info.a.wanIp })], { stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    gw.stdout?.on('data', (d: Buffer) => { out += d.toString() })
    gw.stderr?.on('data', (d: Buffer) => { out += d.toString() })
    for (let i = 0; i < 100 && !out.includes('ready'); i++) await new Promise((resolve) => setTimeout(resolve, 50))
    expect(out).to.include('ready')
    const { CLI } = await import('../support/cli.js')
    const r = await lab.exec('a', [process.execPath, CLI, '--server', lab.info.server.primaryIp, '--json', '--timeout', '1500'], { timeoutMs: 30_000 })
    expect(r.code, r.stderr).to.equal(0)
    const pm = (JSON.parse(r.stdout) as { portMapping: { speaks: string[], protocols: Array<{ protocol: string, mapping: { externalIp: string, externalPort: number } | null, reachable: boolean | null, removed: boolean | null }> } }).portMapping
    expect(pm.speaks).to.deep.equal(['pcp', 'nat-pmp'])
    for (const p of pm.protocols.filter((x) => x.protocol !== 'upnp')) {
      expect(p.mapping?.externalIp, p.protocol).to.equal(lab.info.a.wanIp)
      expect(p.reachable, p.protocol).to.equal(true)
      expect(p.removed, p.protocol).to.equal(true)
    }
    const table = await lab.exec('router-a', ['nft', 'list', 'chain', 'ip', 'nkhn_pm', 'pre'])
    expect(table.stdout).to.not.include('dnat')
  })
})
