/**
 * Every lab NAT type, judged by a third party: coturn's turnserver (RFC 5780 mode, two addresses) in
 * the server namespace and `turnutils_natdiscovery -m -f -H` on the hosts. All labs run side by side
 * (distinct prefixes), which also shows that parallel labs do not interfere.
 */
import { expect } from 'chai'
import { Lab } from '../../src/lab/index.js'
import type { LabNatType, LabSite } from '../../src/lab/index.js'
import { parseNatDiscovery, requireLab, startTurnserver } from './support/lab-helpers.js'
import type { Behaviour, NatDiscoveryVerdict } from './support/lab-helpers.js'

const EIM: Behaviour = 'endpoint-independent'
const ADx: Behaviour = 'address-dependent'
const APD: Behaviour = 'address-and-port-dependent'

/** What natdiscovery must report per type. `none` looks like EIM + EIF from the host's side. */
const EXPECTED: Record<LabNatType, { mapping?: Behaviour, filtering?: Behaviour, udpBlocked?: true }> = {
  none: { mapping: EIM, filtering: EIM },
  'full-cone': { mapping: EIM, filtering: EIM },
  'restricted-cone': { mapping: EIM, filtering: ADx },
  'port-restricted-cone': { mapping: EIM, filtering: APD },
  symmetric: { mapping: APD, filtering: APD },
  'symmetric-sequential': { mapping: APD, filtering: APD },
  'udp-blocked': { udpBlocked: true },
  'tcp-only': { udpBlocked: true }
}

interface Case { natA: LabNatType, natB: LabNatType, hairpin: boolean }

const CASES: Case[] = []
for (const hairpin of [false, true]) {
  CASES.push(
    { natA: 'full-cone', natB: 'restricted-cone', hairpin },
    { natA: 'port-restricted-cone', natB: 'symmetric', hairpin },
    { natA: 'symmetric-sequential', natB: 'none', hairpin }
  )
}
CASES.push({ natA: 'udp-blocked', natB: 'full-cone', hairpin: false })

describe('Lab NAT types judged by coturn turnutils_natdiscovery', function () {
  this.timeout(120_000)
  const labs: Lab[] = []
  const outputs = new Map<string, { stdout: string, verdict: NatDiscoveryVerdict }>()
  const key = (c: Case, site: LabSite): string => `${c.natA}/${c.natB}/${c.hairpin ? 'h' : '-'}/${site}`

  before(async function () {
    requireLab(this)
    // Bring every lab up at once; whatever came up is torn down in after() even if another failed.
    const settled = await Promise.allSettled(CASES.map(async (c) => await Lab.up(c)))
    for (const s of settled) if (s.status === 'fulfilled') labs.push(s.value)
    const failed = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected')
    if (failed !== undefined) throw failed.reason
    await Promise.all(labs.map(async (lab) => await startTurnserver(lab)))
    await Promise.all(CASES.flatMap((c, i) => (['a', 'b'] as const).map(async (site) => {
      const lab = labs[i]!
      const r = await lab.exec(site, ['turnutils_natdiscovery', '-m', '-f', '-H', lab.info.server.primaryIp], { timeoutMs: 60_000 })
      outputs.set(key(c, site), { stdout: r.stdout, verdict: parseNatDiscovery(r.stdout) })
    })))
  })

  after(async function () {
    await Promise.all(labs.map(async (lab) => await lab.down()))
  })

  for (const c of CASES) {
    for (const site of ['a', 'b'] as const) {
      const nat = site === 'a' ? c.natA : c.natB
      const exp = EXPECTED[nat]
      const hairpinExpected = nat === 'none' || (c.hairpin && nat !== 'udp-blocked')
      const title = exp.udpBlocked === true
        ? `${nat}: no STUN response at all`
        : `${nat} (hairpin ${c.hairpin ? 'on' : 'off'}): mapping ${exp.mapping}, filtering ${exp.filtering}, hairpin ${hairpinExpected ? 'yes' : 'no'}`
      it(title, function () {
        const got = outputs.get(key(c, site))
        expect(got, 'natdiscovery did not run').to.not.equal(undefined)
        const v = got!.verdict
        const ctx = `natdiscovery output:\n${got!.stdout}`
        if (exp.udpBlocked === true) {
          expect(v.anyResponse, ctx).to.equal(false)
          expect(v.mapping, ctx).to.equal(undefined)
          expect(v.filtering, ctx).to.equal(undefined)
          return
        }
        expect(v.anyResponse, ctx).to.equal(true)
        expect(v.mapping, ctx).to.equal(exp.mapping)
        expect(v.filtering, ctx).to.equal(exp.filtering)
        expect(v.hairpin, ctx).to.equal(hairpinExpected)
      })
    }
  }
})
