import { InvalidArgumentError, TransportError } from '../errors.js'
import type { Endpoint } from '../net/endpoint.js'
import type { SimNat } from './nat.js'
import type { SimNetwork } from './network.js'
import type { Realm } from './realm.js'
import { SimSocket } from './socket.js'

/** IANA dynamic/private ports (RFC 6335 §6): where port 0 binds land. */
const EPHEMERAL_LOW = 49152
const EPHEMERAL_HIGH = 65535

/** Options of SimNetwork.addHost. */
export interface SimHostOptions {
  /** Put the host on this NAT's LAN (its IP is then a private address there); default: on the internet. */
  readonly behind?: SimNat
}

/** What a SimHost needs from its network. Internal to the simulator. */
export interface HostWire {
  isClosed (): boolean
  transmit (host: SimHost, socket: SimSocket, data: Uint8Array, to: Endpoint): void
}

/** A simulated host with one IP address, on the internet or behind a SimNat. Made by SimNetwork.addHost. */
export class SimHost {
  private readonly sockets = new Map<number, SimSocket>()
  private nextEphemeral = EPHEMERAL_LOW

  constructor (
    /** The network the host is on. */
    readonly network: SimNetwork,
    /** The host's own address (private when behind a NAT). */
    readonly ip: string,
    /** The NAT whose LAN the host is on, if any. */
    readonly nat: SimNat | undefined,
    /** The realm the host is attached to. Internal. */
    readonly realm: Realm,
    private readonly wire: HostWire
  ) {}

  /** The address the internet sees for this host: the outermost NAT's public address, or its own. */
  get publicIp (): string {
    let nat = this.nat
    let ip = this.ip
    while (nat !== undefined) { ip = nat.publicIp; nat = nat.outer.nat }
    return ip
  }

  /**
   * Bind a UDP socket on `port` (0, the default: the next free ephemeral port from 49152, unique on this host).
   * Rejects with TransportError when the port is taken or the network is closed, InvalidArgumentError for a bad port.
   */
  async bind (port = 0): Promise<SimSocket> {
    if (!Number.isInteger(port) || port < 0 || port > 65535) throw new InvalidArgumentError(`port must be an integer 0-65535; got ${String(port)}`)
    if (this.wire.isClosed()) throw new TransportError(`cannot bind UDP ${this.ip}:${port}: the simulated network is closed`)
    if (port === 0) port = this.ephemeral()
    else if (this.sockets.has(port)) throw new TransportError(`cannot bind UDP ${this.ip}:${port}: address already in use`)
    const socket = new SimSocket({ address: this.ip, port }, {
      transmit: (s, data, to) => { this.wire.transmit(this, s, data, to) },
      release: (s) => { if (this.sockets.get(s.local.port) === s) this.sockets.delete(s.local.port) }
    })
    this.sockets.set(port, socket)
    return socket
  }

  /** The open socket on `port`, if any. */
  socket (port: number): SimSocket | undefined {
    return this.sockets.get(port)
  }

  /** Close every socket of the host. */
  async closeAll (): Promise<void> {
    await Promise.all([...this.sockets.values()].map(async s => { await s.close() }))
  }

  private ephemeral (): number {
    const size = EPHEMERAL_HIGH - EPHEMERAL_LOW + 1
    for (let i = 0; i < size; i++) {
      const p = this.nextEphemeral
      this.nextEphemeral = p === EPHEMERAL_HIGH ? EPHEMERAL_LOW : p + 1
      if (!this.sockets.has(p)) return p
    }
    throw new TransportError(`cannot bind UDP ${this.ip}:0: no ephemeral port left`)
  }
}
