import { AbortError } from '../errors.js'
import { createLogger } from '../log.js'
import { systemInterfaces, type HostInterfaces } from '../net/interfaces.js'
import { UdpSocket, type DatagramSocket } from '../net/udp.js'
import type { ResolveOptions } from '../net/resolve.js'
import { StunClient } from '../stun/client.js'
import type { ArrivalWatch } from './hairpin.js'

const log = createLogger('natcheck:discovery')

/** A progress event (natcheck prints these on stderr). */
export interface DiscoveryProgress {
  readonly phase: 'resolve' | 'reach' | 'mapping' | 'filtering' | 'hairpin' | 'pattern' | 'lifetime' | 'tcp-tls' | 'ipv6' | 'done'
  readonly message: string
}

/** Options for discoverNat. */
export interface DiscoverOptions {
  /** STUN servers, `HOST[:PORT]` (default DEFAULT_SERVERS). */
  readonly servers?: readonly string[]
  /** Give up on servers that have not answered after this many ms (default 2500). */
  readonly timeoutMs?: number
  /** Measure the binding lifetime (slow: up to `maxS` seconds). */
  readonly lifetime?: boolean | { readonly maxS: number }
  /** Local address to bind the probe sockets to (default 0.0.0.0). */
  readonly localAddress?: string
  /** Test STUN over TCP and TLS: 'auto' only when UDP is blocked (default), 'always', 'never'. */
  readonly tcpTls?: 'auto' | 'always' | 'never'
  /** Test IPv6 when the host has a global IPv6 address (default true). */
  readonly ipv6?: boolean
  readonly signal?: AbortSignal
  readonly onProgress?: (event: DiscoveryProgress) => void
  /**
   * Socket seam: binds each IPv4 UDP probe socket (default: a node:dgram UdpSocket on `localAddress`). The simulator
   * (natkit's SimHost.bind) and tests substitute their own; discoverNat closes every socket it binds.
   */
  readonly bindSocket?: () => Promise<DatagramSocket>
  /** The host's addresses (default: the OS's, src/net/interfaces.ts). */
  readonly interfaces?: HostInterfaces
  /** DNS seam for resolving the servers (default node:dns). */
  readonly dns?: ResolveOptions['dns']
}

/** One discovery run: resolved options, the sockets it opened, progress and phase timings. Internal. */
export class DiscoveryRun {
  readonly started = performance.now()
  readonly timings: Record<string, number> = {}
  readonly servers: string[]
  readonly timeoutMs: number
  readonly bindAddress: string
  readonly interfaces: HostInterfaces
  readonly signal: AbortSignal | undefined
  readonly bindSocket: () => Promise<DatagramSocket>
  private readonly clients: StunClient[] = []

  constructor (readonly options: DiscoverOptions, defaultServers: readonly string[]) {
    this.servers = [...(options.servers ?? defaultServers)]
    this.timeoutMs = options.timeoutMs ?? 2500
    this.bindAddress = options.localAddress ?? '0.0.0.0'
    this.interfaces = options.interfaces ?? systemInterfaces
    this.signal = options.signal
    this.bindSocket = options.bindSocket ?? (async () => await UdpSocket.bind({ address: this.bindAddress }))
  }

  /** Record that a phase ended now (`<phase>Ms` since the start). */
  mark (phase: string): void { this.timings[`${phase}Ms`] = Math.round(performance.now() - this.started) }

  progress (phase: DiscoveryProgress['phase'], message: string): void {
    log('%s: %s', phase, message)
    this.options.onProgress?.({ phase, message })
  }

  /** Throw AbortError when the signal has fired. */
  check (): void {
    if (this.signal?.aborted === true) throw new AbortError(undefined, { cause: this.signal.reason })
  }

  /** A StunClient on a fresh socket, closed with the run (or earlier with closeClient). */
  async newClient (watch?: ArrivalWatch): Promise<StunClient> {
    const socket = await this.bindSocket()
    const c = await StunClient.create({ socket, onOther: watch !== undefined ? (d) => { watch.observe(d) } : undefined })
    this.clients.push(c)
    return c
  }

  async closeClient (c: StunClient): Promise<void> {
    const i = this.clients.indexOf(c)
    if (i >= 0) this.clients.splice(i, 1)
    await c.close()
    await c.socket.close()
  }

  async closeAll (): Promise<void> {
    await Promise.all(this.clients.splice(0).map(async c => { await c.close(); await c.socket.close() }))
  }
}

export function round (n: number): number { return Math.round(n * 100) / 100 }
