/**
 * `npm run bench`: every benchmark, each running natkit and its reference side by side in one run and printing the
 * ratio (these 2-core machines are noisy, so only same-run ratios mean anything). `npm run bench -- NAME…` runs
 * only the named ones: codec, stun-server, discovery, relay (includes relay-saturate), relay-saturate,
 * traversal, attacks, portmap, hardnat, tcp-punch.
 */
import { benchAttacks } from './attacks.js'
import { benchCodec } from './codec.js'
import { benchDiscovery } from './discovery.js'
import { benchHardNat } from './hardnat.js'
import { benchPortmap } from './portmap.js'
import { benchRelay } from './relay.js'
import { benchRelaySaturate } from './relay-saturate.js'
import { benchTcpPunch } from './tcp-punch.js'
import { benchTraversal } from './traversal.js'
import { benchUdpIo } from './udp-io.js'

const benches: Record<string, () => Promise<unknown>> = {
  codec: async () => benchCodec(),
  'stun-server': async () => await benchUdpIo({ seconds: 5, rounds: 3 }),
  discovery: async () => await benchDiscovery(),
  relay: async () => ({ ...await benchRelay(), saturation: await benchRelaySaturate() }),
  'relay-saturate': async () => await benchRelaySaturate(),
  traversal: async () => await benchTraversal(),
  attacks: async () => await benchAttacks(),
  portmap: async () => await benchPortmap(),
  hardnat: async () => await benchHardNat(),
  'tcp-punch': async () => await benchTcpPunch()
}

const wanted = process.argv.slice(2).filter(a => !a.startsWith('-'))
const unknown = wanted.filter(w => benches[w] === undefined)
if (unknown.length > 0) {
  console.error(`unknown benchmark(s): ${unknown.join(', ')}; choose from ${Object.keys(benches).join(', ')}`)
  process.exit(1)
}
const results: Record<string, unknown> = {}
for (const [name, run] of Object.entries(benches)) {
  if (wanted.length > 0 && !wanted.includes(name)) continue
  console.error(`bench: ${name} …`)
  try {
    results[name] = await run()
  } catch (err) {
    results[name] = { failed: (err as Error).message }
  }
  console.log(`${name}: ${JSON.stringify(results[name], null, 2)}`)
}
