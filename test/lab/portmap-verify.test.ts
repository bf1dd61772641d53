/**
 * A port mapping verified from outside, not assumed: behind a real symmetric NAT, natkit's check (RFC 5780
 * CHANGE-REQUEST + RESPONSE-PORT through the lab's STUN server) sees the answer come in only when the router really
 * forwards the external port. The forward is made by hand with nftables here, so that both outcomes are under the
 * test's control. natcheck's own check of a granted mapping, against a real miniupnpd on the router, is
 * portmap-miniupnpd.test.ts.
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
