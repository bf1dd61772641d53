import type { Command } from 'commander'
import { discoverNat } from '../discovery/discover.js'
import { formatEndpoint } from '../net/endpoint.js'
import { StunServer } from '../stun/server.js'
import { stunBinding } from '../stun/client.js'
import { printJson, reportError, useColor, styler } from './output.js'
import { renderReport } from './render-report.js'

/**
 * `natcheck demo`: everything with no setup and no internet. Starts natkit's RFC 5780 STUN server on loopback
 * (127.0.0.1 and 127.0.0.2, both loopback on Linux), checks it over UDP and TCP, and classifies the path to it.
 */
export function registerDemo (program: Command): void {
  program.command('demo')
    .description('run natkit end to end on loopback: its STUN server, a Binding check over UDP and TCP, and NAT discovery')
    .option('--json', 'print one JSON document')
    .action(async (flags: { json?: boolean }) => {
      const json = flags.json === true
      const s = styler(useColor(process.stdout, undefined))
      let server: StunServer | undefined
      try {
        server = await StunServer.start({ listen: { address: '127.0.0.1', port: 0 }, alternate: { address: '127.0.0.2', port: 0 }, tcp: true })
        const a = server.addresses()
        const primary = a.udp[0]
        process.stderr.write(`natcheck demo: STUN server on UDP ${a.udp.map(formatEndpoint).join(', ')} and TCP ${formatEndpoint(a.tcp[0])}\n`)
        const udp = await stunBinding(formatEndpoint(primary), { timeoutMs: 3000 })
        const tcp = await stunBinding(formatEndpoint(a.tcp[0]), { transport: 'tcp', timeoutMs: 3000 })
        const report = await discoverNat({ servers: [formatEndpoint(primary)], timeoutMs: 2000 })
        if (json) {
          printJson({ stun: { udp: { mapped: udp.mapped, rttMs: udp.rttMs }, tcp: { mapped: tcp.mapped, rttMs: tcp.rttMs } }, discovery: report })
          return
        }
        process.stdout.write(s.bold('1. STUN Binding against natkit\'s server\n'))
        process.stdout.write(`   UDP: mapped ${formatEndpoint(udp.mapped)} in ${udp.rttMs.toFixed(2)} ms; TCP: mapped ${formatEndpoint(tcp.mapped)} in ${tcp.rttMs.toFixed(2)} ms\n\n`)
        process.stdout.write(s.bold('2. NAT discovery (RFC 5780) on the loopback path — no NAT here, so it should say "open"\n'))
        process.stdout.write(renderReport(report, useColor(process.stdout, undefined)).replace(/^/gm, '   '))
        process.stdout.write('\nOn a real network run `natcheck` (public STUN servers) or `natcheck --server HOST`; as root, `natcheck lab up` builds real kernel NATs to try.\n')
      } catch (err) {
        reportError(err, json)
      } finally {
        await server?.close()
      }
    })
}
