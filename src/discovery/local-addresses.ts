import { createSocket } from 'node:dgram'
import { networkInterfaces } from 'node:os'

/** Every IP address configured on this host's interfaces. */
export function localAddresses (): string[] {
  return Object.values(networkInterfaces()).flatMap(list => (list ?? []).map(i => i.address))
}

/** Whether the host has a global IPv6 address (not loopback, link-local fe80::/10 or unique-local fc00::/7). */
export function hasGlobalIPv6 (): boolean {
  return Object.values(networkInterfaces()).some(list => (list ?? []).some(i =>
    i.family === 'IPv6' && !i.internal && !/^(fe[89ab]|f[cd])/i.test(i.address) && i.address !== '::1'))
}

/** The local IP the kernel would use to reach `target` (a connected UDP socket; nothing is sent). */
export async function sourceAddressFor (target: { address: string, port: number }): Promise<string | undefined> {
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
