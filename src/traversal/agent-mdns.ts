import { createLogger } from '../log.js'
import { ipFamily } from '../net/endpoint.js'
import type { AgentOptions, MdnsResolution } from './agent-options.js'
import type { Candidate } from './candidate.js'
import { DEFAULT_MDNS_TIMEOUT_MS, resolveMdns } from './mdns.js'
import { newMdnsName, publishMdns, type MdnsPublication } from './mdns-responder.js'

const log = createLogger('natcheck:traversal:agent')

/**
 * The Agent's mDNS side (draft-ietf-mmusic-mdns-ice-candidates): resolving the peer's `.local` host candidates
 * (§3.2.2, one query per name, bounded by `mdnsTimeoutMs`) and, with `mdnsHostCandidates`, naming and publishing its
 * own (§3.1). Adapter code: it owns the resolver calls and the publications, and closes them.
 */
export class AgentMdns {
  /** mDNS names among the remote candidates, and what each resolved to (filled as resolutions finish). */
  readonly resolutions: MdnsResolution[] = []
  private readonly abort = new AbortController()
  /** One resolution per name: a browser names its UDP and TCP host candidates alike. */
  private readonly queries = new Map<string, Promise<string | undefined>>()
  /** The names published for host addresses, by address. */
  private readonly published = new Map<string, MdnsPublication>()

  constructor (private readonly options: AgentOptions, private readonly clock: () => number) {}

  /**
   * Resolve a remote candidate named by an mDNS name: the candidate with the address it resolved to, or undefined
   * (the pair can then only be learnt as peer-reflexive, RFC 8445 §7.3.1.3).
   */
  async resolve (c: Candidate): Promise<Candidate | undefined> {
    const started = this.clock()
    const key = c.address.toLowerCase()
    let query = this.queries.get(key)
    if (query === undefined) {
      const resolver = this.options.mdnsResolver ?? resolveMdns
      query = resolver(c.address, { timeoutMs: this.options.mdnsTimeoutMs ?? DEFAULT_MDNS_TIMEOUT_MS, signal: this.abort.signal })
        .catch((err: Error) => { log('mDNS resolution of %s failed: %s', c.address, err.message); return undefined })
      this.queries.set(key, query)
    }
    const address = await query
    const family = address === undefined ? 0 : ipFamily(address)
    this.resolutions.push({ name: c.address, port: c.port, address: family === 0 ? null : address as string, ms: Math.round(this.clock() - started) })
    if (family === 0) { log('mDNS name %s did not resolve: its pair can only be learnt as peer-reflexive', c.address); return undefined }
    return { ...c, address: address as string }
  }

  /**
   * A local candidate as it is signalled: with `mdnsHostCandidates`, a host candidate carries its address's mDNS name
   * (published on first use) and other candidates hide their related address (§3.1.2, as browsers do); otherwise the
   * candidate itself.
   */
  signalled (c: Candidate): Candidate {
    if (this.options.mdnsHostCandidates !== true) return c
    if (c.type !== 'host') return c.related === undefined ? c : { ...c, related: { address: '0.0.0.0', port: 0 } }
    if (ipFamily(c.address) === 0) return c
    let p = this.published.get(c.address)
    if (p === undefined) {
      p = (this.options.mdnsPublisher ?? publishMdns)(newMdnsName(), c.address)
      this.published.set(c.address, p)
    }
    return { ...c, address: p.name }
  }

  /** Abort pending resolutions and stop answering for the published names. */
  async close (): Promise<void> {
    this.abort.abort()
    await Promise.all([...this.published.values()].map(async p => { await p.close() }))
  }
}
