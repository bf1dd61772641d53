import { BlockList, isIP } from 'node:net'
import { InvalidArgumentError } from '../errors.js'
import type { Endpoint } from '../net/endpoint.js'
import { ipToBytes } from '../net/ip.js'

/**
 * Which peers a TURN relay may talk to. RFC 8656 §21.3 ("Security Considerations: ... the relay can be used to
 * reach hosts behind the server's firewall") recommends that servers deny peer addresses the operator did not
 * mean to expose; this is the coturn `--denied-peer-ip` idea with a safe default list.
 *
 * Order of decision: the server's own endpoints — client-facing listeners, the admin and rendezvous ports — are
 * always denied (a relay must not loop into its own control ports), and `allowPeer` never re-opens them; then
 * `allowPeer` CIDRs allow; then the default list, `denyPeer` and the server's own addresses deny; anything else is
 * allowed.
 *
 * A wildcard listener (0.0.0.0 or ::) is reachable at every local address, so its port is denied on each of them:
 * the `localAddresses` the adapter lists (every interface), the server's own addresses, the whole loopback range
 * and the wildcard itself. A `::` listener is dual-stack on Linux, so it covers the IPv4 addresses too.
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
  '192.88.99.0/24', // deprecated 6to4 relay anycast (RFC 7526): relays into IPv6 through a third party
  '::/96', // unspecified ::/128, loopback ::1 and the deprecated IPv4-compatible addresses
  '64:ff9b::/96', // NAT64 well-known prefix: reaches arbitrary IPv4 through a translator (RFC 6052)
  '64:ff9b:1::/48', // local-use NAT64 (RFC 8215)
  '::ffff:0:0:0/96', // SIIT IPv4-translated addresses (RFC 2765 / RFC 6145): reach IPv4 through a translator
  '100::/64', // discard-only (RFC 6666)
  '2001::/32', // Teredo (RFC 4380): the IPv4 address of a client and its NAT is embedded, tunnelled over UDP
  '2002::/16', // 6to4 (RFC 3056): embeds an IPv4 address and reaches it through a 6to4 relay
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
  /**
   * The server's own endpoints — client-facing listeners, admin and rendezvous ports: always denied, whatever
   * `allowPeer` says. A wildcard address (0.0.0.0, ::) stands for every local address (see the module comment).
   */
  readonly ownEndpoints?: readonly Endpoint[]
  /** Every address of this host's interfaces, for wildcard `ownEndpoints` (the adapter lists them). */
  readonly localAddresses?: readonly string[]
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
  /** Ports of wildcard listeners: denied on every loopback address (127.0.0.0/8 reaches a 0.0.0.0 bind; ::1 a ::). */
  private readonly loopbackPorts4 = new Set<number>()
  private readonly loopbackPorts6 = new Set<number>()

  constructor (options: PeerPolicyOptions = {}) {
    for (const c of options.allowPeer ?? []) addCidr(this.allow, parseCidr(c))
    for (const c of options.defaultDeny ?? DEFAULT_DENIED_PEERS) addCidr(this.deny, parseCidr(c))
    for (const c of options.denyPeer ?? []) addCidr(this.deny, parseCidr(c))
    for (const a of options.ownAddresses ?? []) {
      // 0.0.0.0 and :: (wildcard binds) are already in the default list.
      if (isIP(a) !== 0) addCidr(this.deny, parseCidr(a))
    }
    this.ownEndpoints = new Set()
    const wildcard = (options.ownEndpoints ?? []).filter(e => isWildcard(e.address))
    const local = [...(options.localAddresses ?? []), ...(options.ownAddresses ?? []), '0.0.0.0', '::', '::1']
    for (const e of options.ownEndpoints ?? []) {
      if (!isWildcard(e.address)) this.ownEndpoints.add(`${normalize(e.address)}|${e.port}`)
    }
    for (const e of wildcard) {
      const v6 = isIP(e.address) === 6
      for (const a of local) {
        if (isIP(a) === 0) continue
        // A 0.0.0.0 listener is not reachable over IPv6; a :: listener is reachable over both (Linux dual-stack).
        if (!v6 && isIP(normalize(a)) !== 4) continue
        this.ownEndpoints.add(`${normalize(a)}|${e.port}`)
      }
      this.loopbackPorts4.add(e.port)
      if (v6) this.loopbackPorts6.add(e.port)
    }
  }

  /** Whether the relay may exchange data with `peer`. */
  check (peer: Endpoint): PeerVerdict {
    const address = normalize(peer.address)
    const family = isIP(address)
    if (family === 0) return 'denied'
    if (this.ownEndpoints.has(`${address}|${peer.port}`)) return 'denied'
    if ((family === 4 ? this.loopbackPorts4 : this.loopbackPorts6).has(peer.port) && LOOPBACK.check(address, family === 4 ? 'ipv4' : 'ipv6')) return 'denied'
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

const LOOPBACK = new BlockList()
LOOPBACK.addSubnet('127.0.0.0', 8, 'ipv4')
LOOPBACK.addAddress('::1', 'ipv6')

function isWildcard (address: string): boolean {
  return address === '0.0.0.0' || address === '::' || normalize(address) === '0.0.0.0'
}

/** IPv4-mapped IPv6 addresses are judged as the IPv4 address they carry. */
function normalize (address: string): string {
  return unmapIPv4(address) ?? address
}
