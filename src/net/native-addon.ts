/**
 * The native UDP addon (native/udp_*.c): its interface and its loader. Separate from native.ts so that
 * batch-udp.ts (which drives the addon) and native.ts (which picks a socket) import it without importing each other.
 */
import { createRequire } from 'node:module'
import { createLogger } from '../log.js'

const log = createLogger('natcheck:net:native')

/** Counters of the native socket (numbers, they only grow). */
export interface NativeUdpStats {
  received: number
  receiveBatches: number
  receiveTruncated: number
  receiveErrors: number
  sent: number
  sendBatches: number
  sendDrops: number
  sendErrors: number
  /** UDP GSO messages sent (the fast path's runs of equal-size datagrams to one destination, native/udp_pending.c). */
  gsoMessages: number
  /** Datagrams those GSO messages carried (counted in `sent` too). */
  gsoDatagrams: number
}

/** An opened native socket: an opaque handle, its id in the send metadata, and the bound address. */
export interface NativeUdpOpened {
  readonly handle: object
  /** Names the socket in the send metadata (a small integer, reused after close). */
  readonly id: number
  readonly address: string
  readonly port: number
}

/** The buffers every native socket of this thread shares with JS (layouts in native/udp_batch.h). */
export interface NativeUdpBuffers {
  readonly recv: ArrayBuffer
  readonly recvMeta: ArrayBuffer
  readonly send: ArrayBuffer
  readonly sendMeta: ArrayBuffer
}

/** The addon's interface (native/udp_*.c; the buffer layouts are described in native/udp_batch.h). */
export interface NativeUdpBinding {
  /**
   * Datagrams per batch, bytes per receive slot, int32 words of receive and of send metadata per datagram, send
   * buffer bytes.
   */
  readonly BATCH: number
  readonly SLOT: number
  readonly META: number
  readonly SEND_META: number
  readonly SEND_BYTES: number
  /**
   * Bind a socket and start polling it; `onBatch(n)` gets n ≥ 0 datagrams (in the shared receive buffer), or
   * n < 0 = -errno of a receive error. `reusePort` sets SO_REUSEPORT before binding.
   */
  open (family: 4 | 6, address: string, port: number, bufferSize: number, ipv6Only: boolean, onBatch: (n: number) => void, reusePort?: boolean): NativeUdpOpened
  /** The shared buffers, allocated on the first call (the same objects on every call). */
  buffers (): NativeUdpBuffers
  /**
   * Send the first `count` datagrams queued in the shared send buffer with sendmmsg, one run per socket; 0, or the
   * errno of the first failure (not EAGAIN).
   */
  flush (count: number): number
  close (handle: object): void
  stats (handle: object): NativeUdpStats
  /**
   * The relay's fast path (native/udp_fast.c; absent from an addon built before it): install the forward entry
   * (ChannelData `channel` from the client on `listener` → payload to the peer from `relay`, RFC 8656 §12.6) and the
   * reverse entry (datagram from the peer on `relay` → ChannelData to the client from `listener`, §12.7), valid for
   * `ttlMs`. False when they cannot be installed (closed socket, address family the socket cannot reach).
   */
  fastInstall?: (listener: object, clientIp: string, clientPort: number, channel: number, relay: object, peerIp: string, peerPort: number, ttlMs: number) => boolean
  /** Remove every fast path entry naming this socket (as receiver or sender). */
  fastPurge?: (handle: object) => void
  /** Fast path entries in this thread's table (forward and reverse). */
  fastCount?: () => number
  /** [client→peer packets, bytes, peer→client packets, bytes] the fast path relayed through this relay socket since the last call. */
  takeFast?: (handle: object) => [number, number, number, number]
  /**
   * Allow (true) or forbid UDP GSO for the fast path's sends in this thread (default: allowed, unless the environment
   * has NATKIT_UDP_GSO=0); what is queued is sent first. Returns the previous setting.
   */
  setGso?: (on: boolean) => boolean
}

/** Where the addon is: native/build/Release relative to the package root (this file is dist/src/net/native.js). */
const ADDON_PATH = '../../../native/build/Release/natkit_udp.node'

let loaded: { binding: NativeUdpBinding | undefined, reason: string | undefined } | undefined

function load (): { binding: NativeUdpBinding | undefined, reason: string | undefined } {
  if (loaded !== undefined) return loaded
  if (process.platform !== 'linux') {
    loaded = { binding: undefined, reason: `native UDP batching needs Linux (recvmmsg/sendmmsg); this is ${process.platform}` }
  } else {
    try {
      const binding = createRequire(import.meta.url)(ADDON_PATH) as NativeUdpBinding
      if (typeof binding.open !== 'function' || typeof binding.buffers !== 'function' || binding.SLOT < 65536) throw new Error('unexpected addon interface')
      loaded = { binding, reason: undefined }
    } catch (err) {
      const why = (err as { code?: string }).code === 'MODULE_NOT_FOUND'
        ? 'the addon is not built (run `node scripts/build-native.mjs`)'
        : `the addon did not load: ${(err as Error).message.split('\n')[0]}`
      loaded = { binding: undefined, reason: why }
    }
  }
  log('native UDP batching %s', loaded.binding !== undefined ? 'available' : `unavailable: ${loaded.reason ?? ''}`)
  return loaded
}

/** The native binding, or undefined when it is not available (see nativeUdpUnavailableReason). */
export function loadNativeUdp (): NativeUdpBinding | undefined {
  return load().binding
}

/** Whether the native batched UDP socket (recvmmsg/sendmmsg, native/udp_*.c) can be used in this process. */
export function nativeUdpAvailable (): boolean {
  return load().binding !== undefined
}

/** Why the native UDP socket cannot be used (for logs and benchmarks); undefined when it can. */
export function nativeUdpUnavailableReason (): string | undefined {
  return load().reason
}

