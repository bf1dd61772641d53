import { InvalidArgumentError, StunDecodeError } from '../errors.js'
import type { Endpoint } from '../net/endpoint.js'
import { AttrType } from './attr-type.js'
import { ChangedAddress, MappedAddress, OtherAddress, ResponseOrigin, SourceAddress, XorMappedAddress } from './attributes/address.js'
import { ChangeRequest, Padding, ResponsePort } from './attributes/nat.js'
import { ErrorCode, ERROR_REASONS, Software, UnknownAttributes } from './attributes/stun.js'
import { MessageBuilder } from './builder.js'
import { HEADER_LENGTH, MessageClass, Method } from './constants.js'
import { StunMessage } from './message.js'

/** Why the server dropped a datagram without answering. */
export type IgnoreReason = 'malformed' | 'not-stun' | 'not-a-request' | 'bad-fingerprint'

/** What the core asks its adapter to do with one datagram. */
export type StunServerAction =
  | { readonly type: 'send', readonly via: Endpoint, readonly to: Endpoint, readonly data: Buffer }
  | { readonly type: 'ignore', readonly reason: IgnoreReason, readonly detail?: string }

/** Counters the core keeps (read them any time; they only grow). */
export interface StunServerStats {
  requests: number
  responses: number
  errorResponses: number
  /** Requests answered 500 because the server itself failed (a bug: the fuzz suite asserts it stays 0). */
  internalErrors: number
  ignored: Record<IgnoreReason, number>
}

/** Options for StunServerCore. */
export interface StunServerCoreOptions {
  /** The primary address and port (IP1, P1). */
  readonly primary: Endpoint
  /**
   * The alternate address and port (IP2, P2), both different from the primary's. With it the server is RFC 5780
   * capable: it binds (IP1,P1) (IP1,P2) (IP2,P1) (IP2,P2) and honours CHANGE-REQUEST.
   */
  readonly alternate?: Endpoint
  /** SOFTWARE in responses (default 'natkit'); empty string to omit. */
  readonly software?: string
}

/**
 * The STUN Binding server, sans-IO (RFC 8489 §6.3, RFC 5780 §6, RFC 3489 §8): given a datagram, the local address it
 * arrived on and its source, it returns what to send and from which of its addresses. It never throws.
 */
export class StunServerCore {
  readonly stats: StunServerStats = {
    requests: 0,
    responses: 0,
    errorResponses: 0,
    internalErrors: 0,
    ignored: { malformed: 0, 'not-stun': 0, 'not-a-request': 0, 'bad-fingerprint': 0 }
  }

  private readonly software: string
  private readonly softwareBytes: Uint8Array | undefined

  constructor (readonly options: StunServerCoreOptions) {
    const { primary, alternate } = options
    if (alternate !== undefined && (alternate.address === primary.address || alternate.port === primary.port)) {
      throw new InvalidArgumentError('the alternate address must differ from the primary in both IP and port (RFC 5780 §6)')
    }
    this.software = options.software ?? 'natkit'
    this.softwareBytes = this.software === '' ? undefined : Software.encode(this.software, { transactionId: new Uint8Array(12) })
  }

  /** Whether CHANGE-REQUEST can be honoured. */
  get rfc5780 (): boolean { return this.options.alternate !== undefined }

  /** The four (or one) local addresses the adapter must listen on. */
  localAddresses (): Endpoint[] {
    const { primary: p, alternate: a } = this.options
    if (a === undefined) return [p]
    return [p, { address: p.address, port: a.port }, { address: a.address, port: p.port }, a]
  }

  /**
   * Handle one datagram (or one stream frame) that arrived at `local` from `from`. `reliable` is true for TCP/TLS,
   * where CHANGE-REQUEST and RESPONSE-PORT do not apply.
   */
  handle (data: Uint8Array, from: Endpoint, local: Endpoint, reliable = false): StunServerAction {
    if (data.length < HEADER_LENGTH || data[0] > 3) return this.ignore('not-stun')
    let msg: StunMessage
    try {
      msg = StunMessage.decode(data, { copy: false })
    } catch (err) {
      return this.ignore('malformed', (err as Error).message)
    }
    if (msg.cls !== MessageClass.Request) return this.ignore('not-a-request')
    // RFC 8489 §7.3: a FINGERPRINT that does not verify means this is not STUN (or it was damaged): drop it.
    if (msg.has(AttrType.Fingerprint) && !msg.verifyFingerprint()) return this.ignore('bad-fingerprint')
    this.stats.requests++
    try {
      return this.answer(msg, from, local, reliable)
    } catch (err) {
      if (err instanceof StunDecodeError) return this.error(msg, from, local, 400, err.message)
      this.stats.internalErrors++
      return this.error(msg, from, local, 500)
    }
  }

  private answer (msg: StunMessage, from: Endpoint, local: Endpoint, reliable: boolean): StunServerAction {
    // RFC 8489 §6.3: a request for a method the server does not know is answered 400.
    if (msg.method !== Method.Binding) return this.error(msg, from, local, 400, 'only Binding is served here')
    // RFC 8489 §6.3.1: unknown comprehension-required attributes → 420 listing them.
    const unknown = msg.unknownComprehensionRequired()
    if (unknown.length > 0) return this.error(msg, from, local, 420, undefined, unknown)
    const change = msg.get(ChangeRequest)
    const responsePort = msg.get(ResponsePort)
    const padding = msg.get(Padding)
    const wantsChange = change !== undefined && (change.ip || change.port)
    // RFC 5780 §6.1: a server without an alternate address answers CHANGE-REQUEST with 420.
    if (wantsChange && !this.rfc5780) return this.error(msg, from, local, 420, undefined, [AttrType.ChangeRequest])
    if (reliable && (wantsChange || responsePort !== undefined)) {
      return this.error(msg, from, local, 400, 'CHANGE-REQUEST and RESPONSE-PORT apply to UDP only')
    }
    // RFC 5780 §7.6: PADDING together with RESPONSE-PORT is a 400.
    if (padding !== undefined && responsePort !== undefined) return this.error(msg, from, local, 400, 'PADDING with RESPONSE-PORT')

    const via = this.rfc5780 ? this.responseSource(local, change?.ip ?? false, change?.port ?? false) : local
    const to = responsePort !== undefined ? { address: from.address, port: responsePort } : from
    const b = this.builder(msg, MessageClass.SuccessResponse)
    if (msg.classic) {
      // RFC 3489 §11.2: MAPPED-ADDRESS, SOURCE-ADDRESS, CHANGED-ADDRESS. RESPONSE-ADDRESS is not honoured (it
      // would make the server a reflector for spoofed requests).
      b.add(MappedAddress, from).add(SourceAddress, via)
      if (this.rfc5780) b.add(ChangedAddress, this.otherAddress(local))
    } else {
      b.add(XorMappedAddress, from).add(MappedAddress, from)
      if (this.rfc5780) b.add(ResponseOrigin, via).add(OtherAddress, this.otherAddress(local))
    }
    // RFC 3489 has no SOFTWARE, and its parsers do not skip attribute padding: classic answers go without it.
    if (this.softwareBytes !== undefined && !msg.classic) b.addRaw(AttrType.Software, this.softwareBytes)
    if (padding !== undefined && padding.length > 0) b.add(Padding, Buffer.alloc(padding.length))
    if (!msg.classic) b.fingerprint()
    this.stats.responses++
    return { type: 'send', via, to, data: b.build() }
  }

  /** The address a response leaves from: the receiving address with its IP and/or port switched. */
  private responseSource (local: Endpoint, changeIp: boolean, changePort: boolean): Endpoint {
    const { primary: p, alternate: a } = this.options as { primary: Endpoint, alternate: Endpoint }
    const ip = changeIp ? (local.address === p.address ? a.address : p.address) : local.address
    const port = changePort ? (local.port === p.port ? a.port : p.port) : local.port
    return { address: ip, port }
  }

  /** OTHER-ADDRESS: the address differing from the receiving one in both IP and port (RFC 5780 §7.4). */
  private otherAddress (local: Endpoint): Endpoint {
    return this.responseSource(local, true, true)
  }

  private builder (msg: StunMessage, cls: MessageClass): MessageBuilder {
    return new MessageBuilder(msg.method, cls,
      msg.classic ? msg.raw.subarray(4, 20) : msg.transactionId)
  }

  private error (msg: StunMessage, from: Endpoint, local: Endpoint, code: number, reason?: string, unknown?: number[]): StunServerAction {
    const b = this.builder(msg, MessageClass.ErrorResponse)
      .add(ErrorCode, { code, reason: reason ?? ERROR_REASONS[code] ?? '' })
    if (unknown !== undefined) b.add(UnknownAttributes, unknown)
    if (this.softwareBytes !== undefined && !msg.classic) b.addRaw(AttrType.Software, this.softwareBytes)
    if (!msg.classic) b.fingerprint()
    this.stats.errorResponses++
    return { type: 'send', via: local, to: from, data: b.build() }
  }

  private ignore (reason: IgnoreReason, detail?: string): StunServerAction {
    this.stats.ignored[reason]++
    return { type: 'ignore', reason, detail }
  }
}

