/**
 * nftables rulesets that make a Linux router behave as one RFC 4787 NAT type. Pure text generation: unit
 * tests need no root; the lab loads the text with `nft -f -` inside the router's namespace.
 *
 * Techniques (conntrack does the translation; the lab's dynamic maps pin and expose mappings):
 * - Endpoint-independent mapping (cone types): map `eim_out` (internal ip . port → external port) is
 *   filled after source NAT from the conntrack tuples and consulted first by `snat`, so every later flow
 *   of an internal endpoint reuses its external port whatever the destination (RFC 4787 §4.1 EIM). The
 *   first flow uses plain `snat`, which keeps the source port when it is free.
 * - Endpoint-independent filtering (full cone): map `eim_in` (external port → internal ip . port)
 *   DNATs any inbound UDP to a live mapping.
 * - Address-dependent filtering (restricted cone): set `adf_peers` (external port . remote ip) records
 *   every address a mapping has sent to; inbound UDP is DNATed only when its source is in it.
 * - Address-and-port-dependent filtering: only conntrack replies pass (no inbound DNAT).
 * - Address-and-port-dependent mapping, random ports (symmetric): `snat … fully-random`.
 * - APDM, sequential ports (symmetric-sequential): `snat` to `numgen inc` mapped through a table of
 *   ports, so each new mapping gets the previous port + 1. (A bare `numgen` as port is byte-swapped by
 *   nft 1.0.x; the map yields ports in network order.)
 * - Hairpinning (RFC 4787 §6): LAN packets to the router's public address and a port in `eim_in` are
 *   DNATed to that mapping's internal endpoint and SNATed to the sender's own external mapping.
 * - UDP blocked (`udp-blocked`, `tcp-only`): the forward chain passes only TCP out (to 80/443, or to any port),
 *   and only conntrack-established packets in: a stateful firewall. Conntrack follows a TCP simultaneous open
 *   (a SYN in the reply direction of a SYN_SENT entry), so two `tcp-only` sites can punch TCP.
 * - Unsolicited inbound packets are dropped in the filter hooks, before their conntrack entry is
 *   confirmed, so they leave no entry that could clash with (and move) a later outbound mapping.
 * - Mapping lifetime: the maps time out after `udpTimeoutS` and are refreshed by outbound packets
 *   (RFC 4787 REQ-6); the conntrack UDP timeouts are set to the same value by the lab.
 */
import { InvalidArgumentError } from '../errors.js'
import { LAB_NAT_TYPES } from './types.js'
import type { LabNatType } from './types.js'

/** Options of {@link natRuleset}. */
export interface NatRulesetOptions {
  nat: LabNatType
  /** Router's public address. */
  wanIp: string
  /** WAN interface name. Default `wan`. */
  wanIf?: string
  /** LAN interface name. Default `lan`. */
  lanIf?: string
  /** Hairpinning on or off. Default `false`. */
  hairpin?: boolean
  /** Mapping lifetime in seconds (map timeouts). Default 120. */
  udpTimeoutS?: number
  /** First external port of `symmetric-sequential`. Default 50000. */
  sequentialBase?: number
  /** Number of ports `symmetric-sequential` cycles through. Default 2048. */
  sequentialCount?: number
}

/** Name of the nftables table the lab owns in each router namespace. */
export const NAT_TABLE = 'natkit'

const IPV4_RE = /^(25[0-5]|2[0-4]\d|1?\d?\d)(\.(25[0-5]|2[0-4]\d|1?\d?\d)){3}$/
const IFNAME_RE = /^[A-Za-z0-9_.-]{1,15}$/

const CONE = new Set<LabNatType>(['full-cone', 'restricted-cone', 'port-restricted-cone'])

/** Whether a NAT type keeps one external port per internal endpoint (RFC 4787 EIM). */
export function isEndpointIndependentMapping (nat: LabNatType): boolean {
  return CONE.has(nat)
}

/**
 * The complete nftables ruleset (starting with `flush ruleset`) for a site router, or `''` for `none`
 * (the router then only routes).
 * @throws InvalidArgumentError for an unknown type, a bad address, interface name or port range.
 */
export function natRuleset (o: NatRulesetOptions): string {
  if (!(LAB_NAT_TYPES as readonly string[]).includes(o.nat)) {
    throw new InvalidArgumentError(`nat must be one of ${LAB_NAT_TYPES.join(', ')}; got ${String(o.nat)}`)
  }
  if (!IPV4_RE.test(o.wanIp)) throw new InvalidArgumentError(`wanIp must be a dotted IPv4 address; got ${JSON.stringify(o.wanIp)}`)
  const wan = o.wanIf ?? 'wan'
  const lan = o.lanIf ?? 'lan'
  for (const name of [wan, lan]) {
    if (!IFNAME_RE.test(name)) throw new InvalidArgumentError(`interface names must be 1-15 characters of letters, digits, '_', '.', '-'; got ${JSON.stringify(name)}`)
  }
  const timeout = o.udpTimeoutS ?? 120
  if (!Number.isInteger(timeout) || timeout < 1) throw new InvalidArgumentError(`udpTimeoutS must be a positive integer; got ${String(o.udpTimeoutS)}`)
  const seqBase = o.sequentialBase ?? 50000
  const seqCount = o.sequentialCount ?? 2048
  if (!Number.isInteger(seqBase) || !Number.isInteger(seqCount) || seqBase < 1024 || seqCount < 2 || seqBase + seqCount > 65536) {
    throw new InvalidArgumentError(`sequentialBase + sequentialCount must describe ports within 1024..65535; got ${seqBase} + ${seqCount}`)
  }
  if (o.nat === 'none') return ''

  const nat = o.nat
  const ip = o.wanIp
  const hairpin = (o.hairpin ?? false) && nat !== 'udp-blocked' && nat !== 'tcp-only'
  const cone = CONE.has(nat)
  const recordIn = cone || hairpin
  const W = `"${wan}"`
  const L = `"${lan}"`
  const out: string[] = ['flush ruleset', `table ip ${NAT_TABLE} {`]
  const dyn = `flags dynamic,timeout; timeout ${timeout}s;`

  if (cone) out.push(`  map eim_out { type ipv4_addr . inet_service : inet_service; ${dyn} }`)
  if (recordIn) out.push(`  map eim_in { type inet_service : ipv4_addr . inet_service; ${dyn} }`)
  if (nat === 'restricted-cone') out.push(`  set adf_peers { type inet_service . ipv4_addr; ${dyn} }`)

  // Inbound: destination NAT of packets that do not belong to an existing conntrack entry.
  out.push('  chain prerouting {', '    type nat hook prerouting priority dstnat; policy accept;')
  if (nat === 'full-cone') out.push(`    iifname ${W} ip daddr ${ip} meta l4proto udp dnat ip to udp dport map @eim_in`)
  if (nat === 'restricted-cone') out.push(`    iifname ${W} ip daddr ${ip} udp dport . ip saddr @adf_peers dnat ip to udp dport map @eim_in`)
  if (hairpin) out.push(`    iifname ${L} ip daddr ${ip} meta l4proto udp dnat ip to udp dport map @eim_in`)
  out.push('  }')

  // Outbound: source NAT, the mapping behaviour.
  out.push('  chain postrouting {', '    type nat hook postrouting priority srcnat; policy accept;')
  // The router's own packets already carry the public address and keep their ports (a symmetric NAT's random ports
  // would otherwise hit them too, and miniupnpd's STUN self-check would take its own router for a symmetric NAT).
  out.push(`    oifname ${W} ip saddr ${ip} accept`)
  if (hairpin) {
    if (cone) out.push(`    iifname ${L} oifname ${L} ct status dnat meta l4proto udp snat ip to ${ip} : ip saddr . udp sport map @eim_out`)
    out.push(`    iifname ${L} oifname ${L} ct status dnat snat ip to ${ip}`)
  }
  switch (nat) {
    case 'full-cone':
    case 'restricted-cone':
    case 'port-restricted-cone':
      out.push(`    oifname ${W} meta l4proto udp snat ip to ${ip} : ip saddr . udp sport map @eim_out`)
      out.push(`    oifname ${W} snat ip to ${ip}`)
      break
    case 'symmetric':
      out.push(`    oifname ${W} snat ip to ${ip} fully-random`)
      break
    case 'symmetric-sequential': {
      const ports: string[] = []
      for (let i = 0; i < seqCount; i++) ports.push(`${i} : ${seqBase + i}`)
      out.push(`    oifname ${W} meta l4proto udp snat ip to ${ip} : numgen inc mod ${seqCount} map { ${ports.join(', ')} }`)
      out.push(`    oifname ${W} snat ip to ${ip}`)
      break
    }
    case 'udp-blocked':
    case 'tcp-only':
      out.push(`    oifname ${W} snat ip to ${ip}`)
      break
  }
  out.push('  }')

  // After source NAT: record mappings (external port is now in the packet and the conntrack reply tuple).
  if (recordIn) {
    out.push('  chain record {', '    type filter hook postrouting priority 150; policy accept;')
    for (const dir of ['original', 'reply'] as const) {
      const internal = `ct ${dir} ip saddr . ct ${dir} proto-src`
      const m = `oifname ${W} meta l4proto udp ct direction ${dir}`
      if (cone) out.push(`    ${m} update @eim_out { ${internal} : udp sport }`)
      out.push(`    ${m} update @eim_in { udp sport : ${internal} }`)
    }
    if (nat === 'restricted-cone') out.push(`    oifname ${W} meta l4proto udp update @adf_peers { udp sport . ip daddr }`)
    out.push('  }')
  }

  // Filtering: forwarded traffic.
  out.push('  chain forward {', '    type filter hook forward priority filter; policy drop;')
  out.push('    ct state established,related accept', '    ct state invalid drop')
  if (nat === 'udp-blocked') {
    out.push(`    iifname ${L} oifname ${W} tcp dport { 80, 443 } accept`)
  } else if (nat === 'tcp-only') {
    out.push(`    iifname ${L} oifname ${W} meta l4proto tcp accept`)
  } else {
    out.push(`    iifname ${L} accept`)
    out.push(`    iifname ${W} ct status dnat accept`)
  }
  out.push('  }')

  // Filtering: traffic to the router itself (unsolicited inbound, and LAN packets to the public address
  // that were not hairpinned).
  out.push('  chain input {', '    type filter hook input priority filter; policy accept;')
  out.push(`    iifname ${W} ct state established,related accept`)
  out.push(`    iifname ${W} drop`)
  out.push(`    iifname ${L} ip daddr ${ip} meta l4proto udp drop`)
  out.push('  }')

  out.push('}')
  return out.join('\n') + '\n'
}
