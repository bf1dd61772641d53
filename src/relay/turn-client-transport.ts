import type { Socket } from 'node:net'
import { sameTransportAddress, type Endpoint } from '../net/endpoint.js'
import { connectStream, type TlsClientOptions } from '../net/stream.js'
import type { DatagramSocket } from '../net/udp.js'
import { bindDatagramSocket } from '../net/native.js'
import { StunTransactions, type RetransmitOptions, type StunMessage } from '../stun/index.js'
import { StreamTransactions } from '../stun/stream-transactions.js'

/**
 * How a TURN client talks to its server: requests with responses, and a raw write for indications and ChannelData.
 * Everything the server sends that is not a response (Data indications, ChannelData, ConnectionAttempt) goes to the
 * `onServerFrame` callback; datagrams from anyone else on a shared UDP socket go to `onOther`.
 */
export interface TurnTransport {
  readonly kind: 'udp' | 'tcp' | 'tls'
  readonly local: Endpoint
  readonly server: Endpoint
  request (data: Uint8Array, options: { signal?: AbortSignal }): Promise<StunMessage>
  write (data: Uint8Array): void
  close (): Promise<void>
  /** Set when a stream transport's connection is lost (UDP never is). */
  onLost?: () => void
}

/** Options to open a transport. */
export interface TurnTransportOptions {
  readonly server: Endpoint & { host?: string }
  readonly kind: 'udp' | 'tcp' | 'tls'
  readonly socket?: DatagramSocket
  readonly localAddress?: string
  readonly tls?: TlsClientOptions
  readonly retransmit?: RetransmitOptions
  readonly onServerFrame: (frame: Buffer) => void
  readonly onOther?: (data: Buffer, from: Endpoint) => void
  readonly signal?: AbortSignal
}

/** Open a UDP, TCP or TLS transport to the TURN server. */
export async function openTurnTransport (o: TurnTransportOptions): Promise<TurnTransport> {
  if (o.kind === 'udp') {
    const owned = o.socket === undefined
    const socket = o.socket ?? await bindDatagramSocket({ address: o.localAddress ?? (o.server.address.includes(':') ? '::' : '0.0.0.0') })
    const tx = new StunTransactions(socket, {
      retransmit: o.retransmit,
      onOther: (data, from) => {
        if (sameTransportAddress(from, o.server)) {
          // Data indications and ChannelData may be views valid only during this call: copy once.
          o.onServerFrame(Buffer.from(data))
        } else {
          o.onOther?.(data, from)
        }
      }
    })
    return {
      kind: 'udp',
      local: socket.local,
      server: o.server,
      request: async (data, r) => (await tx.request(data, o.server, { signal: r.signal })).message,
      write: (data) => { socket.send(data, o.server) },
      close: async () => { tx.close(); if (owned) await socket.close() }
    }
  }
  const stream: Socket = await connectStream(o.server, { tls: o.kind === 'tls' ? (o.tls ?? {}) : false, localAddress: o.localAddress, signal: o.signal })
  const transport: TurnTransport = {
    kind: o.kind,
    local: { address: stream.localAddress ?? '', port: stream.localPort ?? 0 },
    server: o.server,
    request: async (data, r) => await tx.request(data, { signal: r.signal, timeoutMs: o.retransmit?.reliableTimeoutMs }),
    write: (data) => { tx.write(data) },
    close: async () => { tx.close() }
  }
  const tx = new StreamTransactions(stream, (frame) => { o.onServerFrame(frame) })
  stream.once('close', () => { transport.onLost?.() })
  return transport
}
