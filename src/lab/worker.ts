/**
 * The lab's worker: a library-level entry the NAT lab runs inside a network namespace (`node worker.js TASK JSON`),
 * because sockets belong to the namespace of the process that opens them. It calls natkit's library `connect`
 * directly (the lab's servers are natcheck's own, started by `Lab.up`) and prints one JSON line of a typed result
 * (PeerWorkerResult) on stdout; logs go to stderr. Not part of the public API.
 */
import { pathToFileURL } from 'node:url'
import { ERROR_CODES } from '../errors.js'
import { formatEndpoint } from '../net/endpoint.js'
import { parseTurnUri } from '../relay/turn-uri.js'
import { RendezvousClient } from '../rendezvous/client.js'
import { rendezvousToken } from '../rendezvous/token.js'
import { echoExchange } from '../traversal/echo.js'
import { rendezvousChannel, roleFor } from '../traversal/rendezvous-channel.js'
import type { PortMappingOptions } from '../traversal/gather.js'
import type { PortPrediction, PortPredictionOptions, PredictionReason } from '../traversal/port-prediction.js'
import type { BirthdaySprayReport } from '../traversal/birthday-spray.js'
import type { BirthdaySprayOptions } from '../traversal/spray-plan.js'
import { connect, type PeerSession } from '../traversal/session.js'
import type { TcpPunchReport, TcpSimultaneousOpenOptions } from '../traversal/tcp-punch-link.js'

/** `peer`: register at the rendezvous, connect to `peer` (TURN fallback), exchange `count` echo datagrams. */
export interface PeerTask {
  readonly task: 'peer'
  readonly rendezvous: string
  readonly id: string
  readonly peer: string
  readonly secret: string
  /** TURN URIs (RFC 7065). */
  readonly turn: readonly string[]
  readonly count: number
  readonly timeoutMs: number
  /** How long to wait for a direct path after connecting over the relay (ms). */
  readonly settleMs: number
  /** Ask the site's gateway for a port-mapped candidate (the agent's `portMapping`; off when absent). */
  readonly portMapping?: PortMappingOptions
  /** The agent's `portPrediction` (off when absent). */
  readonly portPrediction?: PortPredictionOptions
  /** The agent's `birthdaySpray` (off when absent; `bind` cannot cross JSON). */
  readonly birthdaySpray?: Omit<BirthdaySprayOptions, 'bind'>
  /** STUN servers (default: the TURN URIs' UDP servers). */
  readonly stun?: readonly string[]
  /** The session's `tcpSimultaneousOpen` (off when absent). */
  readonly tcpSimultaneousOpen?: boolean | TcpSimultaneousOpenOptions
}

/** `discover`: discoverNat against one STUN server. */

export type WorkerTask = PeerTask

/** What a `peer` worker reports. */
export interface PeerWorkerResult {
  readonly path: { readonly type: 'direct' | 'relay', readonly local: string, readonly remote: string, readonly rttMs: number | null } | null
  readonly timings: { readonly firstDatagramMs: number | null, readonly directMs: number | null, readonly signallingRttMs: number | null, readonly firstMessageFromStartMs: number | null } | null
  readonly delivered: number
  readonly lost: number
  readonly error: { readonly code: string, readonly message: string } | null
  /** The port-mapped candidate this peer offered (`ip:port`), when it asked for one and the gateway granted it. */
  readonly portMapped?: string | null
  /** What port prediction concluded, when it was asked for. */
  readonly prediction?: { readonly reason: PredictionReason, readonly delta: number | null, readonly samples: number[], readonly ports: number[] } | null
  /** The birthday spray's report, when it was asked for, and its `spray` gathering attempt's line. */
  readonly spray?: (BirthdaySprayReport & { readonly attempt: string | null }) | null
  /** The TCP simultaneous open's report, when it was asked for. */
  readonly tcpPunch?: TcpPunchReport | null
  /** The path's transport (`tcp` for the punched TCP path). */
  readonly transport?: 'udp' | 'tcp'
}

/** The worker's file (dist/src/lab/worker.js), to spawn with `node`. */
export const WORKER_PATH = new URL(import.meta.url).pathname

function print (result: PeerWorkerResult): void {
  process.stdout.write(`${JSON.stringify(result)}\n`)
}

async function runPeer (t: PeerTask): Promise<void> {
  let client: RendezvousClient | undefined
  let session: PeerSession | undefined
  try {
    client = await RendezvousClient.connect({ url: t.rendezvous, id: t.id, token: rendezvousToken(t.secret, t.id, 3600), connectTimeoutMs: Math.min(t.timeoutMs, 10_000) })
    const turns = t.turn.map(u => parseTurnUri(u))
    session = await connect({
      channel: rendezvousChannel(client, t.peer),
      role: roleFor(t.id, t.peer),
      timeoutMs: t.timeoutMs,
      stunServers: t.stun ?? turns.filter(u => u.transport === 'udp').map(u => u.server),
      turnServers: turns.map(u => ({ server: u.server, transport: u.transport, tcpFallback: u.tcpFallback, credentials: { authSecret: t.secret, user: t.id } })),
      ...(t.portMapping !== undefined ? { portMapping: t.portMapping } : {}),
      ...(t.portPrediction !== undefined ? { portPrediction: t.portPrediction } : {}),
      ...(t.birthdaySpray !== undefined ? { birthdaySpray: t.birthdaySpray } : {}),
      ...(t.tcpSimultaneousOpen !== undefined ? { tcpSimultaneousOpen: t.tcpSimultaneousOpen } : {})
    })
    // One hello datagram at once (as natcheck connect does): the peer's report then measures connect() → first datagram.
    session.send(Buffer.from([0x48, 0, 0, 0, 0]))
    if (t.settleMs > 0 && session.path.type !== 'direct') await session.settle(t.settleMs)
    const echo = await echoExchange(session, client, t.peer, t.count)
    const r = session.report()
    // The path the exchange ran on: a direct TCP path ends when the peer, done first, closes its session.
    const p = echo.path ?? null
    print({
      path: p === null ? null : { type: p.type, local: `${p.local.type} ${formatEndpoint(p.local)}`, remote: `${p.remote.type} ${formatEndpoint(p.remote)}`, rttMs: p.rttMs },
      timings: r.timings,
      delivered: echo.delivered,
      lost: t.count - echo.delivered,
      error: null,
      ...(t.portMapping !== undefined ? { portMapped: session.agent.portMappedCandidate === undefined ? null : formatEndpoint(session.agent.portMappedCandidate) } : {}),
      ...(t.portPrediction !== undefined ? { prediction: predictionOf(session.agent.portPrediction) } : {}),
      ...(t.birthdaySpray !== undefined ? { spray: sprayOf(session) } : {}),
      ...(t.tcpSimultaneousOpen !== undefined ? { tcpPunch: r.tcpPunch, transport: p?.local.transport ?? 'udp' } : {})
    })
  } catch (err) {
    const e = err as { code?: string, message?: string }
    print({ path: null, timings: null, delivered: 0, lost: t.count, error: { code: e.code ?? ERROR_CODES.INTERNAL, message: e.message ?? String(err) } })
  } finally {
    await session?.close()
    await client?.close()
  }
}

function predictionOf (p: PortPrediction | undefined): PeerWorkerResult['prediction'] {
  return p === undefined ? null : { reason: p.reason, delta: p.delta, samples: p.samples, ports: p.ports }
}

function sprayOf (session: PeerSession): PeerWorkerResult['spray'] {
  const r = session.agent.birthdaySpray?.report
  return r === undefined ? null : { ...r, attempt: session.report().gathering.find(g => g.kind === 'spray')?.detail ?? null }
}

/** Run one task (the worker's main). */
export async function runWorkerTask (task: WorkerTask): Promise<void> {
  switch (task.task) {
    case 'peer': await runPeer(task); break
  }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  runWorkerTask(JSON.parse(process.argv[2] ?? '{}') as WorkerTask).then(() => { process.exit(0) }, (err: unknown) => {
    process.stderr.write(`lab worker: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`)
    process.exit(3)
  })
}
