/**
 * Run inside a lab host: time each port-mapping protocol's exchange with the gateway, `runs` times, and the removal of
 * each granted mapping (none is left behind); prints JSON.
 */
import { removeMapping, tryProtocol, PORTMAP_PROTOCOLS } from '../src/portmap/client.js'
import { defaultGateway, localAddressTowards } from '../src/portmap/gateway.js'

const runs = Number(process.argv[2] ?? '20')
const gateway = await defaultGateway()
const localIp = gateway === undefined ? undefined : await localAddressTowards(gateway)
if (gateway === undefined || localIp === undefined) throw new Error('no default gateway')
const ctx = { gateway, localIp, timeoutMs: 2000 }
const out: Record<string, { ms: number[], removeMs: number[], granted: number, speaks: boolean, error: string | null }> = {}
for (const [n, p] of PORTMAP_PROTOCOLS.entries()) {
  const ms: number[] = []
  const removeMs: number[] = []
  let granted = 0
  let last = { speaks: false, error: null as string | null }
  for (let i = 0; i < runs; i++) {
    const t = performance.now()
    // A port per protocol and run: one gateway table holds all three protocols' mappings.
    const r = await tryProtocol(p, ctx, { transport: 'udp', internalPort: 50000 + n * 1000 + i, lifetimeS: 30 })
    ms.push(performance.now() - t)
    last = { speaks: r.speaks, error: r.error }
    if (r.mapping !== null) {
      granted++
      const d = performance.now()
      if (!await removeMapping(ctx, r.mapping)) throw new Error(`${p}: removing the mapping of port ${r.mapping.internalPort} failed`)
      removeMs.push(performance.now() - d)
    }
  }
  out[p] = { ms, removeMs, granted, ...last }
}
process.stdout.write(JSON.stringify(out) + '\n')
