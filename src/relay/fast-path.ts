import { createLogger } from '../log.js'
import { BatchUdpSocket } from '../net/batch-udp.js'
import type { Endpoint } from '../net/endpoint.js'
import type { ClientListeners } from './client-listeners.js'
import type { FastPathHook, TrafficCounters } from './data-path.js'
import type { RelaySockets } from './relay-sockets.js'
import type { ClientTransport } from './types.js'

const log = createLogger('natcheck:relay:fast-path')

/**
 * The TURN server adapter's native fast path for established channels (RFC 8656 §12.6, §12.7): installs the channel
 * bindings the core offers (FastPathHook, see offerFastPath in data-path.ts) in the native addon's forwarding table
 * (native/udp_fast.c), which then relays ChannelData from the client to the peer and the peer's datagrams back to the
 * client as ChannelData without calling into JS. Both the client's listener and the relay socket must be native
 * (BatchUdpSocket); otherwise nothing is installed and the packets keep going through the core.
 *
 * Entries end on their own at the time-to-live the core gave (the nearest channel, permission or allocation expiry),
 * when either socket closes (an allocation's deletion closes its relay sockets), and on clear() (reconfigure).
 */
export class RelayFastPath implements FastPathHook {
  /** Bindings installed (calls to install that succeeded), for tests and logs. */
  installed = 0

  constructor (private readonly listeners: ClientListeners, private readonly relays: RelaySockets) {}

  install (transport: ClientTransport, client: Endpoint, channel: number, relay: string, peer: Endpoint, ttlMs: number): void {
    const listener = this.listeners.udp(transport)?.socket
    const r = this.relays.get(relay)
    if (!(listener instanceof BatchUdpSocket) || r?.kind !== 'udp' || !(r.socket instanceof BatchUdpSocket)) return
    if (listener.fastInstall(client, channel, r.socket, peer, ttlMs)) {
      this.installed++
      log.trace('channel 0x%s %s:%d <-> %s:%d for %d ms', channel.toString(16), client.address, client.port, peer.address, peer.port, ttlMs)
    }
  }

  collect (t: TrafficCounters): void {
    const c = this.relays.takeFast()
    t.clientToPeerPackets += c[0]
    t.clientToPeerBytes += c[1]
    t.peerToClientPackets += c[2]
    t.peerToClientBytes += c[3]
  }

  clear (): void {
    for (const s of this.listeners.udpSockets()) if (s instanceof BatchUdpSocket) s.fastPurge()
  }
}

/** Whether the fast path can run in this process: the native addon is loaded and has it. */
export function fastPathUnavailableReason (nativeSupported: boolean | undefined): string | undefined {
  if (nativeSupported === undefined) return 'the native UDP addon is not available'
  if (!nativeSupported) return 'the native UDP addon was built without it (rebuild: node scripts/build-native.mjs)'
  return undefined
}
