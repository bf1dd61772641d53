/**
 * A real `miniupnpd` (the Debian package; UPnP IGD v2, NAT-PMP and PCP on UDP 5351) on a lab site router, for
 * port-mapping tests. Pure text generation here; services.ts starts the daemon.
 *
 * Debian's miniupnpd 2.3 is built with the nftables backend: it adds its DNAT rules to chain
 * `prerouting_miniupnpd`, its SNAT (PCP PEER) rules to `postrouting_miniupnpd` and its accept rules to
 * `miniupnpd`, all in table `ip filter` by default (`upnp_table_name`, `upnp_nat_table_name`), and does not create
 * them: {@link miniupnpdTables} does. The lab's own forward chain already accepts DNATed flows (`ct status dnat`).
 *
 * Limitation: miniupnpd refuses to forward ports when its external address is "reserved" (its list includes the
 * RFC 5737 documentation ranges the lab uses as the internet, and `ext_ip` may not name one either): it logs
 * "Port forwarding is impossible", answers NAT-PMP and PCP with NETWORK_FAILURE and UPnP AddPortMapping with an
 * error. The lab therefore shows a gateway that speaks all three protocols but grants no mapping.
 */
import type { LabSiteInfo } from './types.js'

/** The nftables table miniupnpd writes to in the router's namespace. */
export const MINIUPNPD_TABLE = 'filter'

/** Table and chains miniupnpd's nftables backend expects (appended to the router's ruleset). */
export function miniupnpdTables (): string {
  return [
    `table ip ${MINIUPNPD_TABLE} {`,
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
    `allow 1024-65535 ${site.lanCidr} 1024-65535`,
    'deny 0-65535 0.0.0.0/0 0-65535'
  ].join('\n') + '\n'
}
