/**
 * A real `miniupnpd` (the Debian package; UPnP IGD v2, NAT-PMP and PCP on UDP 5351) on a lab site router, for
 * port-mapping tests. Pure text generation here; services.ts starts the daemon.
 *
 * Debian's miniupnpd 2.3 is built with the nftables backend: it adds its DNAT rules to chain
 * `prerouting_miniupnpd`, its SNAT (PCP PEER) rules to `postrouting_miniupnpd` and its filter rules to `miniupnpd`, all
 * in table `inet filter` (family inet: an `ip filter` table makes every rule it adds fail), and does not create them:
 * {@link miniupnpdTables} does. The lab's own forward chain already accepts DNATed flows (`ct status dnat`).
 *
 * The lab's internet is the RFC 5737 documentation ranges, which miniupnpd counts as "reserved": with its WAN address
 * in one, it refuses every mapping ("Port forwarding is impossible"), and `ext_ip` may not name one either. What it
 * does accept is a STUN self-check (`ext_perform_stun`): it asks the lab's RFC 5780 server for its mapped address from
 * four sockets, with CHANGE-REQUEST, and when all four answers arrive with its own address and ports unchanged (the
 * router is not behind a filtering NAT) it uses that address and forwards ports. So with the lab's servers up, the
 * router's input chain lets the server's answers in ({@link miniupnpdStunRules}) and miniupnpd grants real mappings;
 * without them it still speaks all three protocols but grants none.
 */
import { NAT_TABLE } from './nat-rules.js'
import type { LabSiteInfo } from './types.js'

/** The nftables table miniupnpd writes to in the router's namespace. */
export const MINIUPNPD_TABLE = 'filter'

/** Table and chains miniupnpd's nftables backend expects (appended to the router's ruleset). */
export function miniupnpdTables (): string {
  return [
    `table inet ${MINIUPNPD_TABLE} {`,
    '  chain miniupnpd { }',
    '  chain prerouting_miniupnpd { type nat hook prerouting priority dstnat - 5; policy accept; }',
    '  chain postrouting_miniupnpd { type nat hook postrouting priority srcnat - 5; policy accept; }',
    '}'
  ].join('\n') + '\n'
}

/** Options of {@link miniupnpdConfig}. */
export interface MiniupnpdConfigOptions {
  /** Lease file (miniupnpd re-reads it after a restart). */
  leaseFile: string
  /** UUID of the device (any fixed value per lab site). */
  uuid: string
  /** Shortest and longest lifetime granted to PCP mappings, s (short keeps a crashed client's mapping brief). */
  minLifetimeS?: number
  maxLifetimeS?: number
  /** The lab's RFC 5780 STUN server, for the self-check that lets miniupnpd forward (see the module comment). */
  stun?: { host: string, port: number }
}

/** miniupnpd.conf for a site router: WAN `wan`, LAN `lan`, secure mode, NAT-PMP/PCP and UPnP on, LAN-only rules. */
export function miniupnpdConfig (site: LabSiteInfo, o: MiniupnpdConfigOptions): string {
  return [
    'ext_ifname=wan',
    'listening_ip=lan',
    'http_port=0',
    'enable_upnp=yes',
    // NAT-PMP and PCP share UDP 5351; in this build the one switch enables both.
    'enable_natpmp=yes',
    'secure_mode=yes',
    'system_uptime=no',
    `lease_file=${o.leaseFile}`,
    `uuid=${o.uuid}`,
    `min_lifetime=${o.minLifetimeS ?? 1}`,
    `max_lifetime=${o.maxLifetimeS ?? 3600}`,
    ...(o.stun === undefined ? [] : ['ext_perform_stun=yes', `ext_stun_host=${o.stun.host}`, `ext_stun_port=${o.stun.port}`]),
    `allow 1024-65535 ${site.lanCidr} 1024-65535`,
    'deny 0-65535 0.0.0.0/0 0-65535'
  ].join('\n') + '\n'
}

/**
 * nftables commands for a site router whose miniupnpd runs the STUN self-check: let the STUN server's answers (from
 * either of its addresses and ports; RFC 5780 CHANGE-REQUEST) reach the router, ahead of the lab's input filter, which
 * drops unsolicited inbound packets and would take the changed-address answers for such.
 */
export function miniupnpdStunRules (server: { primaryIp: string, secondaryIp: string }, ports: readonly number[]): string {
  return `insert rule ip ${NAT_TABLE} input iifname "wan" ip saddr { ${server.primaryIp}, ${server.secondaryIp} } udp sport { ${ports.join(', ')} } accept\n`
}
