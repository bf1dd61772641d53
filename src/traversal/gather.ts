import { networkInterfaces } from 'node:os'
import { formatEndpoint, ipFamily, sameTransportAddress, type Endpoint } from '../net/endpoint.js'
import { resolveServer, type Transport } from '../net/resolve.js'
import type { TlsClientOptions } from '../net/stream.js'
import type { DatagramSocket } from '../net/udp.js'
import { TurnClient } from '../relay/turn-client.js'
import type { TurnCredentials } from '../relay/turn-client-auth.js'
import type { TurnFailoverOptions } from '../relay/turn-client.js'
import { StunErrorResponse } from '../errors.js'
import { buildBindingRequest, parseBindingResponse } from '../stun/client.js'
import type { StunTransactions } from '../stun/index.js'
import { PortMapper, type PortMapperOptions } from '../portmap/mapper.js'
import type { PredictionReason } from './port-prediction.js'
import type { SprayReason } from './spray-plan.js'
import type { SocketMux } from './socket-mux.js'

/** A TURN server to gather a relayed candidate from. */
export interface TurnServerConfig {
  readonly server: string
  /** How to reach it: UDP (default), or TCP/TLS where UDP is blocked. */
  readonly transport?: Transport
  /**
   * With UDP: also try TCP on the same host and port when UDP has not produced an allocation within the agent's
   * `happyEyeballsDelayMs` (what a `turn:` URI without `?transport` means: coturn and natkit listen on both).
   */
  readonly tcpFallback?: boolean
  readonly credentials: TurnCredentials
  readonly tls?: TlsClientOptions
  /**
   * Other nodes of the same relay service: when this server stops answering, the allocation moves to one of them
   * (TurnClient's failover) and the agent replaces its relayed candidate (the peer is told through signalling).
   */
  readonly failover?: TurnFailoverOptions
}

/** One gathering attempt, for the connect report. */
export interface GatherAttempt {
  readonly kind: 'srflx' | 'relay' | 'portmap' | 'prediction' | 'spray'
  readonly server: string
  readonly ok: boolean
  readonly ms: number
  readonly detail: string
  /** `prediction`: why ports were or were not predicted; `spray`: how the birthday spray ended. */
  readonly reason?: PredictionReason | SprayReason
  /** `spray` only: the success probability computed before spraying, 1 − (1 − N/R)^M. */
  readonly probability?: number
}

/** One TURN allocation attempt: a server with a concrete transport, started at once or after the happy-eyeballs delay. */
export interface RelayAttemptPlan {
  readonly config: TurnServerConfig & { readonly transport: Transport }
  /** Started only if no UDP allocation succeeded within the delay (or every UDP attempt has already failed). */
  readonly delayed: boolean
}

/**
 * Order TURN attempts happy-eyeballs style (in the spirit of RFC 8305 §5, applied to RFC 8656 transports): every UDP
 * server at once; TCP and TLS servers, and the TCP fallback of UDP servers that allow it, after a short delay unless
 * UDP answered. With no UDP server at all nothing waits.
 */
export function planRelayAttempts (configs: readonly TurnServerConfig[]): RelayAttemptPlan[] {
  const anyUdp = configs.some(c => (c.transport ?? 'udp') === 'udp')
  const out: RelayAttemptPlan[] = []
  for (const c of configs) {
    const transport = c.transport ?? 'udp'
    out.push({ config: { ...c, transport }, delayed: transport !== 'udp' && anyUdp })
    if (transport === 'udp' && c.tcpFallback === true) out.push({ config: { ...c, transport: 'tcp', tcpFallback: false }, delayed: true })
  }
  return out
}

/** The host addresses a socket bound to `bound` can be reached at: the bound address, or every usable interface. */
export function hostAddresses (bound: string, includeLoopback: boolean): string[] {
  if (bound !== '0.0.0.0' && bound !== '::') return [bound]
  const family = bound === '::' ? 'any' : 'IPv4'
  const out: string[] = []
  for (const list of Object.values(networkInterfaces())) {
    for (const i of list ?? []) {
      if (family === 'IPv4' && i.family !== 'IPv4') continue
      if (i.internal && !includeLoopback) continue
      if (i.family === 'IPv6' && /^fe[89ab]/i.test(i.address)) continue // link-local needs a zone: skip (RFC 8445 §5.1.1.1)
      out.push(i.address)
    }
  }
  if (out.length === 0 && !includeLoopback) return hostAddresses(bound, true)
  return out
}

/** Ask one STUN server for this socket's server-reflexive address within `budgetMs`. */
export async function gatherSrflx (tx: StunTransactions, server: string, budgetMs: number, signal?: AbortSignal): Promise<{ mapped?: Endpoint, attempt: GatherAttempt }> {
  const started = performance.now()
  const finish = (ok: boolean, detail: string): GatherAttempt => ({ kind: 'srflx', server, ok, ms: Math.round(performance.now() - started), detail })
  try {
    const [target] = await resolveServer(server, { family: 4 })
    const deadline = AbortSignal.timeout(budgetMs)
    const res = await tx.request(buildBindingRequest(), target, { rtoMs: 150, rc: 5, rm: 8, signal: signal !== undefined ? AbortSignal.any([signal, deadline]) : deadline })
    const r = parseBindingResponse(res.message, res.from, tx.socket.local, res.rttMs)
    return { mapped: r.mapped, attempt: finish(true, `mapped ${formatEndpoint(r.mapped)} in ${r.rttMs.toFixed(1)} ms`) }
  } catch (err) {
    return { attempt: finish(false, (err as Error).name === 'AbortError' || (err as Error).name === 'TimeoutError' ? `no answer within ${budgetMs} ms` : (err as Error).message) }
  }
}

/** Allocate on one TURN server from the shared socket (UDP) or its own connection (TCP/TLS). */
export async function gatherRelay (mux: SocketMux, config: TurnServerConfig, signal?: AbortSignal): Promise<{ client?: TurnClient, attempt: GatherAttempt }> {
  const started = performance.now()
  const transport = config.transport ?? 'udp'
  const label = `${config.server} over ${transport.toUpperCase()}`
  const finish = (ok: boolean, detail: string): GatherAttempt => ({ kind: 'relay', server: label, ok, ms: Math.round(performance.now() - started), detail })
  let route: DatagramSocket | undefined
  try {
    const family = ipFamily(mux.socket.local.address) === 6 ? undefined : 4
    const [target] = await resolveServer(config.server, { transport, service: 'turn', family })
    // The shared socket routes the servers' datagrams to the TURN client: this one's, and with failover the others'.
    const servers = [target]
    for (const other of config.failover?.servers ?? []) {
      try { servers.push(...await resolveServer(other, { transport, service: 'turn', family })) } catch { /* unresolvable now: not routed */ }
    }
    if (transport === 'udp') route = mux.route(from => servers.some(s => sameTransportAddress(from, s)))
    const client = await TurnClient.allocate({
      server: formatEndpoint(target), transport, credentials: config.credentials, tls: config.tls, socket: route, signal,
      retransmit: { rtoMs: 200, rc: 5, rm: 8 },
      failover: config.failover === undefined ? undefined : { ...config.failover, servers: servers.slice(1).map(formatEndpoint) }
    })
    return { client, attempt: finish(true, `relayed ${formatEndpoint(client.allocation.relayed)}`) }
  } catch (err) {
    await route?.close()
    const detail = err instanceof StunErrorResponse ? `relay refused: ${err.errorCode} ${err.reason}` : (err as Error).message
    return { attempt: finish(false, detail) }
  }
}

/**
 * The agent's port-mapped candidate (off unless asked for): the gateway is asked (PCP, NAT-PMP, UPnP IGD; first grant
 * wins) to forward a public port to the agent's UDP socket. All of {@link PortMapperOptions} apply.
 */
export interface PortMappingOptions extends Omit<PortMapperOptions, 'eager'> {
  /** Lease asked for, seconds (default 120: short, so the gateway ends it soon if the process is killed; renewed at half). */
  readonly lifetimeS?: number
  /**
   * Connectivity checks wait at most this long for the gateway's answer (default 500 ms). A NAT keeps the port it
   * chose for a flow that already exists: checks to the peer sent before the mapping would leave a flow the mapping
   * does not cover. A later grant is still offered (trickled).
   */
  readonly checksWaitMs?: number
}

/** Default lease of an agent's port mapping, seconds. */
export const PORT_MAPPING_LIFETIME_S = 120

/**
 * Ask the gateway to map `internalPort` (UDP) within `budgetMs`. Never throws: a refusal or silence is reported in the
 * attempt. The mapper holds the lease; close it to remove the mapping.
 */
export async function gatherPortMapped (internalPort: number, options: PortMappingOptions, budgetMs: number): Promise<{ mapper?: PortMapper, attempt: GatherAttempt }> {
  const started = performance.now()
  const timeoutMs = Math.min(options.timeoutMs ?? budgetMs, budgetMs)
  const server = options.gateway ?? 'default gateway'
  const finish = (ok: boolean, detail: string): GatherAttempt => ({ kind: 'portmap', server, ok, ms: Math.round(performance.now() - started), detail })
  try {
    const { lifetimeS, checksWaitMs, ...mapperOptions } = options
    const mapper = await PortMapper.map({ transport: 'udp', internalPort, lifetimeS: lifetimeS ?? PORT_MAPPING_LIFETIME_S }, { ...mapperOptions, timeoutMs, eager: true })
    const m = mapper.mapping
    return { mapper, attempt: finish(true, `${m.protocol} mapped ${m.externalIp ?? '?'}:${m.externalPort} for ${m.lifetimeS} s`) }
  } catch (err) {
    return { attempt: finish(false, (err as Error).message) }
  }
}
