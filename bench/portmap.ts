import { fileURLToPath, pathToFileURL } from 'node:url'
import { Lab } from '../src/lab/index.js'
import { canRunLab, median } from './support.js'

const CLIENT = fileURLToPath(new URL('./portmap-client.js', import.meta.url))

/**
 * Port-mapping round trips per protocol against a real miniupnpd on a lab router: PCP (one MAP exchange), NAT-PMP
 * (external address + mapping request: two exchanges), UPnP IGD (SSDP search, description fetch, GetExternalIPAddress
 * and AddAnyPortMapping/AddPortMapping: the SSDP wait dominates), and the removal of each granted mapping. The lab's
 * servers are up, so miniupnpd passes its STUN self-check and grants (src/lab/miniupnpd.ts).
 */
export async function benchPortmap (options: { runs?: number } = {}): Promise<Record<string, unknown>> {
  const why = canRunLab()
  if (why !== undefined) return { skipped: why }
  const runs = options.runs ?? 20
  const lab = await Lab.up({ natA: 'port-restricted-cone', natB: 'none', upnp: ['a'], servers: true })
  try {
    const r = await lab.exec('a', [process.execPath, CLIENT, String(runs)], { timeoutMs: 120_000 })
    if (r.code !== 0) throw new Error(`portmap client failed: ${r.stderr}`)
    const doc = JSON.parse(r.stdout) as Record<string, { ms: number[], removeMs: number[], granted: number, speaks: boolean, error: string | null }>
    const result: Record<string, unknown> = { runs, gateway: 'miniupnpd 2.3.1 (Debian), nftables backend' }
    for (const [p, v] of Object.entries(doc)) {
      result[p] = { medianMs: Math.round(median(v.ms) * 10) / 10, maxMs: Math.round(Math.max(...v.ms) * 10) / 10, granted: `${v.granted} of ${runs}`, removeMedianMs: v.removeMs.length === 0 ? null : Math.round(median(v.removeMs) * 10) / 10, speaks: v.speaks, answer: v.error ?? 'granted' }
    }
    return result
  } finally {
    await lab.down()
  }
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  console.log(JSON.stringify(await benchPortmap(), null, 2))
}
