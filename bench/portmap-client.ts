/** Run inside a lab host: time each port-mapping protocol's exchange with the gateway, `runs` times; prints JSON. */
import { tryProtocol, PORTMAP_PROTOCOLS } from '../src/portmap/client.js'
import { defaultGateway, localAddressTowards } from '../src/portmap/gateway.js'

const runs = Number(process.argv[2] ?? '20')
const gateway = await defaultGateway()
const localIp = gateway === undefined ? undefined : await localAddressTowards(gateway)
if (gateway === undefined || localIp === undefined) throw new Error('no default gateway')
const out: Record<string, { ms: number[], speaks: boolean, error: string | null }> = {}
for (const p of PORTMAP_PROTOCOLS) {
  const ms: number[] = []
  let last = { speaks: false, error: null as string | null }
  for (let i = 0; i < runs; i++) {
    const t = performance.now()
    const r = await tryProtocol(p, { gateway, localIp, timeoutMs: 2000 }, { transport: 'udp', internalPort: 50000 + i, lifetimeS: 30 })
    ms.push(performance.now() - t)
    last = { speaks: r.speaks, error: r.error }
  }
  out[p] = { ms, ...last }
}
process.stdout.write(JSON.stringify(out) + '\n')
