import type { Endpoint } from '../../src/net/endpoint.js'
import type { DatagramSocket } from '../../src/net/udp.js'

/** An in-memory DatagramSocket: records what is sent, and lets the test deliver datagrams. */
export class FakeSocket implements DatagramSocket {
  readonly sent: Array<{ data: Buffer, to: Endpoint, at: number }> = []
  private handler: (data: Buffer, from: Endpoint) => void = () => {}
  closed = false
  constructor (readonly local: Endpoint = { address: '192.0.2.10', port: 5000 }) {}
  send (data: Uint8Array, to: Endpoint): void { this.sent.push({ data: Buffer.from(data), to, at: performance.now() }) }
  onMessage (handler: (data: Buffer, from: Endpoint) => void): void { this.handler = handler }
  deliver (data: Uint8Array, from: Endpoint): void { this.handler(Buffer.from(data), from) }
  async close (): Promise<void> { this.closed = true }
}
