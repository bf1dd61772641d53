import type { Endpoint } from '../net/endpoint.js'
import type { DatagramSocket } from '../net/udp.js'
import type { TurnClient } from '../relay/turn-client.js'

/**
 * The relayed candidate's base as a DatagramSocket (RFC 8445 §5.1.1.2): sending goes through the TURN allocation
 * (Send indication or channel), receiving is what the relay delivered. Connectivity checks and data use it exactly as
 * they use the host socket.
 */
export class RelaySocket implements DatagramSocket {
  private handler: (data: Buffer, from: Endpoint) => void = () => {}
  private readonly listener = (data: Buffer, from: Endpoint): void => { this.handler(data, from) }
  private closed = false

  constructor (readonly client: TurnClient) {
    client.on('data', this.listener)
  }

  get local (): Endpoint { return this.client.allocation.relayed }

  send (data: Uint8Array, to: Endpoint): void { if (!this.closed) this.client.send(data, to) }
  onMessage (handler: (data: Buffer, from: Endpoint) => void): void { this.handler = handler }

  /** Stops delivering; the TURN client itself is closed by its owner. */
  async close (): Promise<void> {
    this.closed = true
    this.client.off('data', this.listener)
  }
}
