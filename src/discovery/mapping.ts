import { sameEndpoint, type Endpoint } from '../net/endpoint.js'
import type { BindingResult } from '../stun/client.js'
import type { MappingBehaviour } from './types.js'
import type { Probe } from './probe.js'

/** Result of the RFC 5780 §4.3 mapping test. */
export interface MappingResult {
  readonly mapping: MappingBehaviour
  /** XOR-MAPPED-ADDRESS from test I (the primary address). */
  readonly mapped: Endpoint | null
  /** Mapped addresses seen from tests I, II and III (null where that test got no answer or did not run). */
  readonly observed: [Endpoint | null, Endpoint | null, Endpoint | null]
}

/**
 * RFC 5780 §4.3. Test I: a Binding request to the primary address (given as `first`, already done). Test II: to the
 * alternate IP, primary port. If its mapping equals test I's, the mapping is endpoint-independent. Otherwise test
 * III: to the alternate IP and port; the same mapping as test II means address-dependent, a different one
 * address-and-port-dependent. Tests II and III run in parallel (they do not influence each other), so the whole test
 * costs one round trip after test I. A test that gets no answer leaves the result `unknown`.
 */
export async function testMapping (probe: Probe, first: BindingResult, other: Endpoint, primary: Endpoint): Promise<MappingResult> {
  const m1 = first.mapped
  const [ii, iii] = await Promise.all([
    probe({ address: other.address, port: primary.port }),
    probe(other)
  ])
  const m2 = ii.kind === 'response' ? ii.result.mapped : null
  const m3 = iii.kind === 'response' ? iii.result.mapped : null
  let mapping: MappingBehaviour = 'unknown'
  if (m2 !== null) {
    if (sameEndpoint(m1, m2)) mapping = 'endpoint-independent'
    else if (m3 !== null) mapping = sameEndpoint(m2, m3) ? 'address-dependent' : 'address-and-port-dependent'
  }
  return { mapping, mapped: m1, observed: [m1, m2, m3] }
}

/**
 * Mapping from plain (non-5780) servers, Tailscale style: the same local socket asked servers on different IPs.
 * Equal mappings for two destination IPs rule out address-dependent behaviour for those IPs: endpoint-independent.
 * Different mappings mean the mapping varies by destination IP, but cannot tell address- from address-and-port-
 * dependent: `unknown` with `variesByDestIp` true. Null when fewer than two IPs answered.
 */
export function mappingFromServers (answers: Array<{ server: Endpoint, mapped: Endpoint }>): { mapping: MappingBehaviour, variesByDestIp: boolean } | null {
  const byIp = new Map<string, Endpoint>()
  for (const a of answers) if (!byIp.has(a.server.address)) byIp.set(a.server.address, a.mapped)
  if (byIp.size < 2) return null
  const mapped = [...byIp.values()]
  const varies = mapped.some(m => !sameEndpoint(m, mapped[0]))
  return { mapping: varies ? 'unknown' : 'endpoint-independent', variesByDestIp: varies }
}
