import type { Socket } from 'node:net'
import { createLogger } from '../log.js'
import { endpointKey, type Endpoint } from '../net/endpoint.js'
import type { StreamGuard } from '../net/stream-guard.js'
import { StreamFramer } from '../stun/stream-framer.js'
import type { AdapterHost } from './adapter-host.js'
import type { ClientProtocol, ClientTransport } from './types.js'

const log = createLogger('natcheck:relay:server')

/** A client's TCP or TLS connection to the relay. */
export interface ClientConnection {
  readonly id: string
  readonly socket: Socket
  readonly transport: ClientTransport
  readonly remote: Endpoint
  readonly framer: StreamFramer
  /** RFC 6062 client data connection: no more STUN, bytes go to this peer connection. */
  dataFor?: number
}

/**
 * The TURN server's client TCP/TLS connections (RFC 8656 §3.1, §12.5): accepted under the connection guard, cut into
 * STUN and ChannelData frames for the core, answered through the guard's bounded write queue, and reported to the
 * core when they close (the allocation on the 5-tuple ends with its connection).
 */
export class ClientConnections {
  private readonly byId = new Map<string, ClientConnection>()
  /** TCP/TLS connections by protocol and remote endpoint, to find the one an allocation event names. */
  private readonly byRemote = new Map<string, ClientConnection>()
  private next = 1

  constructor (
    private readonly host: AdapterHost,
    private readonly guard: StreamGuard,
    private readonly options: {
      /** Most simultaneous connections (read per connection: reload may change it). */
      readonly maxConnections: () => number
      /** Bytes that followed a ConnectionBind in the same read: they belong to the peer (RFC 6062 §5.4). */
      readonly toPeer: (connectionId: number, bytes: Buffer) => void
    }
  ) {}

  /** Connections open. */
  get size (): number { return this.byId.size }

  /** The connection of a transport (undefined for UDP or once closed). */
  get (transport: ClientTransport): ClientConnection | undefined {
    return transport.connection === undefined ? undefined : this.byId.get(transport.connection)
  }

  /** The connection a client's allocation event names. */
  find (protocol: ClientProtocol, remote: Endpoint): ClientConnection | undefined {
    return this.byRemote.get(`${protocol}|${endpointKey(remote)}`)
  }

  /** A connection a client-facing TCP or TLS listener accepted (for TLS: once its handshake is done). */
  accept (socket: Socket, protocol: ClientProtocol): void {
    const host = this.host
    socket.on('error', (err) => { log.trace('connection error: %s', err.message) })
    // Refused (too many unauthenticated from its source) or closed (a deadline passed during the TLS handshake).
    if (!this.guard.adopt(socket)) { socket.destroy(); return }
    if (host.closing() || this.byId.size >= this.options.maxConnections()) {
      host.metrics.inc('natkit_relay_dropped_total', 'connection-limit')
      socket.destroy()
      return
    }
    const remoteAddress = socket.remoteAddress
    const remotePort = socket.remotePort
    if (remoteAddress === undefined || remotePort === undefined) { socket.destroy(); return }
    const id = `c${this.next++}`
    const local = { address: socket.localAddress ?? '', port: socket.localPort ?? 0 }
    const conn: ClientConnection = {
      id, socket, transport: { protocol, local, connection: id }, remote: { address: remoteAddress, port: remotePort }, framer: new StreamFramer('stun-or-channel-data')
    }
    this.byId.set(id, conn)
    const remoteKey = `${protocol}|${endpointKey(conn.remote)}`
    this.byRemote.set(remoteKey, conn)
    host.metrics.set('natkit_relay_client_connections', this.byId.size)
    socket.setNoDelay(true)
    socket.on('data', (chunk: Buffer) => { this.onData(conn, chunk) })
    socket.on('close', () => {
      this.byId.delete(id)
      if (this.byRemote.get(remoteKey) === conn) this.byRemote.delete(remoteKey)
      host.metrics.set('natkit_relay_client_connections', this.byId.size)
      if (!host.closing()) host.execute(host.core.transportClosed(conn.remote, conn.transport, host.now()))
    })
  }

  private onData (conn: ClientConnection, chunk: Buffer): void {
    const host = this.host
    try {
      if (conn.dataFor !== undefined) return // piped; see PeerConnections.bind
      conn.framer.push(chunk)
      while (conn.framer.buffered > 0 && conn.dataFor === undefined) {
        const frame = conn.framer.next(host.core.channelOptions)
        if (frame.kind === 'incomplete') break
        if (frame.kind === 'invalid') {
          // A stream that lost its framing cannot be resynchronised: count it and close (RFC 8656 §12.5).
          host.metrics.inc('natkit_relay_malformed_total', 'stream-framing')
          log.trace('closing %s: %s', conn.id, frame.reason)
          conn.socket.destroy()
          return
        }
        this.guard.message(conn.socket)
        host.execute(host.core.handle(frame.frame, conn.remote, conn.transport, host.now()))
      }
      if (conn.dataFor !== undefined && conn.framer.buffered > 0) {
        // Bytes after the ConnectionBind belong to the peer (RFC 6062 §5.4).
        this.options.toPeer(conn.dataFor, conn.framer.take())
      }
    } catch (err) {
      log.error('stream handler failed: %O', err)
      conn.socket.destroy()
    }
  }

  /** Send to a client over its connection; one that does not read is closed once its queue passes the bound. */
  send (transport: ClientTransport, data: Uint8Array): void {
    const conn = this.get(transport)
    if (conn === undefined || conn.socket.destroyed) return
    this.guard.write(conn.socket, data)
  }

  /** Close every connection. */
  destroyAll (): void {
    for (const c of this.byId.values()) c.socket.destroy()
    this.byId.clear()
  }
}
