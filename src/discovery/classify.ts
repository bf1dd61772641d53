import type { FilteringBehaviour, MappingBehaviour, NatType, PortAllocation, Verdict } from './types.js'

/**
 * The classic RFC 3489 label from measured behaviours. UDP unanswered while TCP or TLS got out: `udp-blocked`. No NAT: `open` when unsolicited traffic gets in (endpoint-
 * independent filtering), `symmetric-firewall` when it does not. Endpoint-independent mapping: a cone, named by the
 * filtering. Address(-and-port)-dependent mapping: `symmetric`. Anything not measured: `unknown`. `tcpOpenPorts`: the
 * ports a plain TCP connect to the server reached (see tcp-reach.ts).
 */
export function classicType (m: { udp: boolean, udpRefused?: boolean | null, tcp?: boolean | null, tls?: boolean | null, tcpOpenPorts?: readonly number[] | null, behindNat: boolean | null, mapping: MappingBehaviour, filtering: FilteringBehaviour, variesByDestIp: boolean | null }): NatType {
  // UDP is blocked only if something else got through (STUN over TCP/TLS, or a TCP connect that the server answered,
  // even with a refusal); if nothing answered at all, nothing is known (offline).
  // UDP that came back as "port unreachable" is not blocked: no STUN server listens there.
  if (!m.udp && m.udpRefused === true) return 'unknown'
  if (!m.udp) return m.tcp === true || m.tls === true || (m.tcpOpenPorts?.length ?? 0) > 0 ? 'udp-blocked' : 'unknown'
  if (m.behindNat === false) {
    if (m.filtering === 'endpoint-independent') return 'open'
    if (m.filtering === 'unknown') return 'unknown'
    return 'symmetric-firewall'
  }
  if (m.mapping === 'address-dependent' || m.mapping === 'address-and-port-dependent' || m.variesByDestIp === true) return 'symmetric'
  if (m.mapping === 'endpoint-independent') {
    switch (m.filtering) {
      case 'endpoint-independent': return 'full-cone'
      case 'address-dependent': return 'restricted-cone'
      case 'address-and-port-dependent': return 'port-restricted-cone'
      default: return 'unknown'
    }
  }
  return 'unknown'
}

/** Which peer NAT types can reach a host of `type` directly (by standard simultaneous-open punching). */
export function reachableFrom (type: NatType): NatType[] {
  const all: NatType[] = ['open', 'full-cone', 'restricted-cone', 'port-restricted-cone', 'symmetric', 'symmetric-firewall']
  switch (type) {
    case 'open': case 'full-cone': case 'restricted-cone': return all
    case 'port-restricted-cone': case 'symmetric-firewall': return ['open', 'full-cone', 'restricted-cone', 'port-restricted-cone', 'symmetric-firewall']
    case 'symmetric': return ['open', 'full-cone', 'restricted-cone']
    default: return []
  }
}

/** The plain-language verdict and advice for a report. */
export function verdictFor (r: { type: NatType, udp?: boolean, udpRefused?: boolean | null, hairpinning: boolean | null, portAllocation: PortAllocation, tcp: boolean | null, tls: boolean | null, tcpOpenPorts?: readonly number[] | null, alg: boolean | null, mappingLifetimeS: number | null, lifetimeIsLowerBound: boolean }): Verdict {
  const advice: string[] = []
  let summary: string
  switch (r.type) {
    case 'open':
      summary = 'No NAT and no inbound filtering: any peer can reach you directly.'
      break
    case 'full-cone':
      summary = 'A full-cone NAT: once you have sent a packet, anyone can reach you at your public address. Peers connect to you directly.'
      break
    case 'restricted-cone':
      summary = 'A restricted-cone NAT: peers reach you directly after you send them one packet (hole punching works with every kind of peer).'
      break
    case 'port-restricted-cone':
      summary = 'A port-restricted-cone NAT: hole punching works with every peer except those behind symmetric NATs, which need a relay.'
      advice.push('Peers behind symmetric NATs will need a TURN relay to reach you; enabling UPnP-IGD, NAT-PMP or PCP on your router would let them in directly.')
      break
    case 'symmetric':
      summary = 'A symmetric NAT: every destination sees a different public port, so hole punching only works with open, full-cone or restricted-cone peers; others need a relay.'
      if (r.portAllocation.pattern === 'sequential') {
        advice.push(`Your NAT allocates ports sequentially (step ${r.portAllocation.delta ?? '?'}): port prediction can reach port-restricted peers.`)
      } else {
        advice.push('Use a TURN relay for peers behind port-restricted or symmetric NATs.')
      }
      advice.push('Enabling UPnP-IGD, NAT-PMP or PCP on your router, or a public IPv6 address, would allow direct connections.')
      break
    case 'symmetric-firewall':
      summary = 'No NAT, but a firewall drops unsolicited inbound UDP: peers reach you after you send to them first (hole punching works).'
      break
    case 'udp-blocked': {
      const open = r.tcpOpenPorts ?? []
      summary = open.length > 0
        ? `UDP blocked, TCP ${open.join(' and ')} open: no STUN server answered over UDP, but the server's host answered TCP connections, so UDP is blocked on the way (or no STUN server listens on the UDP port given); a relay over TCP is the way out.`
        : 'UDP is blocked: no STUN server answered over UDP, so peer-to-peer UDP is impossible from here.'
      if (open.includes(443)) advice.push('Use TURN over TLS on port 443 (turns:SERVER:443): TCP 443 gets out, and TLS there looks like HTTPS to firewalls.')
      if (r.tls === true) advice.push('Use TURN over TLS (port 443 looks like HTTPS to firewalls): it got out.')
      else if (r.tcp === true) advice.push('Use TURN over TCP: STUN over TCP got out.')
      else if (open.length === 0) advice.push('Neither TCP nor TLS to the STUN servers got out either: check the network, or give a server with --server.')
      break
    }
    default:
      if (r.udp === false && r.udpRefused === true) {
        summary = 'No STUN server listens there: UDP reached the server\'s host (it answered "port unreachable"), so UDP is not blocked, but nothing could be measured.'
        advice.push('Check the server address and port, or give a running STUN server with --server HOST[:PORT].')
        break
      }
      if (r.udp === false) {
        summary = r.tcpOpenPorts !== undefined && r.tcpOpenPorts !== null
          ? 'Offline: no STUN server answered over UDP, TCP or TLS, and plain TCP connections to the servers on ports 443 and 80 got no answer either.'
          : 'No STUN server answered, over UDP, TCP or TLS: nothing could be measured.'
        advice.push('Check that this host is online, or give a STUN server it can reach with --server HOST[:PORT].')
        break
      }
      summary = 'Could not determine the NAT behaviour: the servers that answered cannot run the RFC 5780 tests. Add an RFC 5780-capable server with --server.'
  }
  if (r.hairpinning === false) advice.push('Your NAT does not hairpin: two devices behind it cannot reach each other through their public addresses (use local addresses).')
  if (r.alg === true) advice.push('A NAT ALG rewrites addresses inside packets (MAPPED-ADDRESS differs from XOR-MAPPED-ADDRESS); SIP ALGs break VoIP — disable it on the router.')
  if (r.mappingLifetimeS !== null && !r.lifetimeIsLowerBound && r.mappingLifetimeS < 120) {
    advice.push(`UDP mappings expire after about ${r.mappingLifetimeS} s of silence (RFC 4787 asks for at least 120 s): send keepalives more often than that.`)
  }
  return { summary, reachableFrom: reachableFrom(r.type), advice }
}
