import { createSocket } from 'node:dgram'
import { networkInterfaces } from 'node:os'
import type { Endpoint } from './endpoint.js'

/**
 * The host's own addresses, as NAT discovery needs them: the seam through which discovery learns whether a mapped
 * address is its own (no NAT) and which source address the kernel picks. The simulator and tests substitute theirs.
 */
export interface HostInterfaces {
  /** Every IP address configured on the host's interfaces. */
  addresses (): string[]
  /** Whether the host has a global IPv6 address (not loopback, link-local fe80::/10 or unique-local fc00::/7). */
  hasGlobalIPv6 (): boolean
  /** The local IP the host would use to reach `target`, or undefined when it has no route. */
  sourceAddressFor (target: Endpoint): Promise<string | undefined>
}

/** Every IP address configured on this host's interfaces. */
export function localAddresses (): string[] {
  return Object.values(networkInterfaces()).flatMap(list => (list ?? []).map(i => i.address))
}

/** Whether this host has a global IPv6 address (not loopback, link-local fe80::/10 or unique-local fc00::/7). */
export function hasGlobalIPv6 (): boolean {
  return Object.values(networkInterfaces()).some(list => (list ?? []).some(i =>
    i.family === 'IPv6' && !i.internal && !/^(fe[89ab]|f[cd])/i.test(i.address) && i.address !== '::1'))
}

/** The local IP the kernel would use to reach `target` (a connected UDP socket; nothing is sent). */
export async function sourceAddressFor (target: Endpoint): Promise<string | undefined> {
  const socket = createSocket(target.address.includes(':') ? 'udp6' : 'udp4')
  try {
    return await new Promise<string | undefined>((resolve) => {
      socket.once('error', () => { resolve(undefined) })
      socket.connect(target.port, target.address, () => { resolve(socket.address().address) })
    })
  } finally {
    socket.close()
  }
}

/** This host's interfaces, read from the OS (node:os, node:dgram). */
export const systemInterfaces: HostInterfaces = { addresses: localAddresses, hasGlobalIPv6, sourceAddressFor }
