/** Child process for the signal test: maps a port on the fake gateway, removes it on SIGINT/SIGTERM. */
import { PortMapper, removeOnSignals } from '../../../src/portmap/mapper.js'

const port = Number(process.argv[2])
const m = await PortMapper.map({ transport: 'udp', internalPort: 45000, lifetimeS: 60 }, { gateway: '127.0.0.1', localIp: '127.0.0.1', port, protocols: ['pcp'], timeoutMs: 1000 })
removeOnSignals([m])
process.stdout.write(`mapped ${m.mapping.externalPort}\n`)
setInterval(() => {}, 1000)
