/**
 * The IPv4 default gateway (where NAT-PMP, PCP and SSDP requests go) and the local address that reaches it.
 */
import { createSocket } from 'node:dgram'
import { readFile } from 'node:fs/promises'

/** Parse Linux's /proc/net/route: the gateway of the first default route, or `undefined`. Pure. */
export function parseProcNetRoute (text: string): string | undefined {
  for (const line of text.split('\n').slice(1)) {
    const f = line.trim().split(/\s+/)
    if (f.length < 4 || f[1] !== '00000000') continue
    const flags = Number.parseInt(f[3], 16)
    if ((flags & 0x2) === 0) continue // RTF_GATEWAY
    const g = Number.parseInt(f[2], 16)
    if (!Number.isFinite(g) || g === 0) continue
    return [g & 0xff, (g >>> 8) & 0xff, (g >>> 16) & 0xff, (g >>> 24) & 0xff].join('.')
  }
  return undefined
}

/** The IPv4 default gateway of this host (Linux), or `undefined` when there is none or it cannot be read. */
export async function defaultGateway (): Promise<string | undefined> {
  try {
    return parseProcNetRoute(await readFile('/proc/net/route', 'utf8'))
  } catch {
    return undefined
  }
}

/** The local address the kernel would use towards `ip` (a connected UDP socket sends nothing). */
export async function localAddressTowards (ip: string): Promise<string | undefined> {
  const s = createSocket('udp4')
  try {
    await new Promise<void>((resolve, reject) => {
      s.once('error', reject)
      s.connect(9, ip, () => { resolve() })
    })
    return s.address().address
  } catch {
    return undefined
  } finally {
    s.close()
  }
}
