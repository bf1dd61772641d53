import { EventEmitter } from 'node:events'
import { createServer as createTcpServer, type Server, type Socket } from 'node:net'
import { createServer as createTlsServer } from 'node:tls'
import { InvalidArgumentError } from '../errors.js'
import { createLogger } from '../log.js'
import type { ConnectionCloseReason } from '../net/connection-guard.js'
import { endpointKey, formatEndpoint, type Endpoint } from '../net/endpoint.js'
import { closeStream, listenStream } from '../net/listen.js'
import { StreamGuard } from '../net/stream-guard.js'
import { bindDatagramSocket } from '../net/native.js'
import { readTlsFiles } from '../net/tls-files.js'
import type { DatagramSocket } from '../net/udp.js'
import { HEADER_LENGTH } from './constants.js'
import { StunServerCore, type StunServerStats } from './server-core.js'
import { StreamFramer } from './stream-framer.js'

const log = createLogger('natcheck:stun:server')

/** How many times StunServer.start picks a fresh port set when a picked port is taken for TCP. */
const PORT_PICK_ATTEMPTS = 8

/** Whether `err` (or its cause) is EADDRINUSE. */
function addressInUse (err: unknown): boolean {
  for (let e = err as { code?: string, cause?: unknown } | undefined, depth = 0; e !== undefined && e !== null && depth < 4; e = e.cause as typeof e, depth++) {
    if (e.code === 'EADDRINUSE') return true
  }
  return false
}

/** TLS listener settings. */
export interface StunTlsOptions {
  /** Where to listen (default: the primary IP on port 5349). */
  readonly listen?: Endpoint
  /** PEM certificate chain and key, as file paths. */
  readonly certFile: string
  readonly keyFile: string
}

/** Options for StunServer.start. */
export interface StunServerOptions {
  /** Primary IP and port (port 0 picks a free one). */
  readonly listen: Endpoint
  /** Alternate IP and port for RFC 5780 (port 0 picks a free one). */
  readonly alternate?: Endpoint
  /** Also serve STUN over TCP on the same addresses. */
  readonly tcp?: boolean
  readonly tls?: StunTlsOptions
  readonly software?: string
  /** UDP socket buffer size (default 4 MiB). */
  readonly bufferSize?: number
  /** Batched datagram I/O through the native addon when it is built (default true; NATKIT_NATIVE=0 also turns it off). */
  readonly nativeIo?: boolean
  /** Most simultaneous TCP/TLS connections (default 1024); more are refused. */
  readonly maxConnections?: number
  /**
   * A TCP/TLS connection without a complete STUN message for this many ms is closed (default 30 000). Partial bytes
   * do not count, so a slow trickle does not keep a connection open.
   */
  readonly idleTimeoutMs?: number
  /** A TCP/TLS connection (TLS handshake included) must send its first complete STUN message within this (default 5000 ms). */
  readonly firstMessageTimeoutMs?: number
  /**
   * Concurrent TCP/TLS connections per source (IPv4 address or IPv6 /64); the newest beyond it is refused
   * (default 32). Nothing authenticates on a STUN server, so every connection counts.
   */
  readonly maxConnectionsPerIp?: number
  /**
   * A TCP/TLS connection whose queued response bytes pass this is closed (default 256 KiB): a client that sends
   * requests and never reads the answers would otherwise grow the queue without bound.
   */
  readonly maxQueuedBytes?: number
}

/** Connection-level figures of a StunServer's TCP/TLS listeners. */
export interface StunConnectionStats {
  /** TCP/TLS connections open now (TLS ones from before their handshake). */
  readonly open: number
  /** Connections refused or closed by the limits, by reason. */
  readonly closed: Readonly<Record<ConnectionCloseReason, number>>
}

/** Where a running server listens. */
export interface StunServerAddresses {
  readonly udp: Endpoint[]
  readonly tcp: Endpoint[]
  readonly tls: Endpoint[]
}

/** Events of StunServer. */
export interface StunServerEvents {
  /** A datagram was dropped (counted in stats). */
  ignored: [reason: string, from: Endpoint]
}

/**
 * A STUN server on UDP, and optionally TCP and TLS (RFC 8489 §6.3); with an alternate address it is a full RFC 5780
 * server. A thin adapter around StunServerCore: sockets in, actions out.
 */
export class StunServer extends EventEmitter<StunServerEvents> {
  private readonly udp = new Map<string, DatagramSocket>()
  private readonly streamServers: Array<{ server: Server, local: Endpoint, kind: 'tcp' | 'tls' }> = []
  private readonly connections = new Set<Socket>()
  private readonly guard: StreamGuard
  private closing: Promise<void> | undefined

  private constructor (readonly core: StunServerCore, private readonly options: StunServerOptions) {
    super()
    this.guard = new StreamGuard({
      firstMessageTimeoutMs: options.firstMessageTimeoutMs,
      idleTimeoutMs: options.idleTimeoutMs ?? 30_000,
      maxUnauthenticatedPerIp: options.maxConnectionsPerIp,
      maxQueuedBytes: options.maxQueuedBytes
    })
  }

  /**
   * Bind every socket and start serving. Rejects with TransportError when an address cannot be bound.
   *
   * With port 0 the OS picks the UDP port and the TCP listener takes the same number, which another TCP socket may
   * hold (a client connection's ephemeral port): then every socket is closed and the whole set picked again, at most
   * 8 times (PORT_PICK_ATTEMPTS).
   */
  static async start (options: StunServerOptions): Promise<StunServer> {
    const picked = options.listen.port === 0 || options.alternate?.port === 0
    // The UDP sockets of a failed attempt stay bound until the end, so the OS does not hand out their ports again.
    const held: DatagramSocket[] = []
    try {
      for (let attempt = 1; ; attempt++) {
        try {
          return await StunServer.bindAll(options, picked ? held : undefined)
        } catch (err) {
          if (!picked || attempt >= PORT_PICK_ATTEMPTS || !addressInUse(err)) throw err
          log('a port the OS picked is taken for TCP (%s); picking again (%d/%d)', (err as Error).message, attempt, PORT_PICK_ATTEMPTS)
        }
      }
    } finally {
      await Promise.all(held.map(async s => { await s.close() }))
    }
  }

  private static async bindAll (options: StunServerOptions, holdOnPortClash?: DatagramSocket[]): Promise<StunServer> {
    const bufferSize = options.bufferSize ?? 4 * 1024 * 1024
    const bind = async (address: string, port: number): Promise<DatagramSocket> => await bindDatagramSocket({ address, port, bufferSize, native: options.nativeIo })
    const primarySocket = await bind(options.listen.address, options.listen.port)
    const sockets: DatagramSocket[] = [primarySocket]
    let server: StunServer | undefined
    try {
      const primary = primarySocket.local
      let alternate: Endpoint | undefined
      if (options.alternate !== undefined) {
        if (options.alternate.address === options.listen.address) {
          throw new InvalidArgumentError('--alternate needs a second IP address (RFC 5780 changes the IP and the port); on loopback use 127.0.0.2')
        }
        // (IP1,P2) first, so P2 is known; then (IP2,P1) and (IP2,P2).
        const s2 = await bind(primary.address, options.alternate.port)
        sockets.push(s2)
        alternate = { address: options.alternate.address, port: s2.local.port }
        sockets.push(await bind(alternate.address, primary.port))
        sockets.push(await bind(alternate.address, alternate.port))
      }
      const core = new StunServerCore({ primary, alternate, software: options.software })
      server = new StunServer(core, options)
      for (const s of sockets) server.attachUdp(s)
      if (options.tcp === true) {
        for (const local of core.localAddresses()) await server.listenStream('tcp', local)
      }
      if (options.tls !== undefined) {
        await server.listenStream('tls', options.tls.listen ?? { address: primary.address, port: 5349 })
      }
      return server
    } catch (err) {
      // TCP/TLS listeners opened before the failure close again (the UDP sockets too, unless held for a new pick).
      await Promise.all((server?.streamServers ?? []).map(async x => { await closeStream(x.server) }))
      if (holdOnPortClash !== undefined && addressInUse(err)) holdOnPortClash.push(...sockets)
      else await Promise.all(sockets.map(async s => { await s.close() }))
      throw err
    }
  }

  /** Counters from the protocol core. */
  get stats (): StunServerStats { return this.core.stats }

  /** TCP/TLS connections open, and those the connection limits refused or closed. */
  get connectionStats (): StunConnectionStats {
    return { open: this.guard.size, closed: { ...this.guard.closedBy } }
  }

  /** Where the server listens. */
  addresses (): StunServerAddresses {
    return {
      udp: [...this.udp.values()].map(s => s.local),
      tcp: this.streamServers.filter(s => s.kind === 'tcp').map(s => s.local),
      tls: this.streamServers.filter(s => s.kind === 'tls').map(s => s.local)
    }
  }

  private attachUdp (socket: DatagramSocket): void {
    const local = socket.local
    this.udp.set(endpointKey(local), socket)
    socket.onMessage((data, from) => {
      const action = this.core.handle(data, from, local)
      if (action.type === 'send') {
        const via = action.via === local ? socket : this.udp.get(endpointKey(action.via))
        via?.send(action.data, action.to)
      } else {
        log.trace('ignored datagram from %s: %s %s', formatEndpoint(from), action.reason, action.detail ?? '')
        if (this.listenerCount('ignored') > 0) this.emit('ignored', action.reason, from)
      }
    })
  }

  private async listenStream (kind: 'tcp' | 'tls', local: Endpoint): Promise<void> {
    const onConnection = (socket: Socket): void => { this.serveConnection(socket, local) }
    let server: Server
    if (kind === 'tls') {
      const { cert, key } = await readTlsFiles(this.options.tls as StunTlsOptions)
      server = createTlsServer({ cert, key }, onConnection)
    } else {
      server = createTcpServer(onConnection)
    }
    server.maxConnections = this.options.maxConnections ?? 1024
    this.guard.watch(server)
    const bound = await listenStream(server, local, { exclusive: false, label: kind.toUpperCase() })
    this.streamServers.push({ server, local: bound, kind })
  }

  private serveConnection (socket: Socket, local: Endpoint): void {
    socket.on('error', () => { /* reset by peer etc.: nothing to do but close */ })
    // Refused (too many from its source) or closed (a deadline passed, e.g. during the TLS handshake) by the guard.
    if (!this.guard.adopt(socket)) { socket.destroy(); return }
    this.connections.add(socket)
    const from = { address: socket.remoteAddress ?? '', port: socket.remotePort ?? 0 }
    const framer = new StreamFramer('stun')
    socket.on('close', () => { this.connections.delete(socket) })
    socket.on('data', (chunk: Buffer) => {
      framer.push(chunk)
      for (let n = 0; n < 1000; n++) {
        // A STUN-only stream carries nothing but STUN: any other first byte (ChannelData included) ends it now,
        // rather than waiting for a length that was never meant as one.
        const frame = framer.next()
        if (frame.kind === 'incomplete') break
        if (frame.kind !== 'stun') {
          // Not STUN: the stream cannot be re-synchronised, so close it.
          this.core.stats.ignored['not-stun']++
          socket.destroy()
          return
        }
        this.guard.message(socket)
        const action = this.core.handle(frame.frame, from, local, true)
        // A peer that does not read its answers is closed once they pass the queue bound.
        if (action.type === 'send' && !this.guard.write(socket, action.data)) return
      }
      if (framer.buffered > HEADER_LENGTH + 0xffff) socket.destroy()
    })
  }

  /** Stop listening, close every socket and connection. Idempotent. */
  close (): Promise<void> {
    this.closing ??= (async () => {
      this.guard.stop()
      for (const c of this.connections) c.destroy()
      await Promise.all([
        ...[...this.udp.values()].map(async s => { await s.close() }),
        ...this.streamServers.map(async s => { await closeStream(s.server) })
      ])
    })()
    return this.closing
  }

  async [Symbol.asyncDispose] (): Promise<void> { await this.close() }
}
