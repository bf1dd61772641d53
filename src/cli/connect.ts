import { type Command, Option } from 'commander'
import { InvalidArgumentError } from '../errors.js'
import { formatEndpoint, ipFamily } from '../net/endpoint.js'
import { PORTMAP_PROTOCOLS, type PortMapProtocol } from '../portmap/client.js'
import { RendezvousClient } from '../rendezvous/client.js'
import { rendezvousToken } from '../rendezvous/token.js'
import type { TurnCredentials } from '../relay/turn-client-auth.js'
import type { TurnFailoverOptions } from '../relay/turn-client.js'
import { parseTurnUri, type TurnUri } from '../relay/turn-uri.js'
import type { PortMappingOptions } from '../traversal/gather.js'
import { MAX_SPRAY_PROBES, MAX_SPRAY_SOCKETS, resolveSprayOptions, type BirthdaySprayOptions } from '../traversal/spray-plan.js'
import { connect, type ConnectReport, type PeerSession } from '../traversal/session.js'
import { echoExchange } from '../traversal/echo.js'
import { rendezvousChannel, roleFor } from '../traversal/rendezvous-channel.js'
import { connectManual } from './connect-manual.js'
import { parseUserPass, resolveClientSecrets, type SecretFlags } from './credentials.js'
import { closeOnSignals } from '../util/close-on-signals.js'
import { ExitCode } from './exit-codes.js'
import { printJson, reportError, table } from './output.js'
import { parseMs } from './stun.js'

interface ConnectFlags extends SecretFlags {
  rendezvous?: string, id?: string, peer?: string, manual?: boolean, role?: 'controlling' | 'controlled', lite?: boolean, token?: string, turn?: string[]
  turnFailover?: string[], turnFailoverCheck?: number
  turnTransport: 'udp' | 'tcp' | 'tls', stun?: string[], count: string, json?: boolean, timeout: number, relayOnly?: boolean
  localAddress?: string, includeLoopback?: boolean, insecure?: boolean, settle: number
  portMapping?: boolean | string, gateway?: string, portPrediction?: boolean, birthdaySpray?: boolean | string, sprayRate?: string, tcpPunch?: boolean
}

/**
 * `natcheck connect --rendezvous URL --id ME --peer OTHER [--token T] [--turn HOST[:PORT] (--user NAME:PASS |
 * --auth-secret S)] [--count N] [--json]`: connect to a peer through NATs and exchange N echo datagrams.
 * `natcheck connect --manual [...]`: the same without a rendezvous, ICE lines copied between two terminals.
 */
export function registerConnectCommand (program: Command): void {
  program.command('connect')
    .description('connect to a peer through NATs (punching, TURN fallback, upgrade to direct) and exchange echo datagrams')
    .option('--rendezvous <url>', 'rendezvous server, ws://HOST:PORT/ (not with --manual)')
    .option('--id <me>', 'this peer\'s id (with --rendezvous)')
    .option('--peer <other>', 'the peer\'s id (with --rendezvous)')
    .option('--manual', 'no rendezvous: print this side\'s ICE lines (SDP a= lines), read the peer\'s from stdin up to an empty line')
    .addOption(new Option('--role <role>', 'with --manual: the ICE role (equal roles are settled by the tie-breaker)').choices(['controlling', 'controlled']).default('controlling'))
    .option('--lite', 'with --manual: be an ICE-lite agent (host candidates only, answers checks; the peer must be a full agent)')
    .option('--token <t>', 'rendezvous token (EXPIRY:MAC); derived from --auth-secret when not given')
    .option('--turn <server>', 'TURN server for a relayed candidate, HOST[:PORT] or turn:HOST:PORT?transport=tcp or turns:HOST:PORT (repeatable; UDP ones also serve as STUN)', (v: string, p: string[] = []) => [...p, v])
    .option('--user <name:pass>', 'TURN long-term credentials')
    .option('--auth-secret <secret>', 'shared secret: TURN REST credentials and the rendezvous token')
    .option('--user-file <file>', 'read NAME:PASS from this file (or set NATKIT_USER), so it stays out of ps')
    .option('--auth-secret-file <file>', 'read the shared secret from this file (or set NATKIT_AUTH_SECRET)')
    .option('--turn-failover <server>', 'another node of the same TURN service, HOST[:PORT] or turn:/turns: URI (repeatable, tried in order): when the --turn server stops answering, the allocation moves there and the peer is told the new relayed candidate', (v: string, p: string[] = []) => [...p, v])
    .option('--turn-failover-check <seconds>', 'with --turn-failover: probe the TURN server this often; no answer within 3 s moves the allocation (default 5)', Number)
    .addOption(new Option('--turn-transport <t>', 'how to reach TURN servers given as plain HOST[:PORT]').choices(['udp', 'tcp', 'tls']).default('udp'))
    .option('--stun <host[:port]>', 'STUN server for a server-reflexive candidate (repeatable; default: the TURN server)', (v: string, p: string[] = []) => [...p, v])
    .option('--count <n>', 'echo datagrams to exchange', '20')
    .option('--timeout <ms>', 'give up if no path works within this time', parseMs, 15_000)
    .option('--relay-only', 'offer only relayed candidates')
    .option('--settle <ms>', 'after connecting over the relay, wait this long for a direct path before the echo exchange', parseMs, 3000)
    .option('--local-address <ip>', 'bind the peer socket to this address')
    .option('--include-loopback', 'offer loopback addresses too (two peers on one machine)')
    .option('--insecure', 'with --turn-transport tls: do not verify the certificate')
    .option('--port-mapping [protocols]', `ask the gateway to forward a public port to this peer and offer it as a candidate; removed on exit (${PORTMAP_PROTOCOLS.join(',')} by default, or a comma-separated subset)`)
    .option('--gateway <ip[:port]>', 'with --port-mapping: the gateway to ask (default: the default gateway, port 5351)')
    .option('--port-prediction', 'when this NAT steps its ports by a constant, offer the next ones as candidates (a symmetric NAT with sequential ports; measured through an RFC 5780 --stun server)')
    .option('--birthday-spray [N:M]', `with --rendezvous, both peers: a symmetric NAT with random ports × a port-restricted cone; the symmetric side opens N sockets, the cone side probes M random ports (default 256:2048, at most ${MAX_SPRAY_SOCKETS}:${MAX_SPRAY_PROBES}); the success probability is reported`)
    .option('--spray-rate <pps>', 'with --birthday-spray: spray packets per second at most (default 1000)')
    .option('--tcp-punch', 'TCP simultaneous open where UDP is blocked but TCP gets out: offer this side\'s public TCP endpoint (learnt over STUN/TCP from --stun, else the TURN servers) and connect() to the peer\'s at the same moment (RFC 6544 so candidates); the peer must ask too (not with --manual)')
    .option('--json', 'print one JSON document')
    .action(async (flags: ConnectFlags) => {
      const json = flags.json === true
      const progress = (line: string): void => { if (!json || process.stderr.isTTY) process.stderr.write(`natcheck: ${line}\n`) }
      let client: RendezvousClient | undefined
      let session: PeerSession | undefined
      let uninstallSignals = (): void => {}
      try {
        const count = Number(flags.count)
        if (!Number.isInteger(count) || count < 0 || count > 100_000) throw new InvalidArgumentError('--count takes a whole number from 0 to 100000')
        const secrets = await resolveClientSecrets(flags, process.env, (l) => { process.stderr.write(`natcheck: ${l}\n`) })
        if (secrets.user !== undefined && secrets.authSecret !== undefined) throw new InvalidArgumentError('give --user or --auth-secret, not both')
        const credentials: TurnCredentials | undefined = secrets.user !== undefined
          ? parseUserPass(secrets.user)
          : secrets.authSecret !== undefined ? { authSecret: secrets.authSecret, user: flags.id ?? 'natcheck' } : undefined
        const turns = (flags.turn ?? []).map(t => parseTurnUri(t, flags.turnTransport))
        if (turns.length > 0 && credentials === undefined) throw new InvalidArgumentError('--turn needs --user NAME:PASS or --auth-secret SECRET')
        const failover = turnFailover(flags, turns)
        const turnServers = credentials === undefined
          ? []
          : turns.map(t => ({ server: t.server, transport: t.transport, tcpFallback: t.tcpFallback, credentials, tls: { rejectUnauthorized: flags.insecure !== true }, failover: failover(t) }))
        const stunServers = flags.stun ?? turns.filter(t => t.transport === 'udp').map(t => t.server)
        const hardNat = hardNatOptions(flags)
        if (flags.manual === true) {
          if (hardNat.birthdaySpray !== undefined) throw new InvalidArgumentError('--birthday-spray needs --rendezvous: the peers announce their mappings to each other through signalling')
          if (flags.tcpPunch === true) throw new InvalidArgumentError('--tcp-punch needs --rendezvous: its retries are timed over the signalling')
          if (flags.rendezvous !== undefined) throw new InvalidArgumentError('--manual replaces --rendezvous: give one of them')
          const r = await connectManual({
            role: flags.role ?? 'controlling', bindAddress: flags.localAddress, includeLoopback: flags.includeLoopback === true, policy: flags.relayOnly === true ? 'relay' : 'all',
            stunServers, turnServers, timeoutMs: flags.timeout, count, lite: flags.lite === true, progress, ...hardNat,
            printLines: (text) => { (json ? process.stderr : process.stdout).write(text) }
          })
          try {
            const path = r.agent.path
            const doc = {
              role: r.agent.role,
              path: path === undefined ? null : { type: path.type, local: candidateJson(path.local), remote: candidateJson(path.remote), rttMs: path.rttMs },
              gathering: r.agent.gatherAttempts,
              localCandidates: r.agent.local.map(candidateJson),
              remoteCandidates: r.agent.remote.map(candidateJson),
              attempts: r.agent.attempts().map(a => ({ local: candidateJson(a.local), remote: candidateJson(a.remote), state: a.state, outcome: a.outcome ?? null, rttMs: a.rttMs ?? null, nominated: a.nominated })),
              delivered: r.echo.delivered,
              lost: count - r.echo.delivered,
              echoRttMs: r.echo.medianRttMs
            }
            if (json) printJson(doc)
            else process.stdout.write(`path: ${doc.path === null ? 'none' : `${doc.path.type}, ${doc.path.local.type} ${formatEndpoint(doc.path.local)} → ${doc.path.remote.type} ${formatEndpoint(doc.path.remote)}`}\necho: ${r.echo.delivered}/${count} delivered${r.echo.medianRttMs !== null ? `, median RTT ${r.echo.medianRttMs} ms` : ''}\n`)
            if (count > 0 && r.echo.delivered === 0) process.exitCode = ExitCode.Inconclusive
          } finally { await r.agent.close() }
          return
        }
        if (flags.rendezvous === undefined || flags.id === undefined || flags.peer === undefined) throw new InvalidArgumentError('give --rendezvous URL --id ME --peer OTHER, or --manual')
        const token = flags.token ?? (secrets.authSecret !== undefined ? rendezvousToken(secrets.authSecret, flags.id, 3600) : undefined)
        client = await RendezvousClient.connect({ url: flags.rendezvous, id: flags.id, token, connectTimeoutMs: Math.min(flags.timeout, 10_000) })
        progress(`registered as ${flags.id} at ${flags.rendezvous} (seen as ${client.observed !== undefined ? `${client.observed.address}:${client.observed.port}` : '?'})`)
        const role = roleFor(flags.id, flags.peer)
        const started = performance.now()
        // A mapping on the gateway is released on SIGINT/SIGTERM too, not left to its lease: connecting is aborted (the
        // agent closes and removes it) or the session closed, then the signal takes its course.
        const abort = new AbortController()
        let connecting: Promise<PeerSession> | undefined
        if (hardNat.portMapping !== undefined) {
          // connect() closes its agent (removing the mapping) before it rejects; wait for that, then for the session.
          uninstallSignals = closeOnSignals(async () => { abort.abort(); await connecting?.catch(() => {}); await session?.close() })
        }
        connecting = connect({
          signal: abort.signal,
          channel: rendezvousChannel(client, flags.peer),
          role,
          timeoutMs: flags.timeout,
          bindAddress: flags.localAddress,
          includeLoopback: flags.includeLoopback === true,
          policy: flags.relayOnly === true ? 'relay' : 'all',
          stunServers,
          turnServers,
          ...hardNat,
          ...(flags.tcpPunch === true ? { tcpSimultaneousOpen: true } : {})
        })
        session = await connecting
        // One hello datagram at once (0x48 'H', not part of the echo): the peer's report then shows the time from its
        // connect() call to the first application datagram, even while this side waits for a direct path below.
        session.send(Buffer.from([0x48, 0, 0, 0, 0]))
        session.on('path', (p) => { progress(`path is now ${p.type}: ${formatEndpoint(p.local)} → ${formatEndpoint(p.remote)}`) })
        progress(`connected (${role}) in ${Math.round(performance.now() - started)} ms over a ${session.path.type} path`)
        if (flags.settle > 0 && session.path.type !== 'direct') {
          progress('data flows over the relay; still checking for a direct path')
          await session.settle(flags.settle)
        }
        const echo = await echoExchange(session, client, flags.peer as string, count)
        // The path the exchange ran on: a direct TCP path ends when the peer, done first, closes its session.
        const report = { ...session.report(), path: echo.path ?? null }
        if (json) {
          printJson({ ...jsonReport(report), delivered: echo.delivered, lost: count - echo.delivered, echoRttMs: echo.medianRttMs })
        } else {
          process.stdout.write(renderConnect(report, count, echo))
        }
        if (count > 0 && echo.delivered === 0) process.exitCode = ExitCode.Inconclusive
      } catch (err) {
        const report = (err as { report?: ConnectReport }).report
        reportError(err, json, { doc: report !== undefined ? jsonReport(report) : undefined })
      } finally {
        await session?.close()
        await client?.close()
        uninstallSignals()
      }
    })
}

/**
 * `--turn-failover` and `--turn-failover-check` as each TURN server's failover options (TurnClient's `failover`): the
 * failover nodes reached over the same transport as that server, in the order given. A failover node that no --turn
 * server could move to (another transport) is a usage error.
 */
export function turnFailover (flags: Pick<ConnectFlags, 'turnFailover' | 'turnFailoverCheck' | 'turnTransport'>, turns: readonly TurnUri[]): (t: TurnUri) => TurnFailoverOptions | undefined {
  const nodes = (flags.turnFailover ?? []).map(f => parseTurnUri(f, flags.turnTransport))
  const check = flags.turnFailoverCheck
  if (check !== undefined && !(Number.isFinite(check) && check > 0)) throw new InvalidArgumentError('--turn-failover-check must be a positive number of seconds')
  if (nodes.length === 0) {
    if (check !== undefined) throw new InvalidArgumentError('--turn-failover-check goes with --turn-failover')
    return () => undefined
  }
  if (turns.length === 0) throw new InvalidArgumentError('--turn-failover needs --turn: the server whose allocation moves')
  for (const n of nodes) {
    if (!turns.some(t => t.transport === n.transport)) throw new InvalidArgumentError(`--turn-failover ${n.server} is reached over ${n.transport.toUpperCase()}, but no --turn server is: an allocation moves over the transport it was made on`)
  }
  return (t) => {
    const servers = nodes.filter(n => n.transport === t.transport && n.server !== t.server).map(n => n.server)
    return servers.length === 0 ? undefined : { servers, checkIntervalS: check }
  }
}

/** `--port-mapping [protocols]`, `--gateway`, `--port-prediction` and `--birthday-spray [N:M]` as agent options (absent when not asked for). */
export function hardNatOptions (flags: Pick<ConnectFlags, 'portMapping' | 'gateway' | 'portPrediction' | 'birthdaySpray' | 'sprayRate'>): { portMapping?: PortMappingOptions, portPrediction?: true, birthdaySpray?: BirthdaySprayOptions } {
  const out: { portMapping?: PortMappingOptions, portPrediction?: true, birthdaySpray?: BirthdaySprayOptions } = {}
  if (flags.portPrediction === true) out.portPrediction = true
  if (flags.birthdaySpray !== undefined && flags.birthdaySpray !== false) {
    let spray: BirthdaySprayOptions = {}
    if (typeof flags.birthdaySpray === 'string') {
      const m = /^(\d{1,5}):(\d{1,5})$/.exec(flags.birthdaySpray)
      if (m === null) throw new InvalidArgumentError(`--birthday-spray takes N:M (sockets:probes, e.g. 256:2048), not ${JSON.stringify(flags.birthdaySpray)}`)
      spray = { sockets: Number(m[1]), probes: Number(m[2]) }
    }
    if (flags.sprayRate !== undefined) {
      if (!/^\d{1,6}$/.test(flags.sprayRate)) throw new InvalidArgumentError(`--spray-rate takes packets per second, not ${JSON.stringify(flags.sprayRate)}`)
      spray = { ...spray, rate: Number(flags.sprayRate) }
    }
    try { resolveSprayOptions(spray) } catch (err) { throw new InvalidArgumentError(`--birthday-spray: ${(err as Error).message.replace(/^birthdaySpray\./, '')}`) }
    out.birthdaySpray = spray
  } else if (flags.sprayRate !== undefined) throw new InvalidArgumentError('--spray-rate goes with --birthday-spray')
  if (flags.portMapping === undefined || flags.portMapping === false) {
    if (flags.gateway !== undefined) throw new InvalidArgumentError('--gateway goes with --port-mapping')
    return out
  }
  let protocols: PortMapProtocol[] | undefined
  if (typeof flags.portMapping === 'string') {
    protocols = flags.portMapping.split(',').map(p => p.trim()).filter(p => p !== '') as PortMapProtocol[]
    const bad = protocols.filter(p => !(PORTMAP_PROTOCOLS as readonly string[]).includes(p))
    if (protocols.length === 0 || bad.length > 0) throw new InvalidArgumentError(`--port-mapping takes a comma-separated subset of ${PORTMAP_PROTOCOLS.join(', ')}${bad.length > 0 ? `, not ${bad.join(', ')}` : ''}`)
  }
  let gateway: { gateway: string, port?: number } | undefined
  if (flags.gateway !== undefined) {
    const m = /^(\d{1,3}(?:\.\d{1,3}){3})(?::(\d{1,5}))?$/.exec(flags.gateway)
    const port = m?.[2] !== undefined ? Number(m[2]) : undefined
    if (m === null || ipFamily(m[1]) !== 4 || (port !== undefined && (port < 1 || port > 65535))) throw new InvalidArgumentError(`--gateway takes an IPv4 address with an optional port (e.g. 192.168.1.1 or 192.168.1.1:5351), not ${JSON.stringify(flags.gateway)}`)
    gateway = { gateway: m[1], ...(port !== undefined ? { port } : {}) }
  }
  out.portMapping = { ...(protocols !== undefined ? { protocols } : {}), ...gateway }
  return out
}

function jsonReport (r: ConnectReport): Record<string, unknown> {
  return {
    role: r.role,
    path: r.path === null ? null : { type: r.path.type, local: candidateJson(r.path.local), remote: candidateJson(r.path.remote), rttMs: r.path.rttMs },
    timings: r.timings,
    gathering: r.gathering,
    localCandidates: r.localCandidates.map(candidateJson),
    remoteCandidates: r.remoteCandidates.map(candidateJson),
    attempts: r.attempts,
    ...(r.tcpPunch !== null ? { tcpPunch: r.tcpPunch } : {})
  }
}

function candidateJson (c: { type: string, address: string, port: number }): { type: string, address: string, port: number } {
  return { type: c.type, address: c.address, port: c.port }
}

function renderConnect (r: ConnectReport, count: number, echo: { delivered: number, medianRttMs: number | null }): string {
  const lines: string[] = []
  const p = r.path
  lines.push(p === null ? 'no path' : `path: ${p.type}, ${p.local.type} ${formatEndpoint(p.local)} → ${p.remote.type} ${formatEndpoint(p.remote)}`)
  lines.push(table([
    ['first datagram', r.timings.firstDatagramMs === null ? '—' : `${r.timings.firstDatagramMs} ms after the checks started`],
    ['direct path', r.timings.directMs === null ? 'not found' : `${r.timings.directMs} ms after the checks started`],
    ['signalling RTT', r.timings.signallingRttMs === null ? '—' : `${r.timings.signallingRttMs} ms`],
    ['echo', `${echo.delivered}/${count} delivered${echo.medianRttMs !== null ? `, median RTT ${echo.medianRttMs} ms` : ''}`]
  ]).trimEnd())
  for (const g of r.gathering) {
    if (g.kind === 'portmap') lines.push(`port mapping: ${g.ok ? '' : 'none, '}${g.detail}`)
    if (g.kind === 'prediction') lines.push(`port prediction: ${g.detail}`)
    if (g.kind === 'spray') lines.push(`birthday spray: ${g.detail}${g.probability !== undefined ? ` (P computed beforehand: ${(g.probability * 100).toFixed(2)}%)` : ''}`)
  }
  const t = r.tcpPunch
  if (t !== null) {
    lines.push(`TCP punch: ${t.result ?? 'running'}${t.mapping !== null ? `, public TCP ${t.mapping.mapped} (from ${t.mapping.local})` : t.mappingError !== null ? ` (${t.mappingError})` : ''}${t.connectedMs !== null ? `, direct after ${t.connectedMs} ms` : ''}`)
    for (const a of t.attempts) lines.push(`  attempt ${a.n} → ${a.remote}: ${a.outcome} in ${a.ms} ms${a.detail !== null ? ` (${a.detail})` : ''}`)
  }
  lines.push('attempts:')
  for (const a of r.attempts) {
    lines.push(`  ${a.local.type.padEnd(5)} ${`${a.local.address}:${a.local.port}`.padEnd(22)} → ${a.remote.type.padEnd(5)} ${`${a.remote.address}:${a.remote.port}`.padEnd(22)} ${(a.outcome ?? a.state).padEnd(13)} ${a.rttMs !== null ? `${a.rttMs} ms` : ''}${a.detail !== null ? ` ${a.detail}` : ''}`)
  }
  return lines.join('\n') + '\n'
}
