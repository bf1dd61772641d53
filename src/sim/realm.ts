import type { SimHost } from './host.js'
import type { SimNat } from './nat.js'

/**
 * One address space of the simulation: the public internet, or the LAN behind one NAT. Hosts and NATs (by their
 * outside address) are attached to exactly one realm; LANs may reuse each other's private addresses.
 * Internal to the simulator.
 */
export interface Realm {
  /** The NAT this realm is the LAN of; undefined for the internet. */
  readonly nat: SimNat | undefined
  readonly hosts: Map<string, SimHost>
  /** NATs attached here, by their outside (public) address. */
  readonly nats: Map<string, SimNat>
}

/** A new, empty realm. */
export function createRealm (nat: SimNat | undefined): Realm {
  return { nat, hosts: new Map(), nats: new Map() }
}
