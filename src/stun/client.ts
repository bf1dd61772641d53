import { AbortError, InvalidArgumentError, StunDecodeError, StunErrorResponse, StunTimeoutError } from '../errors.js'
import { ipFamily, type Endpoint } from '../net/endpoint.js'
import { resolveServer, type ResolvedServer, type Transport } from '../net/resolve.js'
import { connectStream, type TlsClientOptions } from '../net/stream.js'
import { UdpSocket, type DatagramSocket } from '../net/udp.js'
import { ChangedAddress, MappedAddress, OtherAddress, ResponseOrigin, SourceAddress, XorMappedAddress } from './attributes/address.js'
import { ChangeRequest, Padding, ResponsePort, type ChangeRequestValue } from './attributes/nat.js'
import { ErrorCode, Software } from './attributes/stun.js'
import { MessageBuilder } from './builder.js'
import { MessageClass, Method } from './constants.js'
import type { StunMessage } from './message.js'
import type { RetransmitOptions } from './retransmit.js'
import { StreamTransactions } from './stream-transactions.js'
import { StunTransactions } from './transactions.js'

/** What a Binding response says (RFC 8489 §7.3.1, RFC 5780 §7, RFC 3489 §11.2). */
export interface BindingResult {
  /** The reflexive transport address: XOR-MAPPED-ADDRESS, or MAPPED-ADDRESS from a server that sends only that. */
  readonly mapped: Endpoint
  /** MAPPED-ADDRESS as received, when present: differing from XOR-MAPPED-ADDRESS reveals an ALG rewriting packets. */
  readonly mappedAddress?: Endpoint
  /** RESPONSE-ORIGIN (or classic SOURCE-ADDRESS): where the server says it answered from. */
  readonly responseOrigin?: Endpoint
  /** OTHER-ADDRESS (or classic CHANGED-ADDRESS): the server's alternate IP and port, if it is RFC 5780-capable. */
  readonly otherAddress?: Endpoint
  /** Where the response actually came from. */
  readonly from: Endpoint
  /** Local address of the socket the request left from. */
  readonly local: Endpoint
  readonly rttMs: number
  readonly software?: string
}

/** Options of one Binding request. */
export interface BindingRequestOptions extends RetransmitOptions {
  /** CHANGE-REQUEST flags (RFC 5780 §7.2). */
  readonly changeRequest?: ChangeRequestValue
  /** RESPONSE-PORT (RFC 5780 §7.5). */
  readonly responsePort?: number
  /** PADDING bytes to add (RFC 5780 §7.6). */
  readonly padding?: number
  readonly signal?: AbortSignal
}

/** Encode a Binding request with the RFC 5780 options and a FINGERPRINT. */
export function buildBindingRequest (options: BindingRequestOptions = {}, software?: string): Buffer {
  const b = new MessageBuilder(Method.Binding, MessageClass.Request)
  if (software !== undefined) b.add(Software, software)
  if (options.changeRequest !== undefined) b.add(ChangeRequest, options.changeRequest)
  if (options.responsePort !== undefined) b.add(ResponsePort, options.responsePort)
  if (options.padding !== undefined && options.padding > 0) b.add(Padding, Buffer.alloc(options.padding))
  return b.fingerprint().build()
}

/**
 * Read a Binding response. Throws StunErrorResponse for an error response and StunDecodeError when a success
 * response carries no mapped address or a malformed one.
 */
export function parseBindingResponse (message: StunMessage, from: Endpoint, local: Endpoint, rttMs: number): BindingResult {
  if (message.cls === MessageClass.ErrorResponse) {
    const error = message.get(ErrorCode) ?? { code: 500, reason: 'error response without ERROR-CODE' }
    throw new StunErrorResponse(error.code, error.reason, message)
  }
  const xor = message.classic ? undefined : message.get(XorMappedAddress)
  const plain = message.get(MappedAddress)
  const mapped = xor ?? plain
  if (mapped === undefined) throw new StunDecodeError('Binding response', 'neither XOR-MAPPED-ADDRESS nor MAPPED-ADDRESS')
  return {
    mapped,
    mappedAddress: plain,
    responseOrigin: message.get(ResponseOrigin) ?? message.get(SourceAddress),
    otherAddress: message.get(OtherAddress) ?? message.get(ChangedAddress),
    from,
    local,
    rttMs,
    software: message.get(Software)
  }
}

/** Options for StunClient. */
export interface StunClientOptions {
  /** Use this socket instead of binding one (the client then does not close it). */
  readonly socket?: DatagramSocket
  /** Local address to bind (default 0.0.0.0, or :: for family 6). */
  readonly localAddress?: string
  readonly localPort?: number
  readonly family?: 4 | 6
  readonly retransmit?: RetransmitOptions
  /** SOFTWARE to send in requests (default none). */
  readonly software?: string
  /** Receives datagrams that are not responses to this client's requests (e.g. a hairpinned request). */
  readonly onOther?: (data: Buffer, from: Endpoint) => void
}

/**
 * A STUN client on one UDP socket: many Binding requests, to many servers, in parallel, all from the same local
 * port — what NAT behaviour discovery needs.
 */
export class StunClient {
  readonly transactions: StunTransactions
  private constructor (readonly socket: DatagramSocket, private readonly owned: boolean, private readonly options: StunClientOptions) {
    this.transactions = new StunTransactions(socket, { retransmit: options.retransmit, onOther: options.onOther })
  }

  /** Bind a socket (unless one is given) and make a client. */
  static async create (options: StunClientOptions = {}): Promise<StunClient> {
    if (options.socket !== undefined) return new StunClient(options.socket, false, options)
    const socket = await UdpSocket.bind({ address: options.localAddress ?? (options.family === 6 ? '::' : '0.0.0.0'), port: options.localPort })
    return new StunClient(socket, true, options)
  }

  /** The local address of the client's socket. */
  get local (): Endpoint { return this.socket.local }

  /** One Binding transaction with `server`. */
  async binding (server: Endpoint, options: BindingRequestOptions = {}): Promise<BindingResult> {
    const request = buildBindingRequest(options, this.options.software)
    const res = await this.transactions.request(request, server, options)
    return parseBindingResponse(res.message, res.from, this.socket.local, res.rttMs)
  }

  /** Abort pending requests and close the socket if the client bound it. Idempotent. */
  async close (): Promise<void> {
    this.transactions.close()
    if (this.owned) await this.socket.close()
  }

  async [Symbol.asyncDispose] (): Promise<void> { await this.close() }
}

/** Options for stunBinding. */
export interface StunBindingOptions extends RetransmitOptions {
  readonly transport?: Transport
  readonly family?: 4 | 6
  /** Give up after this many ms in all (resolution, connection and transaction). */
  readonly timeoutMs?: number
  readonly tls?: TlsClientOptions
  readonly signal?: AbortSignal
  readonly software?: string
}

/** Result of stunBinding: the Binding result plus which server and transport answered. */
export interface StunBindingResult extends BindingResult {
  readonly server: ResolvedServer
  readonly transport: Transport
}

/**
 * One Binding request to `server` (`HOST[:PORT]`) over UDP, TCP or TLS (RFC 8489 §6, §8): resolves the name
 * (SRV when no port is given), tries each address in turn within the deadline, and returns the first answer.
 */
export async function stunBinding (server: string, options: StunBindingOptions = {}): Promise<StunBindingResult> {
  const transport = options.transport ?? 'udp'
  if (!['udp', 'tcp', 'tls'].includes(transport)) throw new InvalidArgumentError(`transport must be udp, tcp or tls, not ${String(transport)}`)
  const signals = [options.signal, options.timeoutMs !== undefined ? AbortSignal.timeout(options.timeoutMs) : undefined].filter((s): s is AbortSignal => s !== undefined)
  const signal = signals.length > 0 ? AbortSignal.any(signals) : undefined
  const targets = await resolveServer(server, { transport, family: options.family, signal })
  let lastError: unknown
  for (const target of targets) {
    if (signal?.aborted === true) break
    try {
      const result = transport === 'udp'
        ? await udpBinding(target, options, signal)
        : await streamBinding(target, transport, options, signal)
      return { ...result, server: target, transport }
    } catch (err) {
      if (err instanceof StunErrorResponse) throw err
      lastError = err
    }
  }
  if (signal?.aborted === true && options.signal?.aborted !== true && options.timeoutMs !== undefined) {
    throw new StunTimeoutError(server, options.timeoutMs)
  }
  if (lastError instanceof Error) throw lastError
  throw new AbortError()
}

async function udpBinding (target: ResolvedServer, options: StunBindingOptions, signal: AbortSignal | undefined): Promise<BindingResult> {
  const client = await StunClient.create({ family: ipFamily(target.address) === 6 ? 6 : 4, software: options.software })
  try {
    return await client.binding(target, { ...options, signal })
  } finally {
    await client.close()
  }
}

async function streamBinding (target: ResolvedServer, transport: 'tcp' | 'tls', options: StunBindingOptions, signal: AbortSignal | undefined): Promise<BindingResult> {
  const socket = await connectStream(target, { tls: transport === 'tls' ? (options.tls ?? {}) : false, signal, timeoutMs: options.timeoutMs })
  const tx = new StreamTransactions(socket)
  try {
    const begun = performance.now()
    const message = await tx.request(buildBindingRequest({}, options.software), { timeoutMs: options.reliableTimeoutMs, signal })
    const local = { address: socket.localAddress ?? '', port: socket.localPort ?? 0 }
    const from = { address: socket.remoteAddress ?? target.address, port: socket.remotePort ?? target.port }
    return parseBindingResponse(message, from, local, performance.now() - begun)
  } finally {
    tx.close()
  }
}
