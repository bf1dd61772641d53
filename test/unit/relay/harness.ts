import {
  ErrorCode, MessageBuilder, MessageClass, Method, Nonce, PasswordAlgorithm, PasswordAlgorithmId, PasswordAlgorithms, Realm,
  RequestedTransport, StunMessage, TransportProtocol, Username, longTermKey, type PasswordAlgorithmName
} from '../../../src/stun/index.js'
import type { Endpoint } from '../../../src/net/endpoint.js'
import { TurnServerCore } from '../../../src/relay/server-core.js'
import type { TurnServerCoreOptions } from '../../../src/relay/core-options.js'
import type { ClientTransport, RelayAction } from '../../../src/relay/types.js'

export const REALM = 'natkit.test'
export const SERVER: Endpoint = { address: '192.0.2.1', port: 3478 }
export const UDP: ClientTransport = { protocol: 'udp', local: SERVER }

/** Core options for tests: a user, loopback relay, deterministic small port range. */
export function testOptions (extra: Partial<TurnServerCoreOptions> = {}): TurnServerCoreOptions {
  return {
    realm: REALM,
    users: { alice: 'secret', bob: 'hunter2' },
    relayAddress: '127.0.0.1',
    portRange: [50000, 50099],
    allowPeer: ['127.0.0.0/8'],
    ...extra
  }
}

export interface Credentials { user: string, pass: string, algorithm?: PasswordAlgorithmName, sha256Integrity?: boolean }

/** A fake client for the sans-IO core: builds requests, authenticates, fulfils open-relay actions. */
export class Harness {
  now = 1_700_000_000_000
  nonce: string | undefined
  constructor (readonly core: TurnServerCore, readonly client: Endpoint = { address: '198.51.100.7', port: 40000 }, readonly transport: ClientTransport = UDP) {}

  /** Feed a packet; open-relay actions are answered with success (the port the core chose). */
  feed (packet: Uint8Array, from = this.client, transport = this.transport): RelayAction[] {
    return this.fulfil(this.core.handle(packet, from, transport, this.now))
  }

  fulfil (actions: RelayAction[]): RelayAction[] {
    const out: RelayAction[] = []
    for (const a of actions) {
      out.push(a)
      if (a.type === 'open-relay') out.push(...this.fulfil(this.core.relayOpened(a.relay, { ok: true, bound: { address: a.address, port: a.port } }, this.now)))
    }
    return out
  }

  /** The single STUN response among actions (decoded), or undefined. */
  static response (actions: RelayAction[]): StunMessage | undefined {
    const sends = actions.filter(a => a.type === 'send')
    if (sends.length === 0) return undefined
    return StunMessage.decode((sends[0] as { data: Uint8Array }).data)
  }

  static errorCode (m: StunMessage | undefined): number | undefined {
    return m?.get(ErrorCode)?.code
  }

  /** Build an authenticated request (fetching a nonce first if needed). */
  build (method: number, add: (b: MessageBuilder) => void, creds: Credentials = { user: 'alice', pass: 'secret' }, txid?: Uint8Array): Buffer {
    if (this.nonce === undefined) this.fetchNonce()
    const b = new MessageBuilder(method, MessageClass.Request, txid)
    add(b)
    b.add(Username, creds.user).add(Realm, REALM).add(Nonce, this.nonce as string)
    const algorithm = creds.algorithm ?? 'md5'
    if (creds.algorithm !== undefined) {
      b.add(PasswordAlgorithms, [{ algorithm: PasswordAlgorithmId.MD5, parameters: new Uint8Array(0) }, { algorithm: PasswordAlgorithmId.SHA256, parameters: new Uint8Array(0) }])
      b.add(PasswordAlgorithm, { algorithm: algorithm === 'md5' ? PasswordAlgorithmId.MD5 : PasswordAlgorithmId.SHA256, parameters: new Uint8Array(0) })
    }
    const key = longTermKey(creds.user, REALM, creds.pass, algorithm)
    if (creds.sha256Integrity === true) b.integritySha256(key); else b.integrity(key)
    return b.fingerprint().build()
  }

  fetchNonce (): string {
    const probe = new MessageBuilder(Method.Allocate, MessageClass.Request).add(RequestedTransport, TransportProtocol.UDP).build()
    const res = Harness.response(this.core.handle(probe, this.client, this.transport, this.now))
    const nonce = res?.get(Nonce)
    if (nonce === undefined) throw new Error('no nonce in the 401')
    this.nonce = nonce
    return nonce
  }

  /** Send an authenticated request and return the decoded response plus all actions. */
  request (method: number, add: (b: MessageBuilder) => void = () => {}, creds?: Credentials): { res: StunMessage | undefined, actions: RelayAction[] } {
    const actions = this.feed(this.build(method, add, creds))
    return { res: Harness.response(actions), actions }
  }

  allocate (add: (b: MessageBuilder) => void = () => {}, creds?: Credentials): { res: StunMessage | undefined, actions: RelayAction[] } {
    return this.request(Method.Allocate, (b) => { b.add(RequestedTransport, TransportProtocol.UDP); add(b) }, creds)
  }
}

export function newCore (extra: Partial<TurnServerCoreOptions> = {}): TurnServerCore {
  return new TurnServerCore(testOptions(extra))
}
