import type { Endpoint } from '../../../../src/net/endpoint.js'
import { ErrorCode, MessageBuilder, MessageClass, StunMessage, UseCandidate, Username, XorMappedAddress, IceControlled, IceControlling, shortTermKey } from '../../../../src/stun/index.js'
import { makeCandidate, type Candidate } from '../../../../src/traversal/candidate.js'
import { candidateKey } from '../../../../src/traversal/ice-core/check-list.js'
import { buildCheckRequest, type IceRole } from '../../../../src/traversal/ice-core/check-messages.js'
import { IceCore } from '../../../../src/traversal/ice-core/ice-core.js'
import type { IceAction, IceCoreOptions } from '../../../../src/traversal/ice-core/types.js'

/** The core's fixed local credentials in these tests. */
export const LOCAL = { ufrag: 'locl', pwd: 'local-password-local-pw', key: shortTermKey('local-password-local-pw') }
/** The peer's credentials. */
export const PEER = { ufrag: 'peer', pwd: 'peer-password-peer-pass', key: shortTermKey('peer-password-peer-pass') }

export const HOST = makeCandidate({ type: 'host', address: '10.0.0.1', port: 5000 })
export const BASE = candidateKey(HOST)

export type Send = Extract<IceAction, { type: 'send' }>

/** A core with fixed credentials and tie-breaker, one host base, the peer's credentials set. */
export function makeCore (o: Partial<IceCoreOptions> = {}, bases: Candidate[] = [HOST]): IceCore {
  const core = new IceCore({ now: 0, credentials: LOCAL, tiebreaker: 100n, initialBurst: 1, checkIntervalMs: 50, checkRetransmit: { rtoMs: 500, rc: 7, rm: 16 }, random: () => 0.5, ...o })
  for (const b of bases) core.addBase(b)
  core.setRemoteCredentials(PEER.ufrag, PEER.pwd)
  return core
}

export function remote (port: number, o: { address?: string, type?: 'host' | 'srflx' | 'relay', localPreference?: number, component?: number } = {}): Candidate {
  return makeCandidate({ type: o.type ?? 'host', address: o.address ?? '10.0.0.2', port, localPreference: o.localPreference, component: o.component })
}

export function sends (actions: readonly IceAction[]): Send[] {
  return actions.filter((a): a is Send => a.type === 'send')
}

export function decode (a: Send): StunMessage { return StunMessage.decode(a.data) }

/** The check requests among the actions (Binding requests). */
export function checks (actions: readonly IceAction[]): Send[] {
  return sends(actions).filter(a => a.data[0] <= 3 && decode(a).cls === MessageClass.Request)
}

/** The peer's success response to one of the core's checks, from where the check went (or `from`). */
export function respond (check: Send, mapped: Endpoint = { address: HOST.address, port: HOST.port }): Buffer {
  const m = decode(check)
  return new MessageBuilder(m.method, MessageClass.SuccessResponse, m.transactionId).add(XorMappedAddress, mapped).integrity(PEER.key).fingerprint().build()
}

/** The peer's error response (e.g. 487) to one of the core's checks. */
export function respondError (check: Send, code: number): Buffer {
  const m = decode(check)
  return new MessageBuilder(m.method, MessageClass.ErrorResponse, m.transactionId).add(ErrorCode, { code, reason: 'x' }).integrity(PEER.key).fingerprint().build()
}

/** A check request from the peer to the core. */
export function peerCheck (o: { role?: IceRole, tiebreaker?: bigint, nominate?: boolean, priority?: number, credentials?: { ufrag: string, key: Buffer } } = {}): Buffer {
  const to = o.credentials ?? LOCAL
  return buildCheckRequest({ localUfrag: PEER.ufrag, remoteUfrag: to.ufrag, remoteKey: to.key, priority: o.priority ?? 1_000_000, role: o.role ?? 'controlled', tiebreaker: o.tiebreaker ?? 5n, nominate: o.nominate ?? false })
}

export function hasUseCandidate (a: Send): boolean { return decode(a).has(UseCandidate.type) }
export function roleOf (a: Send): IceRole { return decode(a).has(IceControlling.type) ? 'controlling' : decode(a).has(IceControlled.type) ? 'controlled' : 'controlled' }
export function usernameOf (a: Send): string | undefined { return decode(a).get(Username) }

/** Drive a core through time: tick at every deadline up to `until`, collecting the actions with their times. */
export function runUntil (core: IceCore, until: number, onActions: (now: number, actions: IceAction[]) => void = () => {}): void {
  for (let i = 0; i < 100_000; i++) {
    const at = core.nextDeadline()
    if (at === undefined || at > until) return
    onActions(at, core.tick(at))
  }
  throw new Error('runUntil: too many ticks')
}
