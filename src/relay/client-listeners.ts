import { createServer as createTcpServer, type Server, type Socket } from 'node:net'
import { createServer as createTlsServer, type Server as TlsServer } from 'node:tls'
import { createLogger } from '../log.js'
import { BatchUdpSocket } from '../net/batch-udp.js'
import { endpointKey, formatEndpoint, sameEndpoint, type Endpoint } from '../net/endpoint.js'
import { closeStream, listenStream } from '../net/listen.js'
import { bindDatagramSocket } from '../net/native.js'
import type { StreamGuard, StreamGuardObserver } from '../net/stream-guard.js'
import type { TlsCredentials } from '../net/tls-files.js'
import type { DatagramSocket } from '../net/udp.js'
import type { AdapterHost } from './adapter-host.js'
import type { ClientProtocol, ClientTransport } from './types.js'

const log = createLogger('natcheck:relay:server')

/** A client-facing UDP listener: the socket, its 5-tuple half (one object for every packet), and whether send() copies. */
export interface UdpListener {
  readonly socket: DatagramSocket
  readonly transport: ClientTransport
  /** BatchUdpSocket copies on send(); node:dgram keeps a reference until the datagram is sent. */
  readonly copiesOnSend: boolean
}

interface StreamListener {
  /** Undefined when another process listens and hands the connections over (ListenOptions.handoff). */
  readonly server: Server | undefined
  readonly local: Endpoint
}

/** The listeners of one configured address: UDP and TCP on one port (`listen`), or TLS (`tls.listen`). */
interface ListenerSet {
  readonly key: string
  udp?: UdpListener
  tcp?: StreamListener
  tls?: StreamListener
}

/** How to open the listeners of a `listen` address. */
export interface ListenOptions {
  readonly udp: boolean
  readonly tcp: boolean
  readonly nativeIo: boolean
  readonly udpBufferSize?: number
  readonly reusePort: boolean
  /**
   * TCP and TLS are listened on by another process (the relay's primary), which hands the connections over
   * (ClientListeners.adopt): open no TCP or TLS listener, only list their addresses.
   */
  readonly handoff?: boolean
}

/** Where a TurnServer listens, by protocol (the arrays change in place when reload adds or removes listeners). */
export interface ListenAddresses {
  readonly udp: Endpoint[]
  readonly tcp: Endpoint[]
  readonly tls: Endpoint[]
}

/** The key of a configured listen address (UDP+TCP) or TLS listen address. */
export function listenerKey (kind: 'listen' | 'tls', ep: Endpoint): string {
  return `${kind}|${formatEndpoint(ep)}`
}

/**
 * The TURN server's client-facing listeners (RFC 8656 §3.1, RFC 8489 §6.2): UDP sockets (batched I/O when the native
 * addon is built), TCP listeners on the same ports, and TLS listeners, each connection watched by the connection
 * guard. Listeners are kept by their configured address, so that a reload can open new ones and close removed ones.
 */
export class ClientListeners {
  /** UDP listeners by local endpoint. */
  private readonly udpByLocal = new Map<string, UdpListener>()
  /** The same listeners by their (stable) transport object: the per-packet lookup builds no key. */
  private readonly udpByTransport = new Map<ClientTransport, UdpListener>()
  private readonly sets = new Map<string, ListenerSet>()
  /** UDP listeners of removed addresses, open while allocations made through them live (see retire). */
  private readonly retiring = new Map<string, ListenerSet>()
  readonly addresses: ListenAddresses = { udp: [], tcp: [], tls: [] }
  /** Servers that listen nowhere: they take handed-over connections (guarded; TLS ones are handshaken here). */
  private handoffTcp: Server | undefined
  private handoffTls: TlsServer | undefined
  private tlsCredentials: TlsCredentials | undefined

  constructor (
    private readonly host: AdapterHost,
    private readonly guard: StreamGuard,
    private readonly handlers: {
      /** A datagram on a UDP listener (`data` may be a view valid only during the call). */
      readonly onUdp: (listener: UdpListener, data: Buffer, from: Endpoint) => void
      /** A TCP connection, or a TLS one once its handshake is done. */
      readonly onConnection: (socket: Socket, protocol: ClientProtocol) => void
    }
  ) {}

  /** The UDP listener a transport came in on. */
  udp (transport: ClientTransport): UdpListener | undefined {
    return this.udpByTransport.get(transport) ?? this.udpByLocal.get(endpointKey(transport.local))
  }

  /** Every open UDP listener socket (retired ones included). */
  udpSockets (): DatagramSocket[] {
    return [...this.udpByTransport.values()].map(l => l.socket)
  }

  /** Configured listen keys open now (retired ones excluded). */
  keys (): string[] { return [...this.sets.keys()] }

  /** Whether a configured address has its listeners open. */
  has (key: string): boolean { return this.sets.has(key) }

  /** TLS listeners open. */
  get tlsCount (): number {
    let n = 0
    for (const s of this.sets.values()) if (s.tls !== undefined) n++
    return n
  }

  /**
   * Open the UDP and TCP listeners of a `listen` address (TCP on the port UDP got, when port 0 was asked). On failure
   * what was opened for it is closed again, and the TransportError is thrown.
   */
  async open (ep: Endpoint, o: ListenOptions): Promise<void> {
    const set: ListenerSet = { key: listenerKey('listen', ep) }
    // An address removed and given again while its UDP socket still serves allocations: that socket serves again.
    const revived = this.retiring.get(set.key)?.udp
    try {
      if (revived !== undefined) {
        this.retiring.delete(set.key)
        set.udp = revived
        this.addresses.udp.push(revived.socket.local)
      } else if (o.udp) {
        const s = await bindDatagramSocket({ address: ep.address, port: ep.port, native: o.nativeIo, bufferSize: o.udpBufferSize, reusePort: o.reusePort })
        const listener: UdpListener = { socket: s, transport: { protocol: 'udp', local: s.local }, copiesOnSend: s instanceof BatchUdpSocket }
        if (listener.copiesOnSend) this.host.markNativeViews()
        set.udp = listener
        this.udpByLocal.set(endpointKey(s.local), listener)
        this.udpByTransport.set(listener.transport, listener)
        this.addresses.udp.push(s.local)
        // `data` may be a view valid only during this call (BatchUdpSocket): the core copies what it keeps, and
        // everything it forwards is sent before the handler returns.
        s.onMessage((data, from) => { this.handlers.onUdp(listener, data, from) })
      }
      if (o.tcp && o.handoff === true) {
        const local = { address: ep.address, port: set.udp !== undefined ? set.udp.socket.local.port : ep.port }
        set.tcp = { server: undefined, local }
        this.addresses.tcp.push(local)
      } else if (o.tcp) {
        const port = set.udp !== undefined ? set.udp.socket.local.port : ep.port
        const srv = createTcpServer((sock) => { this.handlers.onConnection(sock, 'tcp') })
        this.guard.watch(srv)
        const local = await listenStream(srv, { address: ep.address, port }, { exclusive: !o.reusePort })
        set.tcp = { server: srv, local }
        this.addresses.tcp.push(local)
      }
    } catch (err) {
      if (revived !== undefined && set.udp === revived) {
        // Back to retiring: the allocations through it do not end because a TCP listener could not be opened.
        set.udp = undefined
        remove(this.addresses.udp, revived.socket.local)
        this.retiring.set(set.key, { key: set.key, udp: revived })
      }
      await this.closeSet(set)
      throw err
    }
    this.sets.set(set.key, set)
  }

  /** Open a TLS listener with this certificate and key (with `handoff`, only list its address: see ListenOptions). */
  async openTls (ep: Endpoint, credentials: TlsCredentials, reusePort: boolean, handoff = false): Promise<void> {
    this.tlsCredentials = credentials
    let tls: StreamListener
    if (handoff) {
      tls = { server: undefined, local: ep }
    } else {
      const srv = this.tlsServer(credentials)
      tls = { server: srv, local: await listenStream(srv, ep, { exclusive: !reusePort, label: 'TLS' }) }
    }
    const set: ListenerSet = { key: listenerKey('tls', ep), tls }
    this.addresses.tls.push(tls.local)
    this.sets.set(set.key, set)
  }

  private tlsServer (credentials: TlsCredentials): TlsServer {
    const metrics = this.host.metrics
    const srv: TlsServer = createTlsServer({ cert: credentials.cert, key: credentials.key }, (sock) => { this.handlers.onConnection(sock, 'tls') })
    srv.on('tlsClientError', (err) => { log.trace('TLS handshake failed: %s', err.message); metrics.inc('natkit_relay_malformed_total', 'tls-handshake') })
    this.guard.watch(srv)
    return srv
  }

  /** New certificate and key for every TLS listener (connections made from now on use them). */
  setSecureContext (credentials: TlsCredentials): void {
    this.tlsCredentials = credentials
    for (const s of this.sets.values()) (s.tls?.server as TlsServer | undefined)?.setSecureContext({ cert: credentials.cert, key: credentials.key })
    this.handoffTls?.setSecureContext({ cert: credentials.cert, key: credentials.key })
  }

  /**
   * Serve a connection that another process accepted on one of these listeners and handed over (ListenOptions.handoff):
   * guarded as if accepted here. `preRead`: the bytes that process already read from it (TCP; a TLS connection comes
   * untouched and is handshaken here). `observer` hears when it authenticates and when it ends (at once when the
   * guard refuses it).
   */
  adopt (socket: Socket, protocol: ClientProtocol, preRead: Uint8Array | undefined, observer?: StreamGuardObserver): void {
    let server: Server
    if (protocol === 'tls') {
      const credentials = this.tlsCredentials
      if (credentials === undefined) { socket.destroy(); observer?.closed?.(); return }
      this.handoffTls ??= this.tlsServer(credentials)
      server = this.handoffTls
    } else {
      if (this.handoffTcp === undefined) {
        this.handoffTcp = createTcpServer((sock) => { this.handlers.onConnection(sock, 'tcp') })
        this.guard.watch(this.handoffTcp)
      }
      server = this.handoffTcp
      // Read again first, before what the kernel still holds for it.
      if (preRead !== undefined && preRead.length > 0) socket.unshift(Buffer.from(preRead.buffer, preRead.byteOffset, preRead.byteLength))
    }
    // The guard (a prepended 'connection' listener) tracks it first; the server's handler adopts it.
    server.emit('connection', socket)
    if (observer !== undefined && !this.guard.observe(socket, observer)) observer.closed?.()
  }

  /**
   * A configured address was removed: its TCP and TLS listeners close now (connections they accepted stay open);
   * its UDP listener leaves `addresses` but stays open while `inUse` says allocations made through it live (then
   * closeRetired closes it). Returns the listeners that take no new allocations from now on.
   */
  async retire (key: string, inUse: (udp: UdpListener) => boolean): Promise<Array<{ protocol: ClientProtocol, local: Endpoint }>> {
    const set = this.sets.get(key)
    if (set === undefined) return []
    this.sets.delete(key)
    const closed: Array<{ protocol: ClientProtocol, local: Endpoint }> = []
    if (set.tcp !== undefined) closed.push({ protocol: 'tcp', local: set.tcp.local })
    if (set.tls !== undefined) closed.push({ protocol: 'tls', local: set.tls.local })
    const udp = set.udp
    if (udp !== undefined) {
      closed.push({ protocol: 'udp', local: udp.socket.local })
      set.udp = undefined
      if (inUse(udp)) {
        remove(this.addresses.udp, udp.socket.local)
        this.retiring.set(key, { key, udp })
      } else {
        set.udp = udp
      }
    }
    await this.closeSet(set)
    return closed
  }

  /** Close the retired UDP listeners that `inUse` says no allocation uses any more; returns their addresses. */
  async closeRetired (inUse: (udp: UdpListener) => boolean): Promise<Endpoint[]> {
    const done: ListenerSet[] = []
    for (const [key, set] of this.retiring) {
      if (set.udp !== undefined && inUse(set.udp)) continue
      this.retiring.delete(key)
      done.push(set)
    }
    await Promise.all(done.map(async s => { await this.closeSet(s, false) }))
    return done.flatMap(s => s.udp === undefined ? [] : [s.udp.socket.local])
  }

  /** Retired UDP listeners still open. */
  get retiringCount (): number { return this.retiring.size }

  /** Close every listener; resolves once they are closed. */
  async closeAll (): Promise<void> {
    const sets = [...this.sets.values(), ...this.retiring.values()]
    this.sets.clear()
    this.retiring.clear()
    // The addresses stay as they were: they say where the server listened.
    await Promise.all(sets.map(async s => { await this.closeSet(s, false) }))
  }

  private async closeSet (set: ListenerSet, forget = true): Promise<void> {
    const waits: Array<Promise<unknown>> = []
    if (set.udp !== undefined) {
      this.udpByLocal.delete(endpointKey(set.udp.socket.local))
      this.udpByTransport.delete(set.udp.transport)
      if (forget) remove(this.addresses.udp, set.udp.socket.local)
      waits.push(set.udp.socket.close())
    }
    for (const [stream, list] of [[set.tcp, this.addresses.tcp], [set.tls, this.addresses.tls]] as const) {
      if (stream === undefined) continue
      if (forget) remove(list, stream.local)
      if (stream.server !== undefined) waits.push(closeStream(stream.server))
    }
    await Promise.all(waits)
  }
}

function remove (list: Endpoint[], ep: Endpoint): void {
  const i = list.findIndex(e => sameEndpoint(e, ep))
  if (i >= 0) list.splice(i, 1)
}
