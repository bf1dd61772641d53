import type { Endpoint } from '../../../src/net/endpoint.js'
import type { DatagramSocket } from '../../../src/net/udp.js'

/** Records what a socket receives. */
export class Inbox {
  readonly messages: Array<{ data: Buffer, from: Endpoint }> = []
  constructor (socket: DatagramSocket) {
    socket.onMessage((data, from) => { this.messages.push({ data, from }) })
  }

  /** The sources seen, as `ip:port` strings. */
  get froms (): string[] { return this.messages.map(m => `${m.from.address}:${m.from.port}`) }

  /** The payloads seen, as text. */
  get texts (): string[] { return this.messages.map(m => m.data.toString()) }

  clear (): void { this.messages.length = 0 }
}

/** `ip:port`. */
export function ep (e: Endpoint): string { return `${e.address}:${e.port}` }

/** A manual clock for mapping lifetimes. */
export class ManualClock {
  t = 1_000_000
  readonly now = (): number => this.t
  advance (ms: number): void { this.t += ms }
}
