/**
 * mDNS host candidates (draft-ietf-mmusic-mdns-ice-candidates): browsers hide their host addresses behind random
 * `<uuid>.local` names and answer multicast DNS queries (RFC 6762) for them on the local link. An ICE agent resolves
 * such a remote candidate with a query to 224.0.0.251:5353; if no answer comes in time the candidate is dropped, and
 * the peer's checks, arriving from its real address, create a peer-reflexive candidate instead (RFC 8445 §7.3.1.3).
 *
 * The multicast socket and the DNS message codec are the `multicast-dns` package's (with `dns-packet`).
 */
import multicastDns from 'multicast-dns'
import { InvalidArgumentError } from '../errors.js'
import { createLogger } from '../log.js'
import { ipFamily } from '../net/endpoint.js'

const log = createLogger('natcheck:traversal:mdns')

/**
 * An mDNS host name as the draft's §3.1.1 generates it (a UUID, or any single label) under `.local`: one DNS label of
 * letters, digits and hyphens, then `.local`, optionally with the root dot.
 */
const MDNS_NAME = /^[A-Za-z0-9-]{1,63}\.local\.?$/i

/** Whether a candidate address is an mDNS `.local` name rather than an IP literal. */
export function isMdnsName (address: string): boolean {
  return MDNS_NAME.test(address)
}

/** Options of an {@link MdnsResolver} call. */
export interface MdnsResolveOptions {
  /** Give up after this long (the resolver then returns undefined). */
  readonly timeoutMs: number
  readonly signal?: AbortSignal
}

/**
 * Resolves an mDNS name to an IP address, or undefined when nothing answered in time. The Agent's seam
 * (`AgentOptions.mdnsResolver`): tests inject one, so only tests that build their own network send multicast.
 * Must not reject.
 */
export type MdnsResolver = (name: string, options: MdnsResolveOptions) => Promise<string | undefined>

/** Default time an mDNS resolution may take. Browsers answer from the same link within milliseconds. */
export const DEFAULT_MDNS_TIMEOUT_MS = 1000

/**
 * RFC 6762 §5.2: a querier that asks again waits at least one second after its first query. A resolution given more
 * than a second asks once more then (a lost multicast datagram is the usual reason for no answer).
 */
const REQUERY_AFTER_MS = 1000

/**
 * Resolve an mDNS name with multicast DNS (RFC 6762 §5.1, a one-shot query for the A record; an AAAA answer is taken
 * too): the query goes to 224.0.0.251:5353 on every IPv4 interface from a socket bound to port 5353 in the mDNS group,
 * so an answer is received whether the responder multicasts it (RFC 6762 §6) or not. Bounded by `timeoutMs` (the
 * query is repeated once after 1 s when the budget allows, §5.2); returns undefined on timeout, abort, or when the
 * socket cannot be bound. Never rejects for network reasons.
 * @throws InvalidArgumentError when `name` is not an mDNS `.local` name.
 */
export async function resolveMdns (name: string, options: MdnsResolveOptions = { timeoutMs: DEFAULT_MDNS_TIMEOUT_MS }): Promise<string | undefined> {
  if (!isMdnsName(name)) throw new InvalidArgumentError(`not an mDNS .local name: ${JSON.stringify(name)}`)
  const wanted = name.replace(/\.$/, '').toLowerCase()
  if (options.signal?.aborted === true) return undefined
  const mdns = multicastDns({ reuseAddr: true, loopback: true })
  const started = performance.now()
  return await new Promise<string | undefined>((resolve) => {
    let done = false
    const timers: NodeJS.Timeout[] = []
    const finish = (address: string | undefined, why: string): void => {
      if (done) return
      done = true
      for (const t of timers) clearTimeout(t)
      options.signal?.removeEventListener('abort', onAbort)
      mdns.removeAllListeners('response')
      // Errors after this point (a late datagram, the socket closing) have nowhere to go.
      mdns.on('error', () => {})
      mdns.on('warning', () => {})
      mdns.destroy()
      log('%s → %s (%s, %d ms)', name, address ?? 'unresolved', why, Math.round(performance.now() - started))
      resolve(address)
    }
    const onAbort = (): void => { finish(undefined, 'aborted') }
    options.signal?.addEventListener('abort', onAbort, { once: true })
    mdns.on('error', (err: Error) => { finish(undefined, `mDNS socket: ${err.message}`) })
    mdns.on('warning', (err: Error) => { log.trace('mDNS warning: %s', err.message) })
    mdns.on('response', (res) => {
      // RFC 6762 §6: answers may come in the answer or the additional section; names compare case-insensitively.
      for (const rr of [...res.answers ?? [], ...res.additionals ?? []]) {
        if ((rr.type !== 'A' && rr.type !== 'AAAA') || rr.name.replace(/\.$/, '').toLowerCase() !== wanted) continue
        const address = String(rr.data)
        if (ipFamily(address) !== 0) { finish(address, 'answered'); return }
      }
    })
    const ask = (): void => {
      mdns.query({ questions: [{ name: wanted, type: 'A' }] }, (err: Error | null) => {
        if (err !== null && err !== undefined) finish(undefined, `query not sent: ${err.message}`)
      })
    }
    ask()
    if (options.timeoutMs > REQUERY_AFTER_MS) timers.push(setTimeout(ask, REQUERY_AFTER_MS))
    timers.push(setTimeout(() => { finish(undefined, 'timed out') }, options.timeoutMs))
    for (const t of timers) t.unref()
  })
}
