import { EventEmitter } from 'node:events'
import { createLogger } from '../log.js'
import { endpointKey, type Endpoint } from '../net/endpoint.js'
import type { TurnServerCoreOptions } from '../relay/core-options.js'
import { TurnServerCore, type CoreStats } from '../relay/server-core.js'
import type { ClientTransport, RelayAction, RelayEvent } from '../relay/types.js'
import type { SimHost } from './host.js'
import type { SimSocket } from './socket.js'

const log = createLogger('natcheck:traversal:sim:turn')

/**
 * The documentation ranges (RFC 5737) the simulated internet is expected to use. natkit's TURN peer policy denies
 * them by default (src/relay/peer-policy.ts DEFAULT_DENIED_PEERS), so SimTurnServer allows them unless told otherwise.
 */
export const SIM_PUBLIC_RANGES: readonly string[] = ['192.0.2.0/24', '198.51.100.0/24', '203.0.113.0/24']

/** Options of SimTurnServer.start: TurnServerCoreOptions (users, limits, lifetimes, policy…) plus the adapter's. */
export interface SimTurnServerOptions extends Omit<TurnServerCoreOptions, 'realm' | 'relayAddress' | 'relayAddress6' | 'externalAddress' | 'externalAddress6' | 'ownEndpoints' | 'allowPeer'> {
  /** REALM (default 'sim.natkit'). */
  readonly realm?: string
  /** The client-facing UDP port (default 3478). */
  readonly port?: number
  /** Peer CIDRs allowed despite the deny list (default SIM_PUBLIC_RANGES; add '10.0.0.0/8' etc. to relay into LANs). */
  readonly allowPeer?: readonly string[]
  /** The IPv4 advertised in XOR-RELAYED-ADDRESS (default: the host's IP). */
  readonly externalIp?: string
  /** Interval of the core's expiry tick (default 1000 ms). */
  readonly tickIntervalMs?: number
  /** Clock in ms (default: the network's). */
  readonly now?: () => number
}

/** Events of SimTurnServer (as TurnServer's). */
export interface SimTurnServerEvents {
  allocation: [event: Extract<RelayEvent, { type: 'allocation' }>]
  refresh: [event: Extract<RelayEvent, { type: 'refresh' }>]
  deallocation: [event: Extract<RelayEvent, { type: 'deallocation' }>]
  'auth-failure': [event: Extract<RelayEvent, { type: 'auth-failure' }>]
}

/**
 * natkit's TURN server core (TurnServerCore, RFC 8656) on a simulated host, UDP only: the adapter of
 * src/relay/turn-server.ts with SimSockets. It carries out the core's RelayActions — sends to clients, relay sockets
 * opened on 'open-relay' (reported back with relayOpened), peer datagrams into handlePeer, a periodic tick — and
 * refuses TCP relaying (RFC 6062). Closed by close() or when its network closes.
 */
export class SimTurnServer extends EventEmitter<SimTurnServerEvents> {
  private listener!: SimSocket
  private readonly relays = new Map<string, SimSocket>()
  private timer: NodeJS.Timeout | undefined
  private closing: Promise<void> | undefined
  private readonly now: () => number

  private constructor (readonly host: SimHost, readonly core: TurnServerCore, now: () => number) {
    super()
    this.now = now
  }

  /** Bind the listener and start. Throws InvalidArgumentError for bad core options, TransportError when the port is taken. */
  static async start (host: SimHost, options: SimTurnServerOptions = {}): Promise<SimTurnServer> {
    const port = options.port ?? 3478
    const listen: Endpoint = { address: host.ip, port }
    const core = new TurnServerCore({
      ...options,
      realm: options.realm ?? 'sim.natkit',
      relayAddress: host.ip,
      externalAddress: options.externalIp,
      allowPeer: options.allowPeer ?? SIM_PUBLIC_RANGES,
      ownAddresses: [host.ip, ...(options.ownAddresses ?? [])],
      ownEndpoints: [listen]
    })
    const server = new SimTurnServer(host, core, options.now ?? host.network.now)
    server.listener = await host.bind(port)
    const transport: ClientTransport = { protocol: 'udp', local: server.listener.local }
    server.listener.onMessage((data, from) => {
      if (server.closing === undefined) server.execute(core.handle(data, from, transport, server.now()))
    })
    server.timer = setInterval(() => { server.execute(core.tick(server.now())) }, options.tickIntervalMs ?? 1000)
    server.timer.unref()
    host.network.addCleanup(async () => { await server.close() })
    return server
  }

  /** The client-facing address. */
  get address (): Endpoint { return { ...this.listener.local } }

  /** Sizes of the core's tables. */
  stats (): CoreStats { return this.core.stats(this.now()) }

  private execute (actions: RelayAction[]): void {
    for (const a of actions) {
      switch (a.type) {
        case 'send': if (endpointKey(a.transport.local) === endpointKey(this.listener.local)) this.listener.send(a.data, a.to); break
        case 'relay': this.relays.get(a.relay)?.send(a.data, a.to); break
        case 'open-relay': void this.openRelay(a.relay, a.protocol, a.port); break
        case 'close-relay': {
          const s = this.relays.get(a.relay)
          this.relays.delete(a.relay)
          void s?.close()
          break
        }
        case 'event': this.onEvent(a.event); break
        case 'ignore': log.trace('ignored: %s', a.reason); break
        default: log.trace('%s: not simulated (UDP only)', a.type)
      }
    }
  }

  private onEvent (e: RelayEvent): void {
    switch (e.type) {
      case 'allocation': this.emit('allocation', e); break
      case 'refresh': this.emit('refresh', e); break
      case 'deallocation': this.emit('deallocation', e); break
      case 'auth-failure': this.emit('auth-failure', e); break
    }
  }

  private async openRelay (key: string, protocol: 'udp' | 'tcp', port: number): Promise<void> {
    let result: { ok: true, bound: Endpoint } | { ok: false, inUse: boolean }
    if (protocol === 'tcp') {
      result = { ok: false, inUse: false }
    } else {
      try {
        const socket = await this.host.bind(port)
        if (this.closing !== undefined) { await socket.close(); return }
        socket.onMessage((data, from) => {
          if (this.closing === undefined) this.execute(this.core.handlePeer(key, data, from, this.now()))
        })
        this.relays.set(key, socket)
        result = { ok: true, bound: socket.local }
      } catch {
        // The only bind failure on a simulated host is a port in use: the core then tries another.
        result = { ok: false, inUse: true }
      }
    }
    if (this.closing === undefined) this.execute(this.core.relayOpened(key, result, this.now()))
  }

  /** Stop the tick, end every allocation, close every socket. Idempotent. */
  close (): Promise<void> {
    this.closing ??= (async () => {
      clearInterval(this.timer)
      this.execute(this.core.shutdown(this.now()).filter(a => a.type === 'event'))
      const sockets = [...this.relays.values()]
      this.relays.clear()
      await Promise.all([...sockets, this.listener].map(async s => { await s?.close() }))
    })()
    return this.closing
  }

  async [Symbol.asyncDispose] (): Promise<void> { await this.close() }
}
