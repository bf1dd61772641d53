import { createLogger } from '../log.js'
import { formatEndpoint, ipFamily, type Endpoint } from '../net/endpoint.js'
import type { DatagramSocket } from '../net/udp.js'
import type { GrantedMapping } from '../portmap/client.js'
import type { PortMapper } from '../portmap/mapper.js'
import type { TurnClient } from '../relay/turn-client.js'
import type { StunTransactions } from '../stun/index.js'
import type { AgentOptions } from './agent-options.js'
import { makeCandidate, type Candidate } from './candidate.js'
import { gatherPortMapped, gatherRelay, gatherSrflx, hostAddresses, planRelayAttempts, type GatherAttempt } from './gather.js'
import { BirthdaySpray, type SprayHost } from './birthday-spray.js'
import { PREDICTED_LOCAL_PREFERENCE, gatherPredicted, predictedBurst, predictedPortCount, type PortPrediction } from './port-prediction.js'
import { RelaySocket } from './relay-socket.js'
import type { SocketMux } from './socket-mux.js'

const log = createLogger('natcheck:traversal:agent')

/** A local base of the Agent: a host socket or a relayed allocation, with the STUN transactions gathering uses. */
export interface AgentBase {
  /** Changes when a relayed base's allocation moves (relayMoved). */
  candidate: Candidate
  readonly socket: DatagramSocket
  readonly tx: StunTransactions
  readonly turn?: TurnClient
}

/**
 * The hard-NAT techniques gathering sets up (port mapping, port prediction, birthday spray), each only when asked for:
 * written by gatherCandidates, read by the agent (its public getters, the checks' start, close).
 */
export interface HardNatGathering {
  /** The current port-mapped candidate, if the gateway granted one. */
  portMappedCandidate?: Candidate
  /** The port-mapping attempt while it runs (close waits for it, so a late grant is removed, not left behind). */
  portMapAttempt?: Promise<void>
  portMapper?: PortMapper
  /** What port prediction concluded (when it was asked for and has finished). */
  portPrediction?: PortPrediction
  /** Sends the first checks towards the peer's predicted ports in order (predictedBurst), right before checks start. */
  predictionBurst?: () => void
  /** The birthday spray (birthday-spray.ts), when asked for: made here, started and closed by the agent. */
  birthdaySpray?: BirthdaySpray
}

/** What gathering needs from the Agent it gathers for (the adapter's side: sockets, TURN clients, events). */
export interface GatherHost {
  readonly mux: SocketMux
  readonly options: AgentOptions
  readonly gatherAttempts: GatherAttempt[]
  readonly local: Candidate[]
  /** The agent's record of the hard-NAT techniques, filled in here. */
  readonly hardNat: HardNatGathering
  /** The peer's candidates, signalled or learnt. */
  remotes: () => readonly Candidate[]
  /** A check request outside any transaction (IceCore.rawCheck), or undefined while the peer's credentials are unknown. */
  rawCheck: () => Buffer | undefined
  /** The spray's view of the agent on its host base. */
  sprayHost: (hostBase: AgentBase, primary: string) => SprayHost
  closed: () => boolean
  /** Register a base (host socket or relayed allocation) and offer its candidate; returns its STUN transaction layer. */
  addBase: (c: Candidate, socket: DatagramSocket, turn?: TurnClient) => AgentBase
  addLocal: (c: Candidate) => boolean
  announce: (c: Candidate) => void
  /** Every attempt has finished: mark it at once, and emit `gathering-complete` now or (`later`) in a microtask. */
  complete: (later: boolean) => void
  gateChecks: (p: Promise<void>, maxMs: number) => void
  /** An unref'd timer the agent clears on close. */
  delay: (ms: number) => Promise<void>
  relayMoved: (base: AgentBase, relayed: Endpoint, mapped: Endpoint, server: Endpoint) => void
}

/**
 * Gather an Agent's candidates (RFC 8445 §5.1.1): host addresses of the socket, server-reflexive from each STUN server, relayed
 * from each TURN server, all in parallel. TURN servers are tried happy-eyeballs style (`planRelayAttempts`): UDP at
 * once, TCP/TLS and the TCP fallback of `turn:` URIs without a transport `happyEyeballsDelayMs` later unless UDP
 * allocated by then.
 *
 * With `trickle` (RFC 8838 §4) this resolves with the host candidates at once and every later candidate is emitted
 * as a `candidate` event, then `gathering-complete`. Without it, it waits for server-reflexive candidates and up to
 * the gathering budget for relayed ones; relayed candidates arriving later are still emitted as `candidate` events.
 */
export async function gatherCandidates (g: GatherHost, options: { trickle?: boolean } = {}): Promise<Candidate[]> {
  const socket = g.mux.socket
  const hostSocket = g.mux.fallback()
  const relayOnly = g.options.policy === 'relay'
  const addrs = hostAddresses(socket.local.address, g.options.includeLoopback === true)
  // One base per address family: the kernel picks the source address, so pairs from other host candidates of the
  // same family would be the very same packets.
  const primary = addrs.find(a => ipFamily(a) === 4) ?? addrs[0]
  const hostCandidate = makeCandidate({ type: 'host', address: primary, port: socket.local.port })
  const hostBase = g.addBase(hostCandidate, hostSocket)
  g.mux.claim = (data) => hostBase.tx.owns(data)
  if (!relayOnly) {
    for (const a of addrs) g.addLocal(a === primary ? hostCandidate : makeCandidate({ type: 'host', address: a, port: socket.local.port, localPreference: 65534 - g.local.length }))
  }
  // RFC 8445 §5.2: a lite agent has host candidates only.
  if (g.options.lite === true) {
    g.complete(true)
    return [...g.local]
  }
  const budget = g.options.gatherTimeoutMs ?? 1500
  let announce = options.trickle === true
  const found = (c: Candidate): void => { if (g.addLocal(c) && announce) g.announce(c) }
  const srflx = (g.options.stunServers ?? []).map(async (server) => {
    const r = await gatherSrflx(hostBase.tx, server, budget, g.options.signal)
    g.gatherAttempts.push(r.attempt)
    if (r.mapped !== undefined && !relayOnly && !(r.mapped.address === primary && r.mapped.port === socket.local.port)) {
      found(makeCandidate({ type: 'srflx', address: r.mapped.address, port: r.mapped.port, base: primary, server, related: { address: primary, port: socket.local.port } }))
    }
  })
  const pm = g.options.portMapping
  const pmOptions = pm === true ? {} : pm === false || pm === undefined ? undefined : pm
  if (pmOptions !== undefined && !relayOnly && ipFamily(primary) === 4) {
    const offer = (m: GrantedMapping): void => {
      if (m.externalIp === null) { log('port mapping %d granted without an external address: no candidate', m.externalPort); return }
      const c = makeCandidate({ type: 'srflx', address: m.externalIp, port: m.externalPort, base: primary, server: `portmap:${m.protocol}`, related: { address: primary, port: socket.local.port }, localPreference: 65535 })
      g.hardNat.portMappedCandidate = c
      found(c)
    }
    g.hardNat.portMapAttempt = (async () => {
      const r = await gatherPortMapped(socket.local.port, pmOptions, budget)
      g.gatherAttempts.push(r.attempt)
      if (r.mapper === undefined) return
      if (g.closed()) { await r.mapper.close(); return }
      g.hardNat.portMapper = r.mapper
      r.mapper.on('renewed', (m) => { if (m.externalIp !== g.hardNat.portMappedCandidate?.address || m.externalPort !== g.hardNat.portMappedCandidate?.port) offer(m) })
      r.mapper.on('error', (err) => { log('port mapping: %s', err.message) })
      offer(r.mapper.mapping)
    })()
    g.gateChecks(g.hardNat.portMapAttempt, pmOptions.checksWaitMs ?? 500)
  }
  const pp = g.options.portPrediction
  const ppOptions = pp === true ? {} : pp === false || pp === undefined ? undefined : pp
  let prediction: Promise<void> | undefined
  if (ppOptions !== undefined && !relayOnly && ipFamily(primary) === 4) {
    const servers = [...(g.options.stunServers ?? []), ...(g.options.turnServers ?? []).filter(t => (t.transport ?? 'udp') === 'udp').map(t => t.server)]
    prediction = (async () => {
      const r = await gatherPredicted(hostBase.tx, servers, budget, predictedPortCount(ppOptions), g.options.signal)
      g.hardNat.portPrediction = r.prediction
      g.gatherAttempts.push(r.attempt)
      const address = r.prediction.address
      if (address === null || g.closed()) return
      r.prediction.ports.forEach((port, k) => {
        found(makeCandidate({ type: 'srflx', address, port, base: primary, server: 'port-prediction', related: { address: primary, port: socket.local.port }, localPreference: PREDICTED_LOCAL_PREFERENCE - k }))
      })
    })()
    g.gateChecks(prediction, ppOptions.checksWaitMs ?? 500)
    g.hardNat.predictionBurst = () => {
      for (const to of predictedBurst(g.hardNat.portPrediction, g.remotes())) { const c = g.rawCheck(); if (c !== undefined) hostBase.socket.send(c, to) }
    }
  }
  const bs = g.options.birthdaySpray
  if (bs !== undefined && bs !== false && !relayOnly && ipFamily(primary) === 4) {
    const servers = [...(g.options.stunServers ?? []), ...(g.options.turnServers ?? []).filter(t => (t.transport ?? 'udp') === 'udp').map(t => t.server)]
    g.hardNat.birthdaySpray = new BirthdaySpray(bs === true ? {} : bs, g.sprayHost(hostBase, primary), socket.local.address)
    void g.hardNat.birthdaySpray.measure(hostBase.tx, servers, budget, g.options.signal, prediction?.then(() => g.hardNat.portPrediction))
  }
  const plan = planRelayAttempts(g.options.turnServers ?? [])
  let udpAllocated = false
  let udpPending = plan.filter(a => !a.delayed).length
  let udpSettled: () => void = () => {}
  const udpDone = new Promise<void>(resolve => { udpSettled = resolve; if (udpPending === 0) resolve() })
  const delay = g.options.happyEyeballsDelayMs ?? 250
  const relays = plan.map(async ({ config, delayed }) => {
    if (delayed) {
      await Promise.race([udpDone, g.delay(delay)])
      if (udpAllocated || g.closed()) {
        g.gatherAttempts.push({ kind: 'relay', server: `${config.server} over ${config.transport.toUpperCase()}`, ok: false, ms: 0, detail: 'skipped: a UDP allocation answered first' })
        return
      }
    }
    const r = await gatherRelay(g.mux, config, g.options.signal)
    g.gatherAttempts.push(r.attempt)
    if (!delayed) {
      if (r.client !== undefined) udpAllocated = true
      if (--udpPending === 0 || udpAllocated) udpSettled()
    }
    if (r.client === undefined) return
    if (g.closed()) { await r.client.close(); return }
    const a = r.client.allocation
    // The allocation's XOR-MAPPED-ADDRESS is a server-reflexive candidate too (RFC 8445 §5.1.1.2).
    if (!relayOnly && config.transport === 'udp' && !(a.mapped.address === primary && a.mapped.port === socket.local.port)) {
      found(makeCandidate({ type: 'srflx', address: a.mapped.address, port: a.mapped.port, base: primary, server: config.server, related: { address: primary, port: socket.local.port } }))
    }
    const c = makeCandidate({ type: 'relay', address: a.relayed.address, port: a.relayed.port, server: `${config.server}/${config.transport}`, related: a.mapped, localPreference: config.transport === 'udp' ? 65535 : config.transport === 'tcp' ? 32767 : 16383 })
    const base = g.addBase(c, new RelaySocket(r.client), r.client)
    r.client.on('reallocated', (alloc) => {
      log('relay reallocated at %s', formatEndpoint(alloc.relayed))
      g.relayMoved(base, alloc.relayed, alloc.mapped, alloc.server)
    })
    r.client.on('error', (err) => { log('relay: %s', err.message) })
    found(c)
  })
  const portmap = [g.hardNat.portMapAttempt, prediction].filter((p): p is Promise<void> => p !== undefined)
  void Promise.all([...srflx, ...relays, ...portmap]).then(() => {
    g.complete(false)
  })
  if (options.trickle === true) return [...g.local]
  await Promise.all([...srflx, ...portmap])
  await Promise.race([Promise.all(relays), g.delay(budget)])
  announce = true
  return [...g.local]
}

/**
 * Gather the candidates of an extra component (RTCP without rtcp-mux, RFC 8445 §4) on its own socket: host
 * candidates at once, server-reflexive ones from the STUN servers and relayed ones from the TURN servers (UDP first,
 * TCP/TLS only when no UDP allocation succeeded). A candidate found while `announce()` is true is emitted. Resolves
 * when every attempt has finished.
 */
export async function gatherComponent (g: GatherHost, component: number, announce: () => boolean): Promise<void> {
  const socket = g.mux.socket
  const relayOnly = g.options.policy === 'relay'
  const addrs = hostAddresses(socket.local.address, g.options.includeLoopback === true)
  const primary = addrs.find(a => ipFamily(a) === 4) ?? addrs[0]
  const host = makeCandidate({ type: 'host', address: primary, port: socket.local.port, component })
  const base = g.addBase(host, g.mux.fallback())
  g.mux.claim = (data) => base.tx.owns(data)
  if (!relayOnly) {
    for (const a of addrs) g.addLocal(a === primary ? host : makeCandidate({ type: 'host', address: a, port: socket.local.port, localPreference: 65534 - g.local.length, component }))
  }
  if (g.options.lite === true) return
  const found = (c: Candidate): void => { if (g.addLocal(c) && announce()) g.announce(c) }
  const label = (attempt: GatherAttempt): GatherAttempt => ({ ...attempt, server: `${attempt.server} (component ${component})` })
  const budget = g.options.gatherTimeoutMs ?? 1500
  const srflx = relayOnly ? [] : (g.options.stunServers ?? []).map(async (server) => {
    const r = await gatherSrflx(base.tx, server, budget, g.options.signal)
    g.gatherAttempts.push(label(r.attempt))
    if (r.mapped === undefined || g.closed() || (r.mapped.address === primary && r.mapped.port === socket.local.port)) return
    found(makeCandidate({ type: 'srflx', address: r.mapped.address, port: r.mapped.port, base: primary, server, related: { address: primary, port: socket.local.port }, component }))
  })
  const relay = async ({ config }: { config: Parameters<typeof gatherRelay>[1] }): Promise<boolean> => {
    const r = await gatherRelay(g.mux, config, g.options.signal)
    g.gatherAttempts.push(label(r.attempt))
    if (r.client === undefined) return false
    if (g.closed()) { await r.client.close(); return false }
    const a = r.client.allocation
    const c = makeCandidate({ type: 'relay', address: a.relayed.address, port: a.relayed.port, server: `${config.server}/${config.transport}`, related: a.mapped, localPreference: config.transport === 'udp' ? 65535 : config.transport === 'tcp' ? 32767 : 16383, component })
    const relayed = g.addBase(c, new RelaySocket(r.client), r.client)
    r.client.on('reallocated', (alloc) => { g.relayMoved(relayed, alloc.relayed, alloc.mapped, alloc.server) })
    r.client.on('error', (err) => { log('relay (component %d): %s', component, err.message) })
    found(c)
    return true
  }
  const plan = planRelayAttempts(g.options.turnServers ?? [])
  const relays = (async () => {
    const udp = await Promise.all(plan.filter(a => !a.delayed).map(relay))
    if (!udp.some(Boolean)) await Promise.all(plan.filter(a => a.delayed).map(relay))
  })()
  await Promise.all([...srflx, relays])
}
