import { BlockList, isIP } from 'node:net'
import { InvalidArgumentError } from '../errors.js'
import type { Endpoint } from '../net/endpoint.js'
import { ipToBytes } from '../net/ip.js'

/**
 * Which peers a TURN relay may talk to. RFC 8656 §21.3 ("Security Considerations: ... the relay can be used to
 * reach hosts behind the server's firewall") recommends that servers deny peer addresses the operator did not
 * mean to expose; this is the coturn `--denied-peer-ip` idea with a safe default list.
 *
 * Order of decision: the server's own client-facing listener endpoints are always denied (a relay must not loop
 * into its own control ports); then `allowPeer` CIDRs allow; then the default list, `denyPeer` and the server's own
 * addresses deny; anything else is allowed.
 */

/** Peer ranges denied by default (IPv4 and IPv6). Each is "reachable only from inside" or not a unicast host. */
export const DEFAULT_DENIED_PEERS: readonly string[] = [
  '0.0.0.0/8', // "this network" (RFC 791 / RFC 6890)
  '10.0.0.0/8', // RFC 1918
  '100.64.0.0/10', // shared address space, carrier-grade NAT (RFC 6598)
  '127.0.0.0/8', // loopback
  '169.254.0.0/16', // link-local, incl. the 169.254.169.254 cloud metadata service (RFC 3927)
  '172.16.0.0/12', // RFC 1918
  '192.0.0.0/24', // IETF protocol assignments (RFC 6890)
  '192.0.2.0/24', // TEST-NET-1 documentation (RFC 5737)
  '192.168.0.0/16', // RFC 1918
  '198.18.0.0/15', // benchmarking (RFC 2544)
  '198.51.100.0/24', // TEST-NET-2
  '203.0.113.0/24', // TEST-NET-3
  '224.0.0.0/4', // multicast
  '240.0.0.0/4', // reserved, incl. 255.255.255.255 broadcast
  '::/96', // unspecified ::/128, loopback ::1 and the deprecated IPv4-compatible addresses
  '64:ff9b::/96', // NAT64 well-known prefix: reaches arbitrary IPv4 through a translator (RFC 6052)
  '64:ff9b:1::/48', // local-use NAT64 (RFC 8215)
  '100::/64', // discard-only (RFC 6666)
  '2001:db8::/32', // documentation (RFC 3849)
  'fc00::/7', // unique local (RFC 4193)
  'fe80::/10', // link-local
  'fec0::/10', // deprecated site-local
  'ff00::/8' // multicast
]

/** A parsed CIDR: network address, prefix length, family. */
export interface Cidr {
  readonly address: string
  readonly prefix: number
  readonly family: 4 | 6
}

/** Parse `ADDR/PREFIX` or a bare address (a /32 or /128). Throws InvalidArgumentError. */
export function parseCidr (text: string): Cidr {
  const s = text.trim()
  const slash = s.indexOf('/')
  const address = slash >= 0 ? s.slice(0, slash) : s
  const family = isIP(address)
  if (family === 0) throw new InvalidArgumentError(`${JSON.stringify(text)} is not a CIDR: write e.g. 10.0.0.0/8 or fd00::/8`)
  const max = family === 4 ? 32 : 128
  let prefix = max
  if (slash >= 0) {
    const p = s.slice(slash + 1)
    if (!/^\d{1,3}$/.test(p) || Number(p) > max) throw new InvalidArgumentError(`bad prefix length in ${JSON.stringify(text)}: use 0-${max}`)
    prefix = Number(p)
  }
  return { address, prefix, family: family as 4 | 6 }
}

/** If `address` is an IPv4-mapped IPv6 address (::ffff:a.b.c.d, ::ffff:XXXX:XXXX in any spelling), its IPv4 form. */
export function unmapIPv4 (address: string): string | undefined {
  if (isIP(address) !== 6) return undefined
  const b = ipToBytes(address)
  for (let i = 0; i < 10; i++) if (b[i] !== 0) return undefined
  if (b[10] !== 0xff || b[11] !== 0xff) return undefined
  return `${b[12]}.${b[13]}.${b[14]}.${b[15]}`
}

/** Options for PeerPolicy. */
export interface PeerPolicyOptions {
  /** CIDRs that are allowed even when a deny rule matches (e.g. `['127.0.0.0/8']` for loopback tests). */
  readonly allowPeer?: readonly string[]
  /** Extra CIDRs to deny, on top of DEFAULT_DENIED_PEERS. */
  readonly denyPeer?: readonly string[]
  /** The server's own IP addresses (listen, relay, external): denied unless `allowPeer` covers them. */
  readonly ownAddresses?: readonly string[]
  /** The server's client-facing listener endpoints: always denied, whatever `allowPeer` says. */
  readonly ownEndpoints?: readonly Endpoint[]
  /** Replace DEFAULT_DENIED_PEERS (default: use it). Only for special deployments. */
  readonly defaultDeny?: readonly string[]
}

/** The verdict on a peer address. */
export type PeerVerdict = 'allowed' | 'denied'

function addCidr (list: BlockList, cidr: Cidr): void {
  if ((cidr.family === 4 && cidr.prefix === 32) || (cidr.family === 6 && cidr.prefix === 128)) {
    list.addAddress(cidr.address, cidr.family === 4 ? 'ipv4' : 'ipv6')
  } else {
    list.addSubnet(cidr.address, cidr.prefix, cidr.family === 4 ? 'ipv4' : 'ipv6')
  }
}

/** The peer-address policy (see the module comment for the order of rules). Immutable; build a new one to reload. */
export class PeerPolicy {
  private readonly allow = new BlockList()
  private readonly deny = new BlockList()
  private readonly ownEndpoints: Set<string>

  constructor (options: PeerPolicyOptions = {}) {
    for (const c of options.allowPeer ?? []) addCidr(this.allow, parseCidr(c))
    for (const c of options.defaultDeny ?? DEFAULT_DENIED_PEERS) addCidr(this.deny, parseCidr(c))
    for (const c of options.denyPeer ?? []) addCidr(this.deny, parseCidr(c))
    for (const a of options.ownAddresses ?? []) {
      // 0.0.0.0 and :: (wildcard binds) are already in the default list.
      if (isIP(a) !== 0) addCidr(this.deny, parseCidr(a))
    }
    this.ownEndpoints = new Set((options.ownEndpoints ?? []).map(e => `${normalize(e.address)}|${e.port}`))
  }

  /** Whether the relay may exchange data with `peer`. */
  check (peer: Endpoint): PeerVerdict {
    const address = normalize(peer.address)
    const family = isIP(address)
    if (family === 0) return 'denied'
    if (this.ownEndpoints.has(`${address}|${peer.port}`)) return 'denied'
    return this.checkAddress(address)
  }

  /** Whether the address (any port) may be a peer: permissions are per IP address (RFC 8656 §9). */
  checkAddress (address: string): PeerVerdict {
    const a = normalize(address)
    const family = isIP(a)
    if (family === 0) return 'denied'
    const type = family === 4 ? 'ipv4' : 'ipv6'
    if (this.allow.check(a, type)) return 'allowed'
    if (this.deny.check(a, type)) return 'denied'
    return 'allowed'
  }
}

/** IPv4-mapped IPv6 addresses are judged as the IPv4 address they carry. */
function normalize (address: string): string {
  return unmapIPv4(address) ?? address
}
