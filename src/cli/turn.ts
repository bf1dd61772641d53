import { type Command, Option } from 'commander'
import { InvalidArgumentError } from '../errors.js'
import { formatEndpoint } from '../net/endpoint.js'
import { checkTurn } from '../relay/turn-check.js'
import type { TurnCredentials } from '../relay/turn-client-auth.js'
import { parseUserPass, resolveClientSecrets, type SecretFlags } from './credentials.js'
import { ExitCode } from './exit-codes.js'
import { printJson, reportError, styler, useColor } from './output.js'
import { parseMs } from './stun.js'

interface TurnFlags extends SecretFlags { transport: 'udp' | 'tcp' | 'tls', json?: boolean, insecure?: boolean, timeout: number, count: string }

/** `natcheck turn HOST[:PORT] (--user NAME:PASS | --auth-secret SECRET) [--transport udp|tcp|tls] [--json]`. */
export function registerTurnCommand (program: Command): void {
  program.command('turn')
    .description('check a TURN server end to end: allocate, relay echo datagrams, report RTT, loss and throughput — or which step failed and what to fix')
    .argument('<server>', 'TURN server, HOST[:PORT]')
    .option('--user <name:pass>', 'long-term credentials')
    .option('--auth-secret <secret>', 'TURN REST API shared secret (coturn --static-auth-secret)')
    .option('--user-file <file>', 'read NAME:PASS from this file (or set NATKIT_USER), so it stays out of ps')
    .option('--auth-secret-file <file>', 'read the shared secret from this file (or set NATKIT_AUTH_SECRET)')
    .addOption(new Option('--transport <t>', 'how to reach the server').choices(['udp', 'tcp', 'tls']).default('udp'))
    .option('--insecure', 'with --transport tls: do not verify the certificate')
    .option('--count <n>', 'echo datagrams in the first phase', '50')
    .option('--timeout <ms>', 'per-step timeout', parseMs, 5000)
    .option('--json', 'print one JSON document')
    .action(async (server: string, flags: TurnFlags) => {
      const json = flags.json === true
      try {
        const credentials = parseCredentials(await resolveClientSecrets(flags, process.env, (l) => { process.stderr.write(`natcheck: ${l}\n`) }))
        const count = Number(flags.count)
        if (!Number.isInteger(count) || count < 1 || count > 10_000) throw new InvalidArgumentError('--count takes a whole number from 1 to 10000')
        const s = styler(useColor(process.stdout, undefined))
        const report = await checkTurn({
          server, transport: flags.transport, credentials, count, timeoutMs: flags.timeout,
          tls: { rejectUnauthorized: flags.insecure !== true },
          onStep: json ? undefined : (st) => { process.stdout.write(`${st.ok ? s.green('✓') : s.red('✗')} ${st.step.padEnd(13)} ${st.detail} (${st.ms} ms)\n`) }
        })
        if (json) printJson({ ...report })
        else if (report.ok) {
          process.stdout.write(`\nTURN works: relayed address ${report.allocation !== null ? formatEndpoint(report.allocation.relayed) : '?'}, ` +
            `RTT ${report.rttMs ?? '?'} ms, loss ${((report.loss ?? 0) * 100).toFixed(1)} %, ${report.throughputMbps ?? '?'} Mbit/s\n`)
        } else if (report.failure !== null) {
          process.stdout.write(`\nTURN failed at "${report.failure.step}": ${report.failure.message}\n→ ${report.failure.fix}\n`)
        }
        if (!report.ok) process.exitCode = ExitCode.Inconclusive
      } catch (err) {
        reportError(err, json)
      }
    })
}

function parseCredentials (flags: { user?: string, authSecret?: string }): TurnCredentials {
  if ((flags.user === undefined) === (flags.authSecret === undefined)) {
    throw new InvalidArgumentError('give exactly one of --user NAME:PASS or --auth-secret SECRET (or their -file forms, or NATKIT_USER / NATKIT_AUTH_SECRET)')
  }
  if (flags.authSecret !== undefined) return { authSecret: flags.authSecret, user: 'natcheck' }
  return parseUserPass(flags.user as string)
}
