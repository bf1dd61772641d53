import { type Command, InvalidArgumentError as CommanderArgumentError, Option } from 'commander'
import { formatEndpoint } from '../net/endpoint.js'
import { stunBinding } from '../stun/client.js'
import { printJson, reportError, table } from './output.js'

/** `natcheck stun HOST[:PORT] [--tcp|--tls] [--json]`: one Binding request. */
export function registerStunCommand (program: Command): void {
  program.command('stun')
    .description('send one STUN Binding request; print the mapped address, who answered, and the round trip')
    .argument('<server>', 'STUN server, HOST[:PORT] (no port: SRV lookup, then 3478, or 5349 for --tls)')
    .addOption(new Option('--tcp', 'over TCP').conflicts('tls'))
    .addOption(new Option('--tls', 'over TLS').conflicts('tcp'))
    .option('--insecure', 'with --tls: do not verify the server certificate')
    .option('--timeout <ms>', 'give up after this many milliseconds', parseMs, 5000)
    .option('-4', 'IPv4 only')
    .option('-6', 'IPv6 only')
    .option('--json', 'print one JSON document')
    .action(async (server: string, opts: { tcp?: boolean, tls?: boolean, insecure?: boolean, timeout: number, json?: boolean, 4?: boolean, 6?: boolean }) => {
      const transport = opts.tls === true ? 'tls' : opts.tcp === true ? 'tcp' : 'udp'
      try {
        const r = await stunBinding(server, {
          transport,
          timeoutMs: opts.timeout,
          family: opts[6] === true ? 6 : opts[4] === true ? 4 : undefined,
          tls: { rejectUnauthorized: opts.insecure !== true }
        })
        if (opts.json === true) {
          printJson({
            server: { host: r.server.host, address: r.server.address, port: r.server.port },
            transport,
            mapped: r.mapped,
            mappedAddress: r.mappedAddress ?? null,
            respondedFrom: r.from,
            responseOrigin: r.responseOrigin ?? null,
            otherAddress: r.otherAddress ?? null,
            local: r.local,
            rttMs: round(r.rttMs),
            software: r.software ?? null
          })
          return
        }
        const rows: Array<[string, string]> = [
          ['mapped address', formatEndpoint(r.mapped)],
          ['responded from', `${formatEndpoint(r.from)} over ${transport.toUpperCase()}${r.server.host !== r.server.address ? ` (${r.server.host})` : ''}`],
          ['round trip', `${round(r.rttMs)} ms`],
          ['local address', formatEndpoint(r.local)]
        ]
        if (r.otherAddress !== undefined) rows.push(['other address', `${formatEndpoint(r.otherAddress)} (RFC 5780 capable)`])
        if (r.software !== undefined) rows.push(['server software', r.software])
        process.stdout.write(table(rows))
      } catch (err) {
        reportError(err, opts.json === true)
      }
    })
}

/** Parse a positive number of milliseconds from a flag. */
export function parseMs (text: string): number {
  const n = Number(text)
  if (!Number.isFinite(n) || n <= 0) throw new CommanderArgumentError(`expected a positive number of milliseconds, got ${JSON.stringify(text)}`)
  return n
}

function round (ms: number): number {
  return Math.round(ms * 100) / 100
}
