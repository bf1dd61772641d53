import type { Endpoint } from '../net/endpoint.js'
import type { FilteringBehaviour } from './types.js'
import type { Probe } from './probe.js'

/**
 * RFC 5780 §4.4, on its own local port (run on the mapping test's socket, its requests to the alternate address
 * would open the very filters being measured). Test I: a Binding request to the primary address establishes the
 * mapping. Test II asks for the response from the alternate IP and port (CHANGE-REQUEST ip+port): an answer means
 * endpoint-independent filtering. Test III asks for the alternate port only: an answer means address-dependent;
 * silence in both, address-and-port-dependent. II and III run in parallel: neither opens a filter for the other's
 * response, since every request goes to the primary address. If test I is not answered, or the server refuses
 * CHANGE-REQUEST (420), filtering is `unknown` — never guessed.
 */
export async function testFiltering (probe: Probe, primary: Endpoint): Promise<FilteringBehaviour> {
  const i = await probe(primary)
  if (i.kind !== 'response') return 'unknown'
  const [ii, iii] = await Promise.all([
    probe(primary, { changeRequest: { ip: true, port: true } }),
    probe(primary, { changeRequest: { ip: false, port: true } })
  ])
  if (ii.kind === 'error' || iii.kind === 'error') return 'unknown'
  if (ii.kind === 'response') return 'endpoint-independent'
  if (iii.kind === 'response') return 'address-dependent'
  return 'address-and-port-dependent'
}
