import { readFileSync } from 'node:fs'
import { type Command, InvalidArgumentError as CommanderArgumentError } from 'commander'
import { DEFAULT_SERVERS, discoverNat } from '../discovery/discover.js'
import { predictPair, type PeerProfile } from '../discovery/predict.js'
import { InvalidArgumentError } from '../errors.js'
import { ExitCode } from './exit-codes.js'
import { printJson, reportError, useColor } from './output.js'
import { renderReport } from './render-report.js'
import { renderPortMap } from './render-portmap.js'
import { probePortMapping, type PortMapReport } from '../portmap/probe.js'
import { ipFamily, parseHostPort, type Endpoint } from '../net/endpoint.js'
import { parseMs } from './stun.js'

interface DiscoverFlags { server?: string[], json?: boolean, timeout: number, lifetime?: boolean | string, color?: boolean, tcpTls?: boolean, portmap?: boolean }

/**
 * Lifetime the gateway probe asks for, s: long enough to check the mapping from outside, short enough that a natcheck
 * killed before it removes its mappings leaves them on the router for seconds, not minutes.
 */
const PROBE_LIFETIME_S = 20

/** The root action: `natcheck [--server HOST[:PORT]]... [--json] [--timeout MS] [--lifetime[=MAX_S]]`. */
export function registerDiscover (program: Command): void {
  program
    .option('-s, --server <host[:port]>', `STUN server to ask (repeat for several; default: ${DEFAULT_SERVERS.join(', ')})`, collect)
    .option('--json', 'print one JSON document')
    .option('--timeout <ms>', 'give up on servers that have not answered after this many ms', parseMs, 2500)
    .option('--lifetime [max-seconds]', 'also measure how long an idle UDP mapping lives (slow; default up to 120 s)')
    .option('--tcp-tls', 'test STUN over TCP and TLS even when UDP works')
    .option('--portmap', 'ask the default gateway for PCP, NAT-PMP or UPnP IGD port mappings (default: yes, unless every --server is on loopback)')
    .option('--no-portmap', 'do not ask the default gateway for port mappings')
    .action(async (flags: DiscoverFlags) => {
      const json = flags.json === true
      let foundServer: (server: Endpoint | undefined) => void = () => {}
      let portMap: Promise<PortMapReport | null> = Promise.resolve(null)
      try {
        const maxS = flags.lifetime === undefined ? undefined : flags.lifetime === true ? 120 : Number(flags.lifetime)
        if (maxS !== undefined && !(maxS > 0)) throw new InvalidArgumentError('--lifetime takes a number of seconds, e.g. --lifetime 300')
        // Port mapping runs beside discovery (its own sockets and deadline); a granted mapping waits for the RFC 5780
        // server discovery finds, is checked from outside through it, and is removed again.
        const verifyVia = new Promise<Endpoint | undefined>((resolve) => { foundServer = resolve })
        const probeGateway = flags.portmap ?? !allOnLoopback(flags.server)
        if (!probeGateway && flags.portmap === undefined && (!json || process.stderr.isTTY)) process.stderr.write('natcheck: every server is on loopback, so the default gateway is not asked for port mappings (--portmap asks it)\n')
        if (probeGateway) portMap = probePortMapping({ timeoutMs: Math.min(flags.timeout, 2000), map: { transport: 'udp', internalPort: 49152 + Math.floor(Math.random() * 16000), lifetimeS: PROBE_LIFETIME_S }, verifyVia })
        const report = await discoverNat({
          servers: flags.server,
          timeoutMs: flags.timeout,
          lifetime: maxS !== undefined ? { maxS } : false,
          tcpTls: flags.tcpTls === true ? 'always' : 'auto',
          onProgress: (e) => { if (!json || process.stderr.isTTY) process.stderr.write(`natcheck: ${e.message}\n`) }
        })
        const nothingAnswered = !report.udp && report.tcp !== true && report.tls !== true && report.nat.type !== 'udp-blocked'
        const via = report.servers.find(sv => sv.rfc5780 && sv.address !== null && sv.port !== null)
        foundServer(via !== undefined ? { address: via.address as string, port: via.port as number } : undefined)
        const portMapping = await portMap
        if (json) printJson({ ...report, portMapping })
        else process.stdout.write(renderReport(report, useColor(process.stdout, flags.color)) + (portMapping !== null ? `\n${renderPortMap(portMapping)}` : ''))
        if (nothingAnswered) {
          process.stderr.write(`natcheck: no STUN server answered (${report.servers.map(s => `${s.server}: ${s.error ?? 'no answer'}`).join('; ')}). ` +
            'Check the network, or give a reachable server with --server HOST[:PORT].\n')
          process.exitCode = ExitCode.Inconclusive
        }
      } catch (err) {
        // Let the port-mapping probe finish: it removes any mapping it was granted.
        foundServer(undefined)
        await portMap.catch(() => null)
        reportError(err, json)
      }
    })
}

/** `natcheck pair A.json B.json`: the strategy that should connect two hosts, from their saved reports. */
export function registerPair (program: Command): void {
  program.command('pair')
    .description('read two saved `natcheck --json` reports and print the strategy that should connect them, and why')
    .argument('<a>', 'report of peer A (natcheck --json > a.json)')
    .argument('<b>', 'report of peer B')
    .option('--json', 'print one JSON document')
    .action((a: string, b: string, flags: { json?: boolean }) => {
      try {
        const pa = loadProfile(a); const pb = loadProfile(b)
        const p = predictPair(pa, pb)
        if (flags.json === true) printJson({ a: pa.type, b: pb.type, ...p })
        else {
          process.stdout.write(`${pa.type} + ${pb.type}: ${p.strategy}\n${p.reason}\n`)
          if (p.alternatives.length > 0) process.stdout.write(`also possible: ${p.alternatives.join(', ')}\n`)
          for (const [s, c] of Object.entries(p.costs ?? {})) process.stdout.write(`  ${s}: ${c}\n`)
          if (p.direct !== undefined) process.stdout.write(`direct with: ${p.direct.strategy} (${p.direct.enable})\n`)
        }
      } catch (err) {
        reportError(err, flags.json === true)
      }
    })
}

function loadProfile (file: string): PeerProfile {
  let doc: { nat?: { type?: unknown, portAllocation?: PeerProfile['portAllocation'] }, tcp?: boolean | null, tls?: boolean | null, tcpPorts?: PeerProfile['tcpPorts'], portMapping?: { protocols?: Array<{ mapping?: unknown }> } | null }
  try {
    doc = JSON.parse(readFileSync(file, 'utf8'))
  } catch (err) {
    throw new InvalidArgumentError(`cannot read ${file} as a natcheck --json report: ${(err as Error).message}`)
  }
  const type = doc?.nat?.type
  const types = ['open', 'full-cone', 'restricted-cone', 'port-restricted-cone', 'symmetric', 'symmetric-firewall', 'udp-blocked', 'unknown']
  if (typeof type !== 'string' || !types.includes(type)) throw new InvalidArgumentError(`${file} has no nat.type: is it a natcheck --json report?`)
  const portMapped = Array.isArray(doc.portMapping?.protocols) ? doc.portMapping.protocols.some(p => p?.mapping !== null && p?.mapping !== undefined) : undefined
  return { type: type as PeerProfile['type'], portAllocation: doc.nat?.portAllocation, tcp: doc.tcp, tls: doc.tls, tcpPorts: Array.isArray(doc.tcpPorts) ? doc.tcpPorts : null, portMapped }
}

function collect (value: string, previous: string[] | undefined): string[] {
  if (value.trim() === '') throw new CommanderArgumentError('--server needs HOST[:PORT]')
  return [...(previous ?? []), value]
}

/**
 * Whether every server given is a loopback address (127.0.0.0/8, ::1, localhost): then the run measures this host
 * against local servers, and the default gateway (a real device on the user's network) has no part in it.
 */
export function allOnLoopback (servers: readonly string[] | undefined): boolean {
  if (servers === undefined || servers.length === 0) return false
  return servers.every((s) => {
    const { host } = parseHostPort(s)
    return host === 'localhost' || host === '::1' || (ipFamily(host) === 4 && host.startsWith('127.'))
  })
}
