import type { NatType, PortAllocation } from './types.js'

/** How two peers should connect. */
export type Strategy = 'direct' | 'punch' | 'port-prediction' | 'relay-udp' | 'relay-tcp' | 'relay-tls' | 'port-mapping' | 'birthday-spray' | 'tcp-simultaneous-open'

/** What the pair predictor needs from each side's saved report. */
export interface PeerProfile {
  readonly type: NatType
  readonly portAllocation?: PortAllocation
  readonly tcp?: boolean | null
  readonly tls?: boolean | null
  /** TCP connects to the server's ports (the report's `tcpPorts`), when UDP was blocked and they were probed. */
  readonly tcpPorts?: ReadonlyArray<{ readonly port: number, readonly outcome: string }> | null
  /** Whether the side's gateway granted a port mapping (PCP, NAT-PMP or UPnP IGD) when natcheck asked. */
  readonly portMapped?: boolean
}

/** The predicted strategy, and why. */
export interface PairPrediction {
  readonly strategy: Strategy
  /** Other strategies that could also work, most promising first. */
  readonly alternatives: Strategy[]
  readonly reason: string
  /** For each alternative, what it costs and how likely it works. */
  readonly costs?: Partial<Record<Strategy, string>>
  /**
   * When the standard strategy relays but an opt-in technique of natkit's agent opens the pair directly: which one
   * (the most likely to work, then the cheapest), how to turn it on, and for the birthday spray its numbers.
   */
  readonly direct?: DirectTechnique
}

/** An opt-in technique that makes a relayed pair direct. */
export interface DirectTechnique {
  readonly strategy: 'tcp-simultaneous-open' | 'port-mapping' | 'port-prediction' | 'birthday-spray'
  /** The agent option and `natcheck connect` flag that turn it on. */
  readonly enable: string
  /** The birthday spray's estimate (the default caps), when that is the technique. */
  readonly spray?: SprayEstimate
}

/** Ports a NAT allocates from, for the birthday-spray estimate (1024..65535). */
const PORT_SPACE = 64512

/** The birthday spray's odds and cost for given caps (see birthday-spray.ts in the traversal layer). */
export interface SprayEstimate {
  /** N: sockets (mappings) the symmetric side opens. */
  readonly sockets: number
  /** M: ports the cone side probes at most. */
  readonly probes: number
  /** R: the symmetric NAT's port range. */
  readonly portRange: number
  /** P = 1 − (1 − N/R)^M. */
  readonly probability: number
  /** Probes the cone side is expected to send, E[min(K, M)] = (1 − (1 − N/R)^M)·R/N (K: the probe that hits). */
  readonly expectedProbes: number
  /** Packets both sides send: expected (N + expected probes) and at most (N + M), connectivity checks excluded. */
  readonly packets: { readonly expected: number, readonly max: number }
  /** Time spraying at `rate` packets per second per side: expected and at most (both sides send at once), ms. */
  readonly timeMs: { readonly expected: number, readonly max: number }
  readonly rate: number
}

/** natkit's default spray caps (traversal/birthday-spray.ts: SPRAY_SOCKETS, SPRAY_PROBES, SPRAY_RATE). */
const SPRAY_DEFAULTS = { sockets: 256, probes: 2048, rate: 1000 }

/**
 * Estimate a birthday spray (pure): probability, expected and worst-case packets and time, for N sockets, M probes,
 * a port range of R ports and a pace of `rate` packets per second on each side.
 */
export function estimateBirthdaySpray (o: { sockets?: number, probes?: number, portRange?: number, rate?: number } = {}): SprayEstimate {
  const sockets = o.sockets ?? SPRAY_DEFAULTS.sockets
  const probes = o.probes ?? SPRAY_DEFAULTS.probes
  const R = o.portRange ?? PORT_SPACE
  const rate = o.rate ?? SPRAY_DEFAULTS.rate
  const probability = birthdaySprayProbability(sockets, probes, R)
  const p = Math.min(sockets, R) / R
  const expectedProbes = p === 0 ? probes : Math.min(probes, probability / p)
  const ms = (n: number): number => Math.round(n / rate * 1000)
  return {
    sockets,
    probes,
    portRange: R,
    probability,
    expectedProbes: Math.round(expectedProbes),
    packets: { expected: Math.round(sockets + expectedProbes), max: sockets + probes },
    timeMs: { expected: ms(expectedProbes), max: ms(Math.max(sockets, probes)) },
    rate
  }
}

/**
 * Probability that a birthday spray connects: the symmetric side opens `sockets` new mappings (random ports), the
 * cone side probes `probes` random ports of its public address; a hit needs one probed port to be one of the mapped
 * ones: 1 − (1 − sockets/space)^probes.
 */
export function birthdaySprayProbability (sockets: number, probes: number, space = PORT_SPACE): number {
  return 1 - Math.pow(1 - Math.min(sockets, space) / space, probes)
}

/** Add the hard-NAT techniques that could also work (natkit does not run them by itself yet), with their cost. */
function withTechniques (p: PairPrediction, a: PeerProfile, b: PeerProfile): PairPrediction {
  const alternatives = [...p.alternatives]
  const costs: Partial<Record<Strategy, string>> = { ...p.costs }
  const sides = [a, b]
  if (p.strategy !== 'direct' && sides.some(s => s.portMapped === true)) {
    alternatives.unshift('port-mapping')
    costs['port-mapping'] = 'one request to the gateway (PCP, NAT-PMP or UPnP IGD) and a renewal per half lease: the mapped side becomes reachable like a full cone'
  }
  const symmetric = sides.filter(s => s.type === 'symmetric')
  const other = a.type === 'symmetric' ? b : a
  let spray: SprayEstimate | undefined
  // Random ports (or not measured: sequential ones would be named) against an endpoint-independent mapping whose
  // filter keys on ports: the pair the spray is for. Against a (restricted) cone, punching works already.
  const pattern = symmetric[0]?.portAllocation?.pattern
  if (symmetric.length === 1 && other.type === 'port-restricted-cone' && (pattern === 'random' || pattern === 'unknown' || pattern === undefined)) {
    spray = estimateBirthdaySpray()
    alternatives.push('birthday-spray')
    const pct = (x: number): string => `${(Math.round(x * 10_000) / 100).toString()}%`
    const m1024 = estimateBirthdaySpray({ probes: 1024 })
    costs['birthday-spray'] = `${pattern === 'random' ? '' : 'if the symmetric side\'s ports are random: '}${spray.sockets} sockets on the symmetric side × up to ${spray.probes} probes of random ports from the cone side (R = ${spray.portRange}): P = 1 − (1 − N/R)^M = ${pct(spray.probability)} (${pct(m1024.probability)} with 1024 probes); ` +
      `expected ${spray.expectedProbes} probes (${spray.packets.expected} packets with the sockets' checks, ~${spray.timeMs.expected} ms at ${spray.rate}/s), at most ${spray.packets.max} packets and ${spray.sockets} ports on the symmetric NAT, ${spray.timeMs.max} ms`
  }
  if (p.alternatives.includes('port-prediction')) {
    costs['port-prediction'] = symmetric.length === 2
      ? 'both sides measure their step (4 STUN requests each) and offer their next 12 ports; each sends its first checks to the other\'s predicted ports in order: at most 12 checks per side, works when nothing else takes a port on either NAT meanwhile'
      : 'a short paced burst to the next few predicted ports (12 by default: at most 12 checks, a handful when nothing else allocates ports meanwhile)'
  }
  let reason = p.reason
  if (sides.some(tcpOut) && sides.every(tcpPunchable)) {
    // First: of everything offered it is the one that goes direct.
    alternatives.unshift('tcp-simultaneous-open')
    costs['tcp-simultaneous-open'] = TCP_PUNCH_COST
    reason += ' TCP simultaneous open (opt-in: natcheck connect --tcp-punch) connects the pair directly over TCP instead.'
  }
  const unique = [...new Set(alternatives)]
  const direct = p.strategy.startsWith('relay') ? directTechnique(unique, spray) : undefined
  return { ...p, reason, alternatives: unique, ...(Object.keys(costs).length > 0 ? { costs } : {}), ...(direct !== undefined ? { direct } : {}) }
}

/**
 * Of the alternatives natkit runs that open a relayed pair, the one to use: TCP simultaneous open where it applies
 * (UDP is blocked, so nothing else goes direct), then the deterministic ones, then the spray.
 */
function directTechnique (alternatives: Strategy[], spray: SprayEstimate | undefined): DirectTechnique | undefined {
  if (alternatives.includes('tcp-simultaneous-open')) return { strategy: 'tcp-simultaneous-open', enable: 'tcpSimultaneousOpen / natcheck connect --tcp-punch (at both ends)' }
  if (alternatives.includes('port-mapping')) return { strategy: 'port-mapping', enable: 'portMapping / natcheck connect --port-mapping' }
  if (alternatives.includes('port-prediction')) return { strategy: 'port-prediction', enable: 'portPrediction / natcheck connect --port-prediction (on each sequential side)' }
  if (alternatives.includes('birthday-spray') && spray !== undefined) return { strategy: 'birthday-spray', enable: 'birthdaySpray / natcheck connect --birthday-spray (at both ends)', spray }
  return undefined
}

const CONES: NatType[] = ['full-cone', 'restricted-cone']

/** What TCP simultaneous open costs (tcp-punch-link.ts defaults), and what it needs. */
export const TCP_PUNCH_COST = 'one STUN Binding over TCP per side, then one connect() per side at a signalled moment (RFC 9293 §3.5; at most 3 attempts of 2.5 s, usually the first round trip), and an ICE check on the stream: a direct TCP path, datagrams framed per RFC 4571 (TCP\'s head-of-line blocking). Needs outbound TCP to any port (not only 80/443) and a NAT that keeps the TCP source port'

/** A UDP-blocked side whose TCP gets out (STUN over TCP answered). */
function tcpOut (s: PeerProfile): boolean {
  if (s.type !== 'udp-blocked' || s.tcp !== true) return false
  // A firewall that lets out only the web ports cannot be punched (the peer's port is neither): a TCP path to another
  // port must have been seen, when the report probed one.
  const probes = s.tcpPorts ?? []
  const beyondWeb = probes.filter(p => p.port !== 80 && p.port !== 443)
  return beyondWeb.length === 0 || beyondWeb.some(p => p.outcome === 'open' || p.outcome === 'refused')
}

/**
 * A side a TCP simultaneous open can reach: TCP out, or a NAT with endpoint-independent mapping (a cone: it keeps one
 * port for one internal endpoint, the TCP source port in practice; its filter lets the peer's SYN in once its own SYN
 * went out), or no NAT. Symmetric NATs give the punch connection a port the peer never learnt.
 */
function tcpPunchable (s: PeerProfile): boolean {
  if (tcpOut(s)) return true
  return (s.type === 'open' || s.type === 'port-restricted-cone' || CONES.includes(s.type)) && s.tcp !== false
}

/**
 * Predict how two peers connect, from their discovery reports. The rules follow RFC 4787 behaviour: a peer without
 * NAT or filtering (open) is reached directly; two endpoint-independent mappings can always punch; a symmetric NAT can
 * punch to a peer whose filter admits any port of the sender's IP (open, full-cone, restricted-cone); against
 * port-restricted or symmetric peers it needs a relay, unless its ports are sequential (port prediction is then an
 * alternative); UDP blocked on either side means a relay over TCP or TLS. The hard-NAT techniques that could also
 * work are added as alternatives with their cost: port mapping (a side's gateway granted one), birthday spray
 * (symmetric with random ports × port-restricted cone), TCP simultaneous open (a UDP-blocked side whose TCP gets out, against
 * another such side, a cone or an open host; first among the alternatives, since it is the one that goes direct).
 */
export function predictPair (a: PeerProfile, b: PeerProfile): PairPrediction {
  return withTechniques(predictStandard(a, b), a, b)
}

function predictStandard (a: PeerProfile, b: PeerProfile): PairPrediction {
  const sides = [a, b]
  if (sides.some(s => s.type === 'udp-blocked')) {
    const blocked = sides.filter(s => s.type === 'udp-blocked')
    const tls = blocked.every(s => s.tls === true)
    const tcp = blocked.every(s => s.tcp === true)
    return {
      strategy: tls ? 'relay-tls' : tcp ? 'relay-tcp' : 'relay-tls',
      alternatives: tls && tcp ? ['relay-tcp'] : [],
      reason: 'UDP is blocked on one side: only a TURN relay reached over TCP or TLS can carry the traffic.'
    }
  }
  if (sides.some(s => s.type === 'unknown')) {
    return { strategy: 'punch', alternatives: ['relay-udp'], reason: 'One side\'s NAT is unknown: try punching, with a relay as the fallback.' }
  }
  if (sides.some(s => s.type === 'open')) {
    return { strategy: 'direct', alternatives: [], reason: 'One side has no NAT and no inbound filtering: the other connects to it directly.' }
  }
  const symmetric = sides.filter(s => s.type === 'symmetric')
  if (symmetric.length === 0) {
    return { strategy: 'punch', alternatives: ['relay-udp'], reason: 'Both mappings are endpoint-independent: simultaneous hole punching opens both filters.' }
  }
  const other = a.type === 'symmetric' ? b : a
  if (symmetric.length === 1 && CONES.includes(other.type)) {
    return { strategy: 'punch', alternatives: ['relay-udp'], reason: `The ${other.type} side's filter admits the symmetric side's new port, so punching works.` }
  }
  const sequential = symmetric.every(s => s.portAllocation?.pattern === 'sequential' || s.portAllocation?.pattern === 'preserving')
  if (symmetric.length === 1 && sequential) {
    return { strategy: 'relay-udp', alternatives: ['port-prediction'], reason: `A symmetric NAT with sequential ports against a ${other.type} NAT: standard punching cannot open the filter; port prediction may, a relay will.` }
  }
  if (symmetric.length === 2 && sequential) {
    return { strategy: 'relay-udp', alternatives: ['port-prediction'], reason: 'Both sides are symmetric with sequential ports: standard punching cannot open the pair; port prediction at both ends can (each side\'s first new flows go to the other\'s predicted ports, in order), a relay will.' }
  }
  return { strategy: 'relay-udp', alternatives: [], reason: symmetric.length === 2 ? 'Both sides are symmetric (not both with sequential ports): neither can learn the other\'s port for a new destination, so a relay is needed.' : `A symmetric NAT with unpredictable ports against a ${other.type} NAT: a relay is needed.` }
}
