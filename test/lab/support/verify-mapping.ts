/** Run inside a lab host: `node verify-mapping.js '{"server":"203.0.113.10:3478","internalPort":40500,"externalPort":40500}'`; prints true or false. */
import { verifyMappingReachable } from '../../../src/portmap/verify.js'

const spec = JSON.parse(process.argv[2] ?? '{}') as { server: string, internalPort: number, externalPort: number }
const [address, port] = spec.server.split(':')
process.stdout.write(String(await verifyMappingReachable({ server: { address: address as string, port: Number(port) }, internalPort: spec.internalPort, externalPort: spec.externalPort, timeoutMs: 1500 })) + '\n')
