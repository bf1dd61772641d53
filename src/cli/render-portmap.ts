import type { PortMapReport } from '../portmap/probe.js'

const NAMES = { pcp: 'PCP', 'nat-pmp': 'NAT-PMP', upnp: 'UPnP IGD' } as const

/** The human lines for the gateway's port-mapping protocols (appended to natcheck's report). */
export function renderPortMap (r: PortMapReport): string {
  if (r.gateway === null) return 'port mapping: no IPv4 default gateway to ask\n'
  const lines = [`port mapping (gateway ${r.gateway}): ${r.speaks.length === 0 ? 'no PCP, NAT-PMP or UPnP IGD answer' : `speaks ${r.speaks.map((p) => NAMES[p]).join(', ')}`}`]
  for (const p of r.protocols) {
    if (!p.speaks) continue
    const what = p.mapping !== null
      ? `mapped ${p.mapping.transport} ${p.mapping.internalPort} → ${p.mapping.externalIp ?? '?'}:${p.mapping.externalPort} for ${p.mapping.lifetimeS} s, ${p.reachable === null ? 'reachability not verified (no RFC 5780 server)' : p.reachable ? 'reachable from outside (verified through the STUN server)' : 'NOT reachable from outside'}${p.removed === true ? ', removed again' : p.removed === false ? ', REMOVAL FAILED' : ''}`
      : `no mapping (${p.error ?? 'refused'})`
    lines.push(`  ${NAMES[p.protocol]}${p.detail !== null ? ` (${p.detail})` : ''}: external address ${p.externalIp ?? 'not given'}; ${what}`)
  }
  return lines.join('\n') + '\n'
}
