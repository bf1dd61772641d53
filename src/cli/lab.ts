/**
 * `natcheck lab …`: drive the NAT lab (real Linux kernel NATs in network namespaces; Linux, root).
 *
 * ```
 * natcheck lab up --nat-a port-restricted-cone --nat-b symmetric [--hairpin] [--udp-timeout 30] [--no-servers]
 * natcheck lab exec a -- turnutils_natdiscovery -m -f 203.0.113.10
 * natcheck lab status
 * natcheck lab down
 * ```
 * Every subcommand takes `--prefix` (default `nk-cli-`), so several labs can coexist.
 */
import { type Command, InvalidArgumentError as CommanderArgumentError, Option } from 'commander'
import { InvalidArgumentError } from '../errors.js'
import { Lab, LAB_NAT_TYPES, LAB_NODES, LAB_STUN_PORT, labDown, listLabs } from '../lab/index.js'
import type { LabInfo, LabNatType, LabNode, LabServices, LabSite } from '../lab/index.js'
import { ExitCode } from './exit-codes.js'
import { printJson, reportError, table } from './output.js'

/** Namespace prefix the CLI uses unless told otherwise (tests and libraries use random ones). */
export const CLI_LAB_PREFIX = 'nk-cli-'

function parseSeconds (text: string): number {
  const n = Number(text)
  if (!Number.isInteger(n) || n < 1 || n > 86400) throw new CommanderArgumentError(`expected whole seconds in 1..86400, got ${JSON.stringify(text)}`)
  return n
}

function parseSites (text: string): LabSite[] {
  const sites = text.split(',').map((s) => s.trim())
  if (sites.length === 0 || !sites.every((s) => s === 'a' || s === 'b')) throw new CommanderArgumentError(`expected a, b or a,b; got ${JSON.stringify(text)}`)
  return sites as LabSite[]
}

function prefixOption (): Option {
  return new Option('--prefix <prefix>', 'namespace name prefix of the lab').default(CLI_LAB_PREFIX)
}

function infoRows (info: LabInfo): Array<[string, string]> {
  const rows: Array<[string, string]> = [
    ['prefix', info.prefix],
    ['server', `${info.server.primaryIp}, ${info.server.secondaryIp} (ns ${info.server.ns})`]
  ]
  for (const s of [info.a, info.b]) {
    const nat = s.nat === 'none' ? 'none (public host)' : `${s.nat}${s.hairpin ? ', hairpin' : ''}${s.upnp ? ', miniupnpd' : ''}`
    rows.push([`site ${s.site}`, `${nat}: host ${s.hostIp} (ns ${s.hostNs}) behind ${s.wanIp} (ns ${s.routerNs})`])
  }
  rows.push(['udp timeout', `${info.udpTimeoutS} s`])
  return rows
}

function serviceRows (services: LabServices | undefined): Array<[string, string]> {
  if (services === undefined) return [['servers', 'none (--no-servers)']]
  const pid = (name: string): string => `pid ${services.processes.find((p) => p.name === name)?.pid ?? '?'}`
  return [
    ['stun', `${services.stun} (RFC 5780, ports 3478/3479 on both addresses, ${pid('stun')})`],
    ['turn', `${services.turn.join(', ')} (${pid('relay')})`],
    ['rendezvous', services.rendezvous],
    ['secret', `${services.secret} (--auth-secret)`]
  ]
}

/** The commands to try on a fresh lab: classify from each site, predict the pair, connect the sites, take it down. */
export function tryCommands (info: LabInfo, services: LabServices | undefined): string[] {
  const p = info.prefix === CLI_LAB_PREFIX ? '' : ` --prefix ${info.prefix}`
  const exec = (node: string): string => `natcheck lab exec${p} ${node} --`
  if (services === undefined) {
    return [`${exec('a')} ip addr`, `${exec('server')} natcheck server --listen ${info.server.primaryIp} --alternate ${info.server.secondaryIp}`, `natcheck lab down${p}`]
  }
  const turn = services.turn.map((t) => ` --turn '${t}'`).join('')
  // A tcp-only site relays unless both peers punch TCP (STUN over TCP to the lab's STUN server gives the endpoints).
  const punch = info.a.nat === 'tcp-only' || info.b.nat === 'tcp-only' ? ` --tcp-punch --stun ${services.stun}:${LAB_STUN_PORT}` : ''
  const connect = (me: string, peer: string): string =>
    `${exec(me)} natcheck connect --rendezvous ${services.rendezvous} --id ${me} --peer ${peer} --auth-secret ${services.secret}${turn}${punch}`
  return [
    `${exec('a')} natcheck --server ${services.stun}`,
    `${exec('b')} natcheck --server ${services.stun}`,
    `${exec('a')} natcheck --server ${services.stun} --json > a.json`,
    `${exec('b')} natcheck --server ${services.stun} --json > b.json`,
    'natcheck pair a.json b.json',
    `${connect('a', 'b')} &`,
    connect('b', 'a'),
    `natcheck lab down${p}`
  ]
}

/** Add `lab up|exec|down|status` to a commander program. */
export function registerLabCommands (program: Command): void {
  const lab = program.command('lab')
    .description('real kernel NATs in network namespaces, for testing (Linux, root)')
    .enablePositionalOptions()

  lab.command('up')
    .description('build a lab: a server with two public addresses and two sites, each a NAT router and a host')
    .addOption(new Option('--nat-a <type>', 'NAT behaviour of site A').choices(LAB_NAT_TYPES).makeOptionMandatory())
    .addOption(new Option('--nat-b <type>', 'NAT behaviour of site B').choices(LAB_NAT_TYPES).makeOptionMandatory())
    .option('--hairpin', 'site routers hairpin (RFC 4787 §6)')
    .option('--udp-timeout <s>', 'UDP mapping lifetime in seconds (default 120)', parseSeconds)
    .option('--upnp <sites>', 'run a real miniupnpd (UPnP IGD v2, NAT-PMP, PCP) on the router of site a, b or a,b', parseSites)
    .option('--no-servers', 'do not start natkit\'s STUN (RFC 5780), TURN and rendezvous servers in the server namespace')
    .addOption(prefixOption())
    .option('--json', 'print one JSON document')
    .action(async (opts: { natA: LabNatType, natB: LabNatType, hairpin?: boolean, udpTimeout?: number, servers: boolean, upnp?: LabSite[], prefix: string, json?: boolean }) => {
      try {
        const l = await Lab.up({ natA: opts.natA, natB: opts.natB, hairpin: opts.hairpin === true, udpTimeoutS: opts.udpTimeout, prefix: opts.prefix, servers: opts.servers, upnp: opts.upnp })
        const commands = tryCommands(l.info, l.services)
        if (opts.json === true) printJson({ lab: l.info, services: l.services ?? null, upnp: l.upnp, upMs: l.upMs, try: commands })
        else {
          process.stdout.write(table([...infoRows(l.info), ...serviceRows(l.services), ['up in', `${l.upMs} ms`]]))
          process.stdout.write(`\ntry:\n${commands.map((c) => `  ${c}\n`).join('')}`)
        }
      } catch (err) {
        reportError(err, opts.json === true)
      }
    })

  lab.command('exec')
    .description(`run a command inside a lab node (${LAB_NODES.join(', ')}); exits with its exit code`)
    .argument('<node>', `one of ${LAB_NODES.join(', ')}`, (v: string) => {
      if (!(LAB_NODES as readonly string[]).includes(v)) throw new CommanderArgumentError(`expected one of ${LAB_NODES.join(', ')}`)
      return v as LabNode
    })
    .argument('<command...>', 'the command and its arguments (put -- before it)')
    .addOption(prefixOption())
    .passThroughOptions()
    .action(async (node: LabNode, argv: string[], opts: { prefix: string }) => {
      try {
        const command = argv[0] === '--' ? argv.slice(1) : argv
        if (command.length === 0) throw new InvalidArgumentError('lab exec needs a command, e.g. natcheck lab exec a -- ip addr')
        const l = await Lab.attach(opts.prefix)
        const child = l.spawn(node, command, { stdio: 'inherit' })
        process.exitCode = await new Promise<number>((resolve) => {
          child.once('error', (err) => { resolve(reportError(err, false)) })
          child.once('exit', (code, signal) => { resolve(code ?? (signal !== null ? 128 + 9 : ExitCode.Internal)) })
        })
      } catch (err) {
        reportError(err, false)
      }
    })

  lab.command('down')
    .description('delete a lab: kill what runs in it and delete its namespaces (works after a crash)')
    .addOption(prefixOption())
    .option('--all', 'every lab recorded in the state directory')
    .action(async (opts: { prefix: string, all?: boolean }) => {
      try {
        await labDown(opts.all === true ? undefined : opts.prefix)
        process.stdout.write(opts.all === true ? 'all recorded labs down\n' : `lab ${opts.prefix} down\n`)
      } catch (err) {
        reportError(err, false)
      }
    })

  lab.command('status')
    .description('list recorded labs and whether their namespaces exist')
    .option('--json', 'print one JSON document')
    .action(async (opts: { json?: boolean }) => {
      try {
        const labs = await listLabs()
        if (opts.json === true) {
          printJson({ labs: labs.map((s) => ({ ...s.info, services: s.services ?? null, createdAt: s.createdAt, complete: s.complete, namespacesPresent: s.namespacesPresent })) })
          return
        }
        if (labs.length === 0) { process.stdout.write('no labs\n'); return }
        process.stdout.write(labs.map((s) => table([
          ...infoRows(s.info),
          ...serviceRows(s.services),
          ['created', s.createdAt],
          ['state', s.complete ? 'up' : `incomplete (${s.namespacesPresent.length} of ${LAB_NODES.length} namespaces)`]
        ])).join('\n'))
      } catch (err) {
        reportError(err, opts.json === true)
      }
    })
}
