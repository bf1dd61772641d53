import { createLogger } from '../log.js'
import type { Endpoint } from '../net/endpoint.js'
import type { DatagramSocket } from '../net/udp.js'

const log = createLogger('natcheck:traversal:sim')

/** What a SimSocket needs from its host and network. Internal to the simulator. */
export interface SocketWire {
  /** Take a datagram into the network (copying it); never throws. */
  transmit (socket: SimSocket, data: Uint8Array, to: Endpoint): void
  /** The socket closed: free its port. */
  release (socket: SimSocket): void
}

/**
 * A DatagramSocket on a simulated host (src/net/udp.ts seam). `send` never throws and never delivers synchronously;
 * a closed socket sends and receives nothing.
 */
export class SimSocket implements DatagramSocket {
  private handler: (data: Buffer, from: Endpoint) => void = () => {}
  private isClosed = false

  constructor (
    /** The bound local address: the host's own IP and the port. */
    readonly local: Endpoint,
    private readonly wire: SocketWire
  ) {}

  /** Whether close() was called (or the network closed). */
  get closed (): boolean { return this.isClosed }

  send (data: Uint8Array, to: Endpoint): void {
    if (this.isClosed) return
    this.wire.transmit(this, data, to)
  }

  onMessage (handler: (data: Buffer, from: Endpoint) => void): void {
    this.handler = handler
  }

  /** Hand a datagram to the handler. Returns false when the socket is closed. Internal to the simulator. */
  deliver (data: Buffer, from: Endpoint): boolean {
    if (this.isClosed) return false
    try {
      this.handler(data, from)
    } catch (err) {
      // Handlers must not throw; if one does, the socket stays up and the error is logged (as UdpSocket does).
      log.error('datagram handler threw: %O', err)
    }
    return true
  }

  async close (): Promise<void> {
    if (this.isClosed) return
    this.isClosed = true
    this.wire.release(this)
  }

  async [Symbol.asyncDispose] (): Promise<void> { await this.close() }
}
