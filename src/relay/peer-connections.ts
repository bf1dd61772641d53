import { connect as tcpConnect, type Socket } from 'node:net'
import { TransportError } from '../errors.js'
import { createLogger } from '../log.js'
import { ipFamily, type Endpoint } from '../net/endpoint.js'
import type { StreamGuard } from '../net/stream-guard.js'
import type { AdapterHost } from './adapter-host.js'
import type { ClientConnection, ClientConnections } from './client-connections.js'
import type { RelaySockets } from './relay-sockets.js'
import type { ClientTransport } from './types.js'

const log = createLogger('natcheck:relay:server')

/** RFC 6062 §5.2: the server's TCP connect to a peer is abandoned after 30 s (then 447). */
const CONNECT_TIMEOUT_MS = 30_000

interface PeerTcp {
  socket: Socket
  data?: ClientConnection
}

/**
 * The sockets of RFC 6062 (TURN extensions for TCP allocations): peer data connections the relay makes (Connect,
 * §5.2) or accepts on a relayed address (§5.3), joined to a client data connection by ConnectionBind (§5.4) and
 * piped both ways from then on. The state and the timers are the core's (tcp-relay.ts); this owns the sockets.
 */
export class PeerConnections {
  private readonly peers = new Map<number, PeerTcp>()

  constructor (
    private readonly host: AdapterHost,
    private readonly relays: RelaySockets,
    private readonly clients: ClientConnections,
    private readonly guard: StreamGuard
  ) {}

  /** An inbound TCP connection from a peer on a TCP allocation's relayed address (RFC 6062 §5.3). */
  accepted (relay: string, sock: Socket): void {
    const host = this.host
    const peer = { address: sock.remoteAddress ?? '', port: sock.remotePort ?? 0 }
    const { connectionId, actions } = host.core.peerConnectionAccepted(relay, peer, host.now())
    if (connectionId === undefined) { sock.destroy(); host.execute(actions); return }
    // The socket stays paused ("the server MUST buffer any data received from the peer"): TCP flow control does it.
    this.track(connectionId, sock)
    host.execute(actions)
  }

  private track (id: number, sock: Socket): void {
    const host = this.host
    this.peers.set(id, { socket: sock })
    sock.on('error', (err) => { log.trace('peer connection %d: %s', id, err.message) })
    sock.on('close', () => {
      const p = this.peers.get(id)
      this.peers.delete(id)
      p?.data?.socket.end()
      if (!host.closing()) host.execute(host.core.tcpConnectionClosed(id, host.now()))
    })
  }

  /** The core's `tcp-connect`: connect to the peer from the relayed address (RFC 6062 §5.2) and report the outcome. */
  connect (id: number, relayKey: string, peer: Endpoint): void {
    const host = this.host
    const relay = this.relays.get(relayKey)
    const local = relay?.kind === 'tcp' ? { localAddress: relay.bindAddress, localPort: relay.port } : {}
    const attempt = (withPort: boolean): void => {
      const sock = tcpConnect({ host: peer.address, port: peer.port, family: ipFamily(peer.address) || undefined, ...(withPort ? local : { localAddress: (local as { localAddress?: string }).localAddress }) })
      sock.pause()
      const timer = setTimeout(() => { sock.destroy(new TransportError('connect timeout')) }, CONNECT_TIMEOUT_MS)
      timer.unref()
      sock.once('connect', () => {
        clearTimeout(timer)
        this.track(id, sock)
        host.execute(host.core.peerConnectResult(id, true, host.now()))
      })
      sock.once('error', (err: Error & { code?: string }) => {
        clearTimeout(timer)
        if (this.peers.get(id)?.socket === sock) return
        // The relayed port is also the listener's; if the OS refuses to share it, connect from an ephemeral port.
        if (withPort && (err.code === 'EADDRINUSE' || err.code === 'EADDRNOTAVAIL')) { attempt(false); return }
        if (!host.closing()) host.execute(host.core.peerConnectResult(id, false, host.now()))
      })
    }
    attempt(relay?.kind === 'tcp')
  }

  /** The core's `tcp-bind`: the ConnectionBind succeeded (RFC 6062 §5.4); pipe the two connections. */
  bind (id: number, transport: ClientTransport): void {
    const metrics = this.host.metrics
    const peer = this.peers.get(id)
    const conn = this.clients.get(transport)
    if (peer === undefined || conn === undefined) {
      if (conn !== undefined) conn.socket.end()
      return
    }
    conn.dataFor = id
    peer.data = conn
    // A successful ConnectionBind authenticates the data connection (RFC 6062 §5.4).
    this.guard.authenticated(conn.socket)
    conn.socket.removeAllListeners('data')
    conn.socket.on('data', (chunk: Buffer) => {
      metrics.inc('natkit_relay_bytes_total', 'client-to-peer', chunk.length)
      if (!peer.socket.write(chunk)) { conn.socket.pause(); peer.socket.once('drain', () => conn.socket.resume()) }
    })
    peer.socket.on('data', (chunk: Buffer) => {
      metrics.inc('natkit_relay_bytes_total', 'peer-to-client', chunk.length)
      if (!conn.socket.write(chunk)) { peer.socket.pause(); conn.socket.once('drain', () => peer.socket.resume()) }
    })
    conn.socket.on('close', () => { peer.socket.destroy() })
    peer.socket.resume()
  }

  /** Bytes from the client data connection that came with its ConnectionBind. */
  write (id: number, bytes: Buffer): void {
    this.peers.get(id)?.socket.write(bytes)
  }

  /** The core's `tcp-close`. */
  close (id: number): void {
    const p = this.peers.get(id)
    if (p === undefined) return
    this.peers.delete(id)
    p.socket.destroy()
    p.data?.socket.destroy()
  }

  /** Close every peer connection (shutdown). */
  destroyAll (): void {
    for (const p of this.peers.values()) p.socket.destroy()
    this.peers.clear()
  }
}
