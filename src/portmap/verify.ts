/**
 * Verify that a port mapping really lets traffic in, through an RFC 5780 STUN server rather than by trusting the
 * gateway: a socket bound to the mapping's internal port waits while another socket asks the server (RFC 5780
 * §7.2 CHANGE-REQUEST, change IP and port; §7.5 RESPONSE-PORT = the mapping's external port) to answer from an
 * address this host never sent to, at the NAT's public address and the mapped port. Only the mapping can deliver
 * that answer: no conntrack entry or filter state matches it.
 */
import { createSocket } from 'node:dgram'
import type { Endpoint } from '../net/endpoint.js'
import { buildBindingRequest } from '../stun/client.js'

/** Options of {@link verifyMappingReachable}. */
export interface VerifyMappingOptions {
  /** The RFC 5780 server's primary endpoint. */
  server: Endpoint
  internalPort: number
  externalPort: number
  /** Local address to bind (default 0.0.0.0). */
  localAddress?: string
  /** Give up after this long, ms (default 2000). */
  timeoutMs?: number
}

/** Whether the server's changed-address response reached the internal port. Never throws; bounded by `timeoutMs`. */
export async function verifyMappingReachable (o: VerifyMappingOptions): Promise<boolean> {
  const holder = createSocket('udp4')
  const asker = createSocket('udp4')
  const timers: NodeJS.Timeout[] = []
  try {
    await new Promise<void>((resolve, reject) => { holder.once('error', reject); holder.bind(o.internalPort, o.localAddress, () => { holder.off('error', reject); resolve() }) })
    await new Promise<void>((resolve, reject) => { asker.once('error', reject); asker.bind(0, o.localAddress, () => { asker.off('error', reject); resolve() }) })
    const request = buildBindingRequest({ changeRequest: { ip: true, port: true }, responsePort: o.externalPort })
    const txid = request.subarray(8, 20)
    return await new Promise<boolean>((resolve) => {
      holder.on('message', (d) => { if (d.length >= 20 && d.subarray(8, 20).equals(txid)) resolve(true) })
      asker.on('error', () => {})
      holder.on('error', () => {})
      const timeoutMs = o.timeoutMs ?? 2000
      const send = (): void => { asker.send(request, o.server.port, o.server.address, () => {}) }
      send()
      for (const t of [250, 750, 1500]) if (t < timeoutMs) timers.push(setTimeout(send, t))
      timers.push(setTimeout(() => { resolve(false) }, timeoutMs))
    })
  } catch {
    return false
  } finally {
    for (const t of timers) clearTimeout(t)
    holder.close()
    asker.close()
  }
}
