import type { NatType, PortAllocation } from './types.js'

/** How two peers should connect. */
export type Strategy = 'direct' | 'punch' | 'port-prediction' | 'relay-udp' | 'relay-tcp' | 'relay-tls'

/** What the pair predictor needs from each side's saved report. */
export interface PeerProfile {
  readonly type: NatType
  readonly portAllocation?: PortAllocation
  readonly tcp?: boolean | null
  readonly tls?: boolean | null
}

/** The predicted strategy, and why. */
export interface PairPrediction {
  readonly strategy: Strategy
  /** Other strategies that could also work, most promising first. */
  readonly alternatives: Strategy[]
  readonly reason: string
}

const CONES: NatType[] = ['full-cone', 'restricted-cone']

/**
 * Predict how two peers connect, from their discovery reports. The rules follow RFC 4787 behaviour: a peer without
 * NAT or filtering (open) is reached directly; two endpoint-independent mappings can always punch; a symmetric NAT can
 * punch to a peer whose filter admits any port of the sender's IP (open, full-cone, restricted-cone); against
 * port-restricted or symmetric peers it needs a relay, unless its ports are sequential (port prediction is then an
 * alternative); UDP blocked on either side means a relay over TCP or TLS.
 */
export function predictPair (a: PeerProfile, b: PeerProfile): PairPrediction {
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
