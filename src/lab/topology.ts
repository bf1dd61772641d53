/**
 * The lab's address plan and the `ip` commands that build it. Pure functions: no root needed to test.
 *
 * ```
 *   server (203.0.113.10, .11) ──srv── inet ──wan-a── router-a (198.51.100.1) ──lan── a (10.0.1.10)
 *                                         └───wan-b── router-b (192.0.2.1)    ──lan── b (10.0.2.10)
 * ```
 * Only documentation ranges (RFC 5737) play the internet; private ranges stay inside the lab. A site of
 * type `none` gets a public LAN instead (198.51.100.128/25, 192.0.2.128/25), routed by `inet`.
 */
import { InvalidArgumentError } from '../errors.js'
import { LAB_NAT_TYPES, LAB_NODES } from './types.js'
import type { LabInfo, LabNatType, LabNode, LabOptions, LabSite, LabSiteInfo } from './types.js'

/** Default UDP mapping lifetime: RFC 4787 REQ-5 asks for at least 2 minutes. */
export const DEFAULT_UDP_TIMEOUT_S = 120

/** Namespace-name prefix rule: safe as a file name and short enough to read in `ip netns list`. */
const PREFIX_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,19}$/

/** Interface names inside the namespaces (each namespace has its own name space, so they repeat). */
export const IFACES = {
  inetToServer: 'srv',
  inetToA: 'wan-a',
  inetToB: 'wan-b',
  host: 'eth0',
  routerWan: 'wan',
  routerLan: 'lan'
} as const

interface SiteAddressing {
  wanIp: string
  inetIp: string
  wanCidr: string
  natLan: { cidr: string; gateway: string; host: string; len: number }
  publicLan: { cidr: string; gateway: string; host: string; len: number }
}

/** Server and inet side of the server link: 203.0.113.0/25 (TEST-NET-3). */
const SERVER = { primaryIp: '203.0.113.10', secondaryIp: '203.0.113.11', inetIp: '203.0.113.1', len: 25 } as const

/** Site A on 198.51.100.0/24 (TEST-NET-2), site B on 192.0.2.0/24 (TEST-NET-1): WAN /25 + public LAN /25. */
const SITES: Record<LabSite, SiteAddressing> = {
  a: {
    wanIp: '198.51.100.1',
    inetIp: '198.51.100.126',
    wanCidr: '198.51.100.0/25',
    natLan: { cidr: '10.0.1.0/24', gateway: '10.0.1.1', host: '10.0.1.10', len: 24 },
    publicLan: { cidr: '198.51.100.128/25', gateway: '198.51.100.129', host: '198.51.100.130', len: 25 }
  },
  b: {
    wanIp: '192.0.2.1',
    inetIp: '192.0.2.126',
    wanCidr: '192.0.2.0/25',
    natLan: { cidr: '10.0.2.0/24', gateway: '10.0.2.1', host: '10.0.2.10', len: 24 },
    publicLan: { cidr: '192.0.2.128/25', gateway: '192.0.2.129', host: '192.0.2.130', len: 25 }
  }
}

/** {@link LabOptions} with every default applied. */
export interface ResolvedLabOptions {
  natA: LabNatType
  natB: LabNatType
  hairpin: boolean
  udpTimeoutS: number
  prefix: string
  servers: boolean
  upnp: LabSite[]
}

/**
 * Validate options and apply defaults. `randomId` supplies the default prefix's lab id.
 * @throws InvalidArgumentError naming the bad option and the accepted values.
 */
export function resolveLabOptions (o: LabOptions, randomId: () => string): ResolvedLabOptions {
  if (o === null || typeof o !== 'object') throw new InvalidArgumentError('lab options must be an object like { natA: \'full-cone\', natB: \'symmetric\' }')
  for (const key of ['natA', 'natB'] as const) {
    if (!(LAB_NAT_TYPES as readonly string[]).includes(o[key])) {
      throw new InvalidArgumentError(`${key} must be one of ${LAB_NAT_TYPES.join(', ')}; got ${String(o[key])}`)
    }
  }
  const udpTimeoutS = o.udpTimeoutS ?? DEFAULT_UDP_TIMEOUT_S
  if (!Number.isInteger(udpTimeoutS) || udpTimeoutS < 1 || udpTimeoutS > 86400) {
    throw new InvalidArgumentError(`udpTimeoutS must be an integer number of seconds in 1..86400; got ${String(o.udpTimeoutS)}`)
  }
  if (o.hairpin !== undefined && typeof o.hairpin !== 'boolean') throw new InvalidArgumentError('hairpin must be a boolean')
  if (o.servers !== undefined && typeof o.servers !== 'boolean') throw new InvalidArgumentError('servers must be a boolean')
  const upnp = o.upnp ?? []
  if (!Array.isArray(upnp) || !upnp.every((x) => x === 'a' || x === 'b')) throw new InvalidArgumentError('upnp must be a list of sites, e.g. [\'a\']')
  for (const site of upnp) {
    if ((site === 'a' ? o.natA : o.natB) === 'none') throw new InvalidArgumentError(`upnp: site ${site} has no NAT (type none), so there is nothing to map; give it a NAT type`)
  }
  const prefix = o.prefix ?? `nk-${randomId()}-`
  if (!PREFIX_RE.test(prefix)) {
    throw new InvalidArgumentError(`prefix must be 1-20 characters of letters, digits, '-', '_' or '.', starting with a letter or digit; got ${JSON.stringify(prefix)}`)
  }
  return { natA: o.natA, natB: o.natB, hairpin: o.hairpin ?? false, udpTimeoutS, prefix, servers: o.servers ?? false, upnp: [...new Set(upnp)].sort() }
}

/** Check a namespace prefix (used by `down` and `exec`, which take a prefix alone). */
export function validatePrefix (prefix: string): string {
  if (typeof prefix !== 'string' || !PREFIX_RE.test(prefix)) {
    throw new InvalidArgumentError(`prefix must be 1-20 characters of letters, digits, '-', '_' or '.', starting with a letter or digit; got ${JSON.stringify(prefix)}`)
  }
  return prefix
}

/** Namespace name of every node for a prefix. */
export function namespaceNames (prefix: string): Record<LabNode, string> {
  const out = {} as Record<LabNode, string>
  for (const node of LAB_NODES) out[node] = `${prefix}${node}`
  return out
}

function site (site: LabSite, nat: LabNatType, hairpin: boolean, upnp: boolean, ns: Record<LabNode, string>): LabSiteInfo {
  const s = SITES[site]
  const lan = nat === 'none' ? s.publicLan : s.natLan
  return {
    site,
    nat,
    hairpin: nat === 'none' ? false : hairpin,
    upnp,
    routerNs: ns[site === 'a' ? 'router-a' : 'router-b'],
    hostNs: ns[site],
    wanIp: s.wanIp,
    hostIp: lan.host,
    lanCidr: lan.cidr,
    lanGateway: lan.gateway,
    publicIp: nat === 'none' ? lan.host : s.wanIp
  }
}

/** The address plan of a lab. */
export function planLab (o: ResolvedLabOptions): LabInfo {
  const namespaces = namespaceNames(o.prefix)
  return {
    prefix: o.prefix,
    udpTimeoutS: o.udpTimeoutS,
    namespaces,
    server: { ns: namespaces.server, primaryIp: SERVER.primaryIp, secondaryIp: SERVER.secondaryIp },
    a: site('a', o.natA, o.hairpin, o.upnp.includes('a'), namespaces),
    b: site('b', o.natB, o.hairpin, o.upnp.includes('b'), namespaces)
  }
}

/** `ip -batch` lines run in the initial namespace: create the namespaces and the veth links between them. */
export function rootBatch (info: LabInfo): string {
  const ns = info.namespaces
  const lines = LAB_NODES.map((node) => `netns add ${ns[node]}`)
  lines.push(
    `link add ${IFACES.inetToServer} netns ${ns.inet} type veth peer name ${IFACES.host} netns ${ns.server}`,
    `link add ${IFACES.inetToA} netns ${ns.inet} type veth peer name ${IFACES.routerWan} netns ${ns['router-a']}`,
    `link add ${IFACES.inetToB} netns ${ns.inet} type veth peer name ${IFACES.routerWan} netns ${ns['router-b']}`,
    `link add ${IFACES.routerLan} netns ${ns['router-a']} type veth peer name ${IFACES.host} netns ${ns.a}`,
    `link add ${IFACES.routerLan} netns ${ns['router-b']} type veth peer name ${IFACES.host} netns ${ns.b}`
  )
  return lines.join('\n') + '\n'
}

/** `ip -batch` lines run inside one node's namespace: addresses, links up, routes. */
export function nodeBatch (info: LabInfo, node: LabNode): string {
  const lines = ['link set lo up']
  const iface = (name: string, ...cidrs: string[]): void => {
    for (const c of cidrs) lines.push(`addr add ${c} dev ${name}`)
    lines.push(`link set ${name} up`)
  }
  switch (node) {
    case 'inet':
      iface(IFACES.inetToServer, `${SERVER.inetIp}/${SERVER.len}`)
      iface(IFACES.inetToA, `${SITES.a.inetIp}/25`)
      iface(IFACES.inetToB, `${SITES.b.inetIp}/25`)
      if (info.a.nat === 'none') lines.push(`route add ${SITES.a.publicLan.cidr} via ${SITES.a.wanIp}`)
      if (info.b.nat === 'none') lines.push(`route add ${SITES.b.publicLan.cidr} via ${SITES.b.wanIp}`)
      break
    case 'server':
      iface(IFACES.host, `${SERVER.primaryIp}/${SERVER.len}`, `${SERVER.secondaryIp}/${SERVER.len}`)
      lines.push(`route add default via ${SERVER.inetIp}`)
      break
    case 'router-a':
    case 'router-b': {
      const s = node === 'router-a' ? info.a : info.b
      const addr = SITES[s.site]
      const lanLen = s.nat === 'none' ? addr.publicLan.len : addr.natLan.len
      iface(IFACES.routerWan, `${addr.wanIp}/25`)
      iface(IFACES.routerLan, `${s.lanGateway}/${lanLen}`)
      lines.push(`route add default via ${addr.inetIp}`)
      break
    }
    case 'a':
    case 'b': {
      const s = info[node]
      const lanLen = s.nat === 'none' ? SITES[node].publicLan.len : SITES[node].natLan.len
      iface(IFACES.host, `${s.hostIp}/${lanLen}`)
      lines.push(`route add default via ${s.lanGateway}`)
      break
    }
  }
  return lines.join('\n') + '\n'
}

/** Interfaces of a node besides `lo`. */
function nodeIfaces (node: LabNode): string[] {
  switch (node) {
    case 'inet': return [IFACES.inetToServer, IFACES.inetToA, IFACES.inetToB]
    case 'router-a': case 'router-b': return [IFACES.routerWan, IFACES.routerLan]
    default: return [IFACES.host]
  }
}

/**
 * `key=value` sysctls for one node: forwarding on routers, reverse-path filtering off everywhere (the
 * lab's routes are asymmetric by design when hairpinning), and conntrack UDP timeouts on NAT routers.
 * The conntrack ones only exist once nf_conntrack is in use, so {@link conntrackSysctls} is separate.
 */
export function nodeSysctls (node: LabNode): string[] {
  const out = ['net.ipv4.conf.all.rp_filter=0', 'net.ipv4.conf.default.rp_filter=0']
  for (const i of nodeIfaces(node)) out.push(`net.ipv4.conf.${i.replaceAll('.', '/')}.rp_filter=0`)
  if (node === 'inet' || node === 'router-a' || node === 'router-b') out.push('net.ipv4.ip_forward=1')
  return out
}

/**
 * Conntrack UDP timeouts of a NAT router (per network namespace since Linux 4.x). Both the plain and the
 * `_stream` (bidirectional traffic) timeouts are set, so a mapping lives `udpTimeoutS` after its last packet.
 */
export function conntrackSysctls (udpTimeoutS: number): string[] {
  return [`net.netfilter.nf_conntrack_udp_timeout=${udpTimeoutS}`, `net.netfilter.nf_conntrack_udp_timeout_stream=${udpTimeoutS}`]
}
