import { RendezvousCore } from '../../../src/rendezvous/core.js'
import type { RendezvousAction } from '../../../src/rendezvous/core-types.js'
import type { RendezvousCoreOptions } from '../../../src/rendezvous/core-options.js'
import type { ServerFrame } from '../../../src/rendezvous/protocol.js'

export const T0 = 1_700_000_000_000
export const SECRET = 'rendezvous-test-secret'

/** Frames sent to `conn` by these actions, in order. */
export function framesTo (actions: RendezvousAction[], conn: number): ServerFrame[] {
  return actions.filter((a): a is Extract<RendezvousAction, { type: 'send' }> => a.type === 'send' && a.conn === conn).map(a => a.frame)
}

/** The close action for `conn`, if any. */
export function closeOf (actions: RendezvousAction[], conn: number): Extract<RendezvousAction, { type: 'close' }> | undefined {
  return actions.find((a): a is Extract<RendezvousAction, { type: 'close' }> => a.type === 'close' && a.conn === conn)
}

/** A core, a clock, and helpers to drive it as if over sockets. */
export class Harness {
  readonly core: RendezvousCore
  now = T0
  private nextConn = 1

  constructor (options: RendezvousCoreOptions = { open: true }) {
    this.core = new RendezvousCore(options)
  }

  /** Open a connection (from 203.0.113.1:port unless `address` is given); returns its id. */
  open (port = 40000 + this.nextConn, address = '203.0.113.1'): number {
    return this.openFrom(address, port).conn
  }

  /** Open a connection from `address`; returns its id and the core's answer (a refusal, or nothing). */
  openFrom (address: string, port = 40000 + this.nextConn): { conn: number, actions: RendezvousAction[] } {
    const conn = this.nextConn++
    return { conn, actions: this.core.open(conn, { address, port }, this.now) }
  }

  feed (conn: number, frame: unknown): RendezvousAction[] {
    return this.core.handle(conn, typeof frame === 'string' || frame instanceof Uint8Array ? frame : JSON.stringify(frame), this.now)
  }

  /** Open and register `id`; returns the connection and the actions. */
  register (id: string, extra: Record<string, unknown> = {}): { conn: number, actions: RendezvousAction[] } {
    const conn = this.open()
    return { conn, actions: this.feed(conn, { type: 'register', id, ...extra }) }
  }

  advance (ms: number): RendezvousAction[] {
    this.now += ms
    return this.core.tick(this.now)
  }
}
