import type { Command } from 'commander'
import { InvalidArgumentError } from '../errors.js'
import { formatEndpoint, parseEndpoint } from '../net/endpoint.js'
import { StunServer } from '../stun/server.js'
import { reportError } from './output.js'
import { addServerConnectionOptions, serverConnectionOptions, type ServerConnectionFlags } from './connection-limits.js'

interface ServerFlags extends ServerConnectionFlags {
  listen: string
  alternate?: string
  tcp?: boolean
  tlsCert?: string
  tlsKey?: string
  tlsListen?: string
  software?: string
}

/** `natcheck server --listen IP[:PORT] [--alternate IP[:PORT]] [--tcp] [--tls-cert F --tls-key F]`. */
export function registerServerCommand (program: Command): void {
  addServerConnectionOptions(program.command('server'))
    .description('run a STUN server in the foreground (RFC 5780-capable with --alternate) until SIGINT/SIGTERM')
    .requiredOption('--listen <ip[:port]>', 'primary address (default port 3478)')
    .option('--alternate <ip[:port]>', 'second IP for RFC 5780 CHANGE-REQUEST (default port 3479)')
    .option('--tcp', 'also serve STUN over TCP on the same addresses')
    .option('--tls-cert <file>', 'PEM certificate: serve STUN over TLS (with --tls-key)')
    .option('--tls-key <file>', 'PEM private key for --tls-cert')
    .option('--tls-listen <ip[:port]>', 'TLS address (default: the --listen IP, port 5349)')
    .option('--software <text>', 'SOFTWARE attribute in responses ("" to omit)', 'natkit')
    .action(async (flags: ServerFlags) => {
      try {
        if ((flags.tlsCert === undefined) !== (flags.tlsKey === undefined)) {
          throw new InvalidArgumentError('--tls-cert and --tls-key go together')
        }
        const listen = parseEndpoint(flags.listen, 3478)
        const server = await StunServer.start({
          listen,
          alternate: flags.alternate !== undefined ? parseEndpoint(flags.alternate, 3479) : undefined,
          tcp: flags.tcp === true,
          tls: flags.tlsCert !== undefined && flags.tlsKey !== undefined
            ? { certFile: flags.tlsCert, keyFile: flags.tlsKey, listen: flags.tlsListen !== undefined ? parseEndpoint(flags.tlsListen, 5349) : { address: listen.address, port: 5349 } }
            : undefined,
          software: flags.software,
          ...serverConnectionOptions(flags)
        })
        const a = server.addresses()
        process.stderr.write(`natcheck server: STUN on UDP ${a.udp.map(formatEndpoint).join(', ')}` +
          (a.tcp.length > 0 ? `; TCP ${a.tcp.map(formatEndpoint).join(', ')}` : '') +
          (a.tls.length > 0 ? `; TLS ${a.tls.map(formatEndpoint).join(', ')}` : '') +
          (server.core.rfc5780 ? ' (RFC 5780)' : '') + '\n')
        await new Promise<void>((resolve) => {
          const stop = (signal: string): void => {
            process.stderr.write(`natcheck server: ${signal}, stopping (answered ${server.stats.responses} requests)\n`)
            resolve()
          }
          process.once('SIGINT', () => { stop('SIGINT') })
          process.once('SIGTERM', () => { stop('SIGTERM') })
        })
        await server.close()
      } catch (err) {
        reportError(err, false, { kind: 'server' })
      }
    })
}
