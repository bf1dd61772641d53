import { createLogger } from '../log.js'
import type { Endpoint } from '../net/endpoint.js'
import type { DatagramSocket } from '../net/udp.js'

const log = createLogger('natcheck:traversal:mux')

/** A view of a shared socket: sends go out on it, and it receives only the datagrams its route matched. */
class RoutedSocket implements DatagramSocket {
  handler: (data: Buffer, from: Endpoint) => void = () => {}
  closed = false
  constructor (private readonly mux: SocketMux, readonly local: Endpoint) {}
  send (data: Uint8Array, to: Endpoint): void { if (!this.closed) this.mux.socket.send(data, to) }
  onMessage (handler: (data: Buffer, from: Endpoint) => void): void { this.handler = handler }
  async close (): Promise<void> { this.closed = true; this.mux.remove(this) }
}

/**
 * One UDP socket shared by several protocol users — the agent's checks and STUN gathering, and TURN clients allocating
 * from the same port so that the relayed candidate's base is the host candidate (RFC 8445 §5.1.1.2). Datagrams are
 * routed by source address: each route's predicate is tried in order, the rest go to the fallback.
 */
export class SocketMux {
  private readonly routes: Array<{ match: (from: Endpoint) => boolean, socket: RoutedSocket }> = []
  private readonly fallbackSocket: RoutedSocket
  /**
   * Datagrams the fallback claims whatever their source — e.g. responses to its own pending STUN transactions with a
   * server that is also a routed TURN server.
   */
  claim: (data: Buffer) => boolean = () => false

  constructor (readonly socket: DatagramSocket) {
    this.fallbackSocket = new RoutedSocket(this, socket.local)
    socket.onMessage((data, from) => { this.dispatch(data, from) })
  }

  /** A socket receiving the datagrams whose source matches (e.g. one TURN server). */
  route (match: (from: Endpoint) => boolean): DatagramSocket {
    const s = new RoutedSocket(this, this.socket.local)
    this.routes.push({ match, socket: s })
    return s
  }

  /** The socket receiving everything no route matched. */
  fallback (): DatagramSocket { return this.fallbackSocket }

  /** @internal */
  remove (s: RoutedSocket): void {
    const i = this.routes.findIndex(r => r.socket === s)
    if (i >= 0) this.routes.splice(i, 1)
  }

  private dispatch (data: Buffer, from: Endpoint): void {
    try {
      if (this.claim(data)) { this.fallbackSocket.handler(data, from); return }
      for (const r of this.routes) {
        if (r.match(from)) { r.socket.handler(data, from); return }
      }
      this.fallbackSocket.handler(data, from)
    } catch (err) {
      log.error('a routed handler threw: %O', err)
    }
  }
}
