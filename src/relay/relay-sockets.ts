import { createServer as createTcpServer, type Server, type Socket } from 'node:net'
import { createLogger } from '../log.js'
import { BatchUdpSocket } from '../net/batch-udp.js'
import type { Endpoint } from '../net/endpoint.js'
import { closeStream, listenStream } from '../net/listen.js'
import { bindDatagramSocket } from '../net/native.js'
import type { DatagramSocket } from '../net/udp.js'
import type { AdapterHost } from './adapter-host.js'

const log = createLogger('natcheck:relay:server')

/** A relayed transport address's socket: a UDP socket, or an RFC 6062 TCP listener (plus the address it binds to). */
export type RelaySocket =
  | { kind: 'udp', socket: DatagramSocket, bindAddress: string, copiesOnSend: boolean }
  | { kind: 'tcp', server: Server, bindAddress: string, port: number }

/**
 * The relay sockets of the TURN server adapter (RFC 8656 §7.2 "relayed transport address"): bound when the core
 * says `open-relay`, the outcome reported back (RFC 8656 §7.2: a port busy in the OS makes the core try another),
 * closed on `close-relay`. Peer datagrams go to the core; inbound peer TCP connections to `onPeerConnection`.
 */
export class RelaySockets {
  private readonly sockets = new Map<string, RelaySocket>()
  /** What the native fast path relayed through relay sockets closed since the last takeFast(). */
  private readonly closedFast: [number, number, number, number] = [0, 0, 0, 0]

  constructor (
    private readonly host: AdapterHost,
    private readonly options: {
      /** Batched I/O for UDP relay sockets (read when each is bound: reload may change it). */
      readonly native: () => boolean
      /** An inbound TCP connection on an RFC 6062 relay listener (paused). */
      readonly onPeerConnection: (relay: string, socket: Socket) => void
    }
  ) {}

  /** The socket of a relay key. */
  get (key: string): RelaySocket | undefined { return this.sockets.get(key) }

  /** Relay sockets open. */
  get size (): number { return this.sockets.size }

  /** Bind a relay socket and report the outcome to the core (`relayOpened`). */
  async open (key: string, protocol: 'udp' | 'tcp', address: string, port: number): Promise<void> {
    const host = this.host
    let result: { ok: true, bound: Endpoint } | { ok: false, inUse: boolean }
    try {
      if (protocol === 'udp') {
        const socket = await bindDatagramSocket({ address, port, native: this.options.native() })
        if (host.closing()) { await socket.close(); return }
        const copiesOnSend = socket instanceof BatchUdpSocket
        if (copiesOnSend) host.markNativeViews()
        // As for the listeners, `data` may be a view valid only during this call.
        socket.onMessage((data, from) => {
          if (host.closing()) return
          const actions = host.core.handlePeer(key, data, from, host.now())
          if (actions.length > 0) host.execute(actions)
        })
        this.sockets.set(key, { kind: 'udp', socket, bindAddress: address, copiesOnSend })
        result = { ok: true, bound: socket.local }
      } else {
        const server = createTcpServer({ pauseOnConnect: true }, (sock) => { this.options.onPeerConnection(key, sock) })
        const bound = await listenStream(server, { address, port })
        if (host.closing()) { server.close(); return }
        this.sockets.set(key, { kind: 'tcp', server, bindAddress: address, port: bound.port })
        result = { ok: true, bound }
      }
    } catch (err) {
      const code = ((err as Error & { cause?: { code?: string } }).cause?.code) ?? (err as { code?: string }).code
      log.trace('relay bind %s:%d failed: %s', address, port, (err as Error).message)
      result = { ok: false, inUse: code === 'EADDRINUSE' || code === 'EACCES' }
    }
    if (!host.closing()) host.execute(host.core.relayOpened(key, result, host.now()))
  }

  /** Client → peer on a UDP relay socket. `viewsShared`: some socket hands out views of a shared receive buffer. */
  send (key: string, peer: Endpoint, data: Uint8Array, viewsShared: boolean): void {
    const r = this.sockets.get(key)
    if (r?.kind !== 'udp') return
    // node:dgram sends later and keeps `data`: copy a view that the next native batch would overwrite.
    r.socket.send(r.copiesOnSend || !viewsShared ? data : Buffer.from(data), peer)
  }

  /** Close a relay socket (the core's `close-relay`). */
  close (key: string): void {
    const r = this.sockets.get(key)
    if (r === undefined) return
    this.sockets.delete(key)
    if (r.kind === 'udp') {
      if (r.socket instanceof BatchUdpSocket) addFast(this.closedFast, r.socket.takeFast())
      void r.socket.close()
    } else {
      r.server.close()
    }
  }

  /**
   * [client→peer packets, bytes, peer→client packets, bytes] the native fast path relayed through the UDP relay
   * sockets (open or closed since) since the last call.
   */
  takeFast (): [number, number, number, number] {
    const sum = this.closedFast
    const out: [number, number, number, number] = [sum[0], sum[1], sum[2], sum[3]]
    sum.fill(0)
    for (const r of this.sockets.values()) {
      if (r.kind === 'udp' && r.socket instanceof BatchUdpSocket) addFast(out, r.socket.takeFast())
    }
    return out
  }

  /** Close every relay socket; resolves when they are closed. */
  async closeAll (): Promise<void> {
    const waits: Array<Promise<unknown>> = []
    for (const r of this.sockets.values()) waits.push(r.kind === 'udp' ? r.socket.close() : closeStream(r.server))
    this.sockets.clear()
    await Promise.all(waits)
  }
}

function addFast (into: number[], c: readonly number[]): void {
  for (let i = 0; i < 4; i++) into[i] += c[i]
}
