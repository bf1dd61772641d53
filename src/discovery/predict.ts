import type { NatType, PortAllocation } from './types.js'

/** How two peers should connect. */
export type Strategy = 'direct' | 'punch' | 'port-prediction' | 'relay-udp' | 'relay-tcp' | 'relay-tls' | 'port-mapping' | 'birthday-spray' | 'tcp-simultaneous-open'

/** What the pair predictor needs from each side's saved report. */
export interface PeerProfile {
  readonly type: NatType
  readonly portAllocation?: PortAllocation
  readonly tcp?: boolean | null
  readonly tls?: boolean | null
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
}

/** Ports a NAT allocates from, for the birthday-spray estimate (1024..65535). */
const PORT_SPACE = 64512

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
  if (symmetric.length === 1 && other.type === 'port-restricted-cone' && symmetric[0].portAllocation?.pattern === 'random') {
    alternatives.push('birthday-spray')
    costs['birthday-spray'] = `256 sockets on the symmetric side × 1024 probes from the cone side: ${Math.round(birthdaySprayProbability(256, 1024) * 100)}% (256 × 256: ${Math.round(birthdaySprayProbability(256, 256) * 100)}%), paced over seconds`
  }
  if (p.alternatives.includes('port-prediction')) costs['port-prediction'] = 'a short paced burst to the next few predicted ports (a handful of packets when nothing else allocates ports meanwhile)'
  let reason = p.reason
  if (sides.some(tcpOut) && sides.every(tcpPunchable)) {
    // First: of everything offered it is the one that goes direct.
    alternatives.unshift('tcp-simultaneous-open')
    costs['tcp-simultaneous-open'] = TCP_PUNCH_COST
    reason += ' TCP simultaneous open (opt-in: natcheck connect --tcp-punch) connects the pair directly over TCP instead.'
  }
  return { ...p, reason, alternatives: [...new Set(alternatives)], ...(Object.keys(costs).length > 0 ? { costs } : {}) }
}

const CONES: NatType[] = ['full-cone', 'restricted-cone']

/** What TCP simultaneous open costs (tcp-punch-link.ts defaults), and what it needs. */
export const TCP_PUNCH_COST = 'one STUN Binding over TCP per side, then one connect() per side at a signalled moment (RFC 9293 §3.5; at most 3 attempts of 2.5 s, usually the first round trip), and an ICE check on the stream: a direct TCP path, datagrams framed per RFC 4571 (TCP\'s head-of-line blocking). Needs outbound TCP to any port (not only 80/443) and a NAT that keeps the TCP source port'

/** A UDP-blocked side whose TCP gets out (STUN over TCP answered). */
function tcpOut (s: PeerProfile): boolean { return s.type === 'udp-blocked' && s.tcp === true }

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
  return { strategy: 'relay-udp', alternatives: [], reason: symmetric.length === 2 ? 'Both sides are symmetric: neither can learn the other\'s port for a new destination, so a relay is needed.' : `A symmetric NAT with unpredictable ports against a ${other.type} NAT: a relay is needed.` }
}
