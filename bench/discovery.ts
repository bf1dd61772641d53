import { pathToFileURL } from 'node:url'
import { Lab, type LabNatType } from '../src/lab/index.js'
import { CLI, canRunLab, median, stopChild } from './support.js'

/**
 * natcheck vs coturn's turnutils_natdiscovery on the same lab NAT, against the same server (coturn's turnserver on
 * both public addresses), alternating runs. Both establish mapping, filtering and hairpinning; natcheck also reports
 * the port pattern, ALG and port preservation in the same run. Target: natcheck ≥ 10× faster.
 */
export async function benchDiscovery (options: { nat?: LabNatType, runs?: number } = {}): Promise<Record<string, unknown>> {
  const why = canRunLab()
  if (why !== undefined) return { skipped: why }
  const nat = options.nat ?? 'port-restricted-cone'
  const runs = options.runs ?? 5
  const lab = await Lab.up({ natA: nat, natB: 'none', hairpin: true })
  const { primaryIp, secondaryIp } = lab.info.server
  const server = lab.spawn('server', ['turnserver', '-c', '/dev/null', '--stun-only', '--no-auth', '--listening-ip', primaryIp, '--listening-ip', secondaryIp,
    '--listening-port', '3478', '--alt-listening-port', '3479', '--no-tls', '--no-dtls', '--no-cli', '--log-file', '/dev/null'], { stdio: 'ignore' })
  try {
    for (let i = 0; i < 50; i++) {
      const r = await lab.exec('a', [process.execPath, CLI, 'stun', `${secondaryIp}:3479`, '--timeout', '300'], { timeoutMs: 5000 })
      if (r.code === 0) break
      await new Promise(resolve => setTimeout(resolve, 100))
    }
    const natcheckMs: number[] = []
    const coturnMs: number[] = []
    let natcheckFacts = ''
    let coturnFacts = ''
    for (let i = 0; i < runs; i++) {
      let t = performance.now()
      const a = await lab.exec('a', [process.execPath, CLI, '--server', `${primaryIp}:3478`, '--json'], { timeoutMs: 30_000 })
      natcheckMs.push(performance.now() - t)
      const doc = JSON.parse(a.stdout) as { nat: { mapping: string, filtering: string, hairpinning: boolean } }
      natcheckFacts = `${doc.nat.mapping} mapping, ${doc.nat.filtering} filtering, hairpin ${String(doc.nat.hairpinning)}`
      t = performance.now()
      const b = await lab.exec('a', ['turnutils_natdiscovery', '-m', '-f', '-H', primaryIp], { timeoutMs: 60_000 })
      coturnMs.push(performance.now() - t)
      coturnFacts = (b.stdout.match(/NAT with .*!/g) ?? []).join(' ') + (/successful hairpinning/.test(b.stdout) ? ' hairpin true' : ' hairpin false')
    }
    const n = median(natcheckMs); const c = median(coturnMs)
    return {
      nat,
      natcheckMedianMs: Math.round(n),
      natdiscoveryMedianMs: Math.round(c),
      speedup: Math.round(c / n * 10) / 10,
      target: 10,
      natcheckFacts,
      natdiscoveryFacts: coturnFacts,
      note: 'wall time of the whole process (node start-up included for natcheck), median of alternating runs'
    }
  } finally {
    await stopChild(server)
    await lab.down()
  }
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  console.log(JSON.stringify(await benchDiscovery(), null, 2))
}
