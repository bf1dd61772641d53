import { ipFamily } from '../../net/endpoint.js'
import { pairPriority, type Candidate } from '../candidate.js'

/** Why a candidate pair check ended the way it did (the connect report's reason codes). */
export type CheckOutcome = 'succeeded' | 'timeout' | 'auth-failed' | 'role-conflict' | 'non-symmetric' | 'error-response' | 'relay-refused' | 'cancelled'

/** Candidate pair states (RFC 8445 §6.1.2.6). */
export type PairState = 'frozen' | 'waiting' | 'in-progress' | 'succeeded' | 'failed'

/** A local base (a host socket or a relayed allocation) paired with a remote candidate. */
export interface CandidatePair {
  readonly id: string
  /** The local candidate whose base sends the checks (host or relay; server-reflexive ones pair through their host base). */
  readonly local: Candidate
  readonly remote: Candidate
  /** The component (RFC 8445 §4): 1 for RTP (or everything with rtcp-mux), 2 for RTCP without it. */
  readonly component: number
  /** The pair's foundation (RFC 8445 §6.1.2.6): the local and the remote candidate's foundations. */
  readonly foundation: string
  priority: bigint
  state: PairState
  outcome?: CheckOutcome
  detail?: string
  /** Nominated by the controlling agent (USE-CANDIDATE). */
  nominated: boolean
  checksSent: number
  firstCheckAt?: number
  endedAt?: number
  rttMs?: number
  /** The last time a check or consent request on this pair got a response. */
  lastResponseAt?: number
}

/** Whether a pair involves a relayed candidate on either side. */
export function isRelayed (p: Pick<CandidatePair, 'local' | 'remote'>): boolean {
  return p.local.type === 'relay' || p.remote.type === 'relay'
}

/**
 * The check list (RFC 8445 §6.1.2): pairs of local bases and remote candidates of the same address family and
 * transport, ordered by pair priority, with a triggered-check queue (§7.3.1.4) served first. Frozen/Waiting per
 * §6.1.2.6: of the pairs sharing a foundation only the first one waits, the others stay Frozen until a pair of that
 * foundation succeeds (§7.2.5.3.3) or no pair is left Waiting (§6.1.4.2). Sans-IO: it only holds state.
 */
export class CheckList {
  readonly pairs: CandidatePair[] = []
  private readonly triggered: CandidatePair[] = []

  /** Add every new pair between `locals` and `remotes`; returns the pairs added. */
  addPairs (locals: Candidate[], remotes: Candidate[], controlling: boolean): CandidatePair[] {
    const added: CandidatePair[] = []
    for (const l of locals) {
      if (l.type === 'srflx' || l.type === 'prflx') continue // they share the host base's pairs (§6.1.2.4)
      for (const r of remotes) {
        // Same family, transport and component (RFC 8445 §6.1.2.2).
        if (ipFamily(l.address) !== ipFamily(r.address) || l.transport !== r.transport || l.component !== r.component) continue
        const id = pairId(l, r)
        if (this.pairs.some(p => p.id === id)) continue
        const foundation = `${l.foundation}:${r.foundation}`
        // §6.1.2.6: one pair per foundation waits, the rest are frozen (a foundation already proven unfreezes at once).
        // The waiting one is of the lowest component: a later pair of a lower component takes over from an unchecked one.
        const siblings = this.pairs.filter(p => p.foundation === foundation && p.state !== 'failed')
        const proven = siblings.some(p => p.state === 'succeeded')
        const waiting = siblings.find(p => p.state === 'waiting' && p.checksSent === 0 && !this.triggered.includes(p))
        const takeOver = !proven && waiting !== undefined && waiting.component > l.component && siblings.every(p => p === waiting || p.state === 'frozen')
        if (takeOver) waiting.state = 'frozen'
        const pair: CandidatePair = {
          id, local: l, remote: r, component: l.component, foundation, state: siblings.length === 0 || proven || takeOver ? 'waiting' : 'frozen', nominated: false, checksSent: 0,
          priority: controlling ? pairPriority(l.priority, r.priority) : pairPriority(r.priority, l.priority)
        }
        this.pairs.push(pair)
        added.push(pair)
      }
    }
    this.pairs.sort((a, b) => (b.priority > a.priority ? 1 : b.priority < a.priority ? -1 : 0))
    return added
  }

  /** Recompute priorities after a role change (§7.2.5.1). */
  reprioritise (controlling: boolean): void {
    for (const p of this.pairs) p.priority = controlling ? pairPriority(p.local.priority, p.remote.priority) : pairPriority(p.remote.priority, p.local.priority)
    this.pairs.sort((a, b) => (b.priority > a.priority ? 1 : b.priority < a.priority ? -1 : 0))
  }

  /**
   * A remote candidate learnt as peer-reflexive (§7.3.1.3) has now been signalled (or its mDNS name resolved): its pairs
   * take the signalled candidate, with its type and priority, and are re-sorted. State, id and foundation stay.
   * Returns the pairs changed.
   */
  replaceRemote (learnt: Candidate, signalled: Candidate, controlling: boolean): CandidatePair[] {
    const changed = this.pairs.filter(p => p.remote === learnt)
    for (const p of changed) (p as { remote: Candidate }).remote = signalled
    if (changed.length > 0) this.reprioritise(controlling)
    return changed
  }

  /** Queue a triggered check (a check request arrived on this pair). */
  trigger (pair: CandidatePair): void {
    if (pair.state === 'in-progress' || pair.state === 'succeeded') return
    pair.state = 'waiting'
    if (!this.triggered.includes(pair)) this.triggered.push(pair)
  }

  /**
   * The next pair to check (§6.1.4.2): triggered first, then the highest-priority Waiting pair, else the
   * highest-priority Frozen one (unfrozen by being picked).
   */
  next (): CandidatePair | undefined {
    const t = this.triggered.shift()
    if (t !== undefined && t.state === 'waiting') return t
    return this.pairs.find(p => p.state === 'waiting') ?? this.pairs.find(p => p.state === 'frozen')
  }

  /** Whether next() would return a pair (without taking it). */
  hasNext (): boolean {
    return this.triggered.some(p => p.state === 'waiting') || this.pairs.some(p => p.state === 'waiting' || p.state === 'frozen')
  }

  /** A check on `pair` succeeded: unfreeze the Frozen pairs with its foundation, of every component (§7.2.5.3.3). */
  unfreeze (pair: CandidatePair): void {
    for (const p of this.pairs) if (p.state === 'frozen' && p.foundation === pair.foundation) p.state = 'waiting'
  }

  /** The pair of a local base (by candidateKey) and a remote transport address. */
  find (localId: string, remote: { address: string, port: number }): CandidatePair | undefined {
    return this.pairs.find(p => candidateKey(p.local) === localId && p.remote.address === remote.address && p.remote.port === remote.port)
  }

  /** Whether any check is still waiting or running. */
  get active (): boolean { return this.pairs.some(p => p.state === 'frozen' || p.state === 'waiting' || p.state === 'in-progress') }
}

/** Identity of a candidate: type, address and port. */
export function candidateKey (c: Pick<Candidate, 'type' | 'address' | 'port'>): string {
  return `${c.type}|${c.address}|${c.port}`
}

function pairId (l: Candidate, r: Candidate): string {
  return `${candidateKey(l)}→${r.address}|${r.port}`
}
