/**
 * Publishing natkit's own host candidates as mDNS names (draft-ietf-mmusic-mdns-ice-candidates §3.1, what browsers
 * do): each host address gets a random `<uuid>.local` name, the candidate is signalled with the name, and a responder
 * answers multicast DNS queries (RFC 6762 §6) for it on the local link, so only peers on that link learn the address.
 * The answer logic is a pure function (mdnsAnswers); the socket is the `multicast-dns` package's.
 */
import { randomUUID } from 'node:crypto'
import multicastDns from 'multicast-dns'
import { createLogger } from '../log.js'
import { ipFamily } from '../net/endpoint.js'

const log = createLogger('natcheck:traversal:mdns')

/** A name published for one host address; close() stops answering for it. */
export interface MdnsPublication {
  readonly name: string
  close: () => Promise<void>
}

/**
 * Publishes `name` → `address` by multicast DNS until closed. The Agent's seam (`AgentOptions.mdnsPublisher`): tests
 * inject one, so only tests that build their own network send multicast. Must not throw for network reasons.
 */
export type MdnsPublisher = (name: string, address: string) => MdnsPublication

/** A fresh mDNS host name (draft §3.1.1: a version-4 UUID under `.local`). */
export function newMdnsName (): string {
  return `${randomUUID()}.local`
}

/** One DNS question as multicast-dns decodes it. */
interface Question { readonly name: string, readonly type: string }

/**
 * RFC 6762 §6: the answers for a query's questions from the published names (case-insensitive, trailing dot
 * ignored): an A record for an IPv4 address, AAAA for IPv6, `ANY` for either; TTL 120 s (§10, host records).
 */
export function mdnsAnswers (questions: readonly Question[], published: ReadonlyMap<string, string>): Array<{ name: string, type: 'A' | 'AAAA', ttl: number, flush: boolean, data: string }> {
  const out: Array<{ name: string, type: 'A' | 'AAAA', ttl: number, flush: boolean, data: string }> = []
  for (const q of questions) {
    const address = published.get(q.name.replace(/\.$/, '').toLowerCase())
    if (address === undefined) continue
    const type = ipFamily(address) === 6 ? 'AAAA' : 'A'
    if (q.type !== type && q.type !== 'ANY') continue
    // cache-flush: this host is the only owner of the unique name (§10.2).
    out.push({ name: q.name.replace(/\.$/, ''), type, ttl: 120, flush: true, data: address })
  }
  return out
}

/** One multicast-dns socket answering for every name published through it; closed with the last publication. */
class Responder {
  private readonly published = new Map<string, string>()
  private readonly mdns = multicastDns({ reuseAddr: true, loopback: true })

  constructor () {
    this.mdns.on('error', (err: Error) => { log('mDNS responder: %s', err.message) })
    this.mdns.on('warning', (err: Error) => { log.trace('mDNS warning: %s', err.message) })
    this.mdns.on('query', (q) => {
      const answers = mdnsAnswers(q.questions ?? [], this.published)
      if (answers.length === 0) return
      // RFC 6762 §6: answers to a multicast query are multicast, so every cache on the link learns them.
      this.mdns.respond({ answers }, (err: Error | null) => { if (err !== null && err !== undefined) log('mDNS answer not sent: %s', err.message) })
    })
  }

  add (name: string, address: string): void { this.published.set(name.toLowerCase(), address) }

  /** Stop answering for a name; true when none is left (the socket is then closed). */
  remove (name: string): boolean {
    this.published.delete(name.toLowerCase())
    if (this.published.size > 0) return false
    this.mdns.destroy()
    return true
  }
}

let shared: Responder | undefined

/**
 * The default publisher: answers A/AAAA queries for `name` with `address` on every IPv4 interface (224.0.0.251:5353,
 * one socket shared by every publication of the process) until the publication is closed.
 */
export const publishMdns: MdnsPublisher = (name, address) => {
  shared ??= new Responder()
  const r = shared
  r.add(name, address)
  log('publishing %s', name)
  let closed = false
  return {
    name,
    close: async () => {
      if (closed) return
      closed = true
      if (r.remove(name) && shared === r) shared = undefined
    }
  }
}
