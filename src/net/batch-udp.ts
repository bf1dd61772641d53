import { SocketAddress } from 'node:net'
import { getSystemErrorName } from 'node:util'
import { TransportError } from '../errors.js'
import { createLogger } from '../log.js'
import { ipFamily, type Endpoint } from './endpoint.js'
import { ipToBytes, writeIPv4 } from './ip.js'
import { loadNativeUdp, nativeUdpUnavailableReason, type NativeUdpBinding, type NativeUdpStats } from './native-addon.js'
import type { DatagramSocket, UdpBindOptions } from './udp.js'

const log = createLogger('natcheck:net:batch-udp')

/** Counters of a BatchUdpSocket; they only grow. */
export interface BatchUdpStats {
  /** Datagrams received and handed to the handler. */
  readonly received: number
  /** recvmmsg calls that returned datagrams (received / receiveBatches = the mean batch size). */
  readonly receiveBatches: number
  /** Datagrams that did not fit a receive slot or had no usable source address (dropped). */
  readonly receiveTruncated: number
  readonly receiveErrors: number
  /** Datagrams the kernel accepted. */
  readonly sent: number
  /** sendmmsg calls. */
  readonly sendBatches: number
  /** Datagrams dropped because the socket send buffer was full (EAGAIN/ENOBUFS). */
  readonly sendDrops: number
  /** Datagrams not sent for any other reason: bad destination or port, too big, EMSGSIZE, ENETUNREACH… */
  readonly sendErrors: number
  /**
   * UDP GSO messages (UDP_SEGMENT) the relay's fast path sent from this socket: each carried a run of equal-size
   * datagrams to one destination, which the kernel cut into those datagrams (native/udp_pending.c).
   */
  readonly gsoMessages: number
  /** Datagrams carried by those GSO messages (also counted in `sent`). */
  readonly gsoDatagrams: number
}

/** Source-address cache entries (direct-mapped on a hash of the address bytes). */
const ADDRESS_CACHE = 256
/** Destination-address cache: cleared when it reaches this many entries. */
const DEST_CACHE = 4096
/** The largest UDP payload (IPv6 without jumbograms: 65535 - 8; IPv4 allows 65507). */
const MAX_DATAGRAM = 65527

const noop = (): void => {}

/**
 * The receive and send buffers every BatchUdpSocket of this thread shares with the addon, the send queue in them, and
 * the address caches. Sharing is safe because batches are dispatched synchronously on this thread: a socket's batch
 * has been handed to its handler in full before the addon reads the next one (from any socket) into the receive
 * buffer, and queued sends are flushed at the end of every dispatch and in a microtask otherwise, so they never wait
 * for another readable event. Created on the first readable event or the first send.
 */
class SharedBatch {
  readonly recvBuffer: ArrayBuffer
  readonly recvMeta: Int32Array
  private readonly recvMetaBytes: Uint8Array
  private readonly sendBuffer: Uint8Array
  private readonly sendMeta: Int32Array
  readonly slot: number
  readonly meta: number
  private readonly sendStride: number
  private readonly batch: number
  private sendCount = 0
  private sendUsed = 0
  /** Socket batches being dispatched (sends made meanwhile are flushed when the outermost returns). */
  private dispatching = 0
  private flushQueued = false
  private readonly cacheKeys = new Int32Array(ADDRESS_CACHE * 5).fill(-1)
  private readonly cacheNames: string[] = new Array<string>(ADDRESS_CACHE).fill('')
  /** destination address text -> [family, address words 0..3] */
  private readonly destCache = new Map<string, Int32Array>()

  constructor (private readonly native: NativeUdpBinding) {
    const b = native.buffers()
    this.recvBuffer = b.recv
    this.recvMeta = new Int32Array(b.recvMeta)
    this.recvMetaBytes = new Uint8Array(b.recvMeta)
    this.sendBuffer = new Uint8Array(b.send)
    this.sendMeta = new Int32Array(b.sendMeta)
    this.slot = native.SLOT
    this.meta = native.META
    this.sendStride = native.SEND_META
    this.batch = native.BATCH
  }

  beginDispatch (): void { this.dispatching++ }

  /** After a socket's batch: send what its handlers (or any other code meanwhile) queued, on every socket. */
  endDispatch (): void {
    if (--this.dispatching === 0 && this.sendCount > 0) this.flush()
  }

  /** Queue one datagram for socket `id` (copied now); `dest` from destination(). */
  enqueue (id: number, data: Uint8Array, dest: Int32Array, port: number): void {
    const length = data.byteLength
    if (this.sendCount === this.batch || this.sendUsed + length > this.sendBuffer.length) this.flush()
    const offset = this.sendUsed
    this.sendBuffer.set(data, offset)
    const m = this.sendCount * this.sendStride
    const meta = this.sendMeta
    meta[m] = offset; meta[m + 1] = length; meta[m + 2] = port; meta[m + 3] = dest[0]
    meta[m + 4] = dest[1]; meta[m + 5] = dest[2]; meta[m + 6] = dest[3]; meta[m + 7] = dest[4]
    meta[m + 8] = id
    this.sendUsed = (offset + length + 7) & ~7
    this.sendCount++
    if (this.dispatching === 0 && !this.flushQueued) {
      this.flushQueued = true
      queueMicrotask(this.flushTask)
    }
  }

  private readonly flushTask = (): void => {
    this.flushQueued = false
    if (this.sendCount > 0) this.flush()
  }

  /** Send everything queued, on every socket, now (one sendmmsg per socket). */
  flush (): void {
    const count = this.sendCount
    if (count === 0) return
    this.sendCount = 0
    this.sendUsed = 0
    const err = this.native.flush(count)
    if (err !== 0) log.trace('send failed: %s', getSystemErrorName(-err))
  }

  /** The text of the source address in receive metadata at word `m`, from a small cache. */
  addressAt (m: number): string {
    const meta = this.recvMeta
    const family = meta[m + 2]
    const a0 = meta[m + 4]; const a1 = meta[m + 5]; const a2 = meta[m + 6]; const a3 = meta[m + 7]
    const h = Math.imul(a0 ^ Math.imul(a1, 0x85ebca6b) ^ Math.imul(a2, 0xc2b2ae35) ^ Math.imul(a3, 0x27d4eb2f) ^ family, 0x9e3779b1) >>> 24
    const keys = this.cacheKeys
    const k = h * 5
    if (keys[k] === family && keys[k + 1] === a0 && keys[k + 2] === a1 && keys[k + 3] === a2 && keys[k + 4] === a3) {
      return this.cacheNames[h]
    }
    const name = formatAddress(family, this.recvMetaBytes, (m + 4) * 4)
    keys[k] = family; keys[k + 1] = a0; keys[k + 2] = a1; keys[k + 3] = a2; keys[k + 4] = a3
    this.cacheNames[h] = name
    return name
  }

  /** [family, 4 address words as laid out in the metadata] for an IP literal, cached; undefined if not an IP. */
  destination (address: string): Int32Array | undefined {
    let dest = this.destCache.get(address)
    if (dest !== undefined) return dest
    dest = new Int32Array(5)
    const bytes = new Uint8Array(dest.buffer, 4, 16)
    if (writeIPv4(address, bytes, 0)) {
      dest[0] = 4
    } else if (ipFamily(address) === 6) {
      dest[0] = 6
      bytes.set(ipToBytes(address))
    } else {
      return undefined
    }
    if (this.destCache.size >= DEST_CACHE) this.destCache.clear()
    this.destCache.set(address, dest)
    return dest
  }
}

/** This thread's SharedBatch (one addon binding per thread), created on first use. */
let sharedBatch: SharedBatch | undefined
function shared (native: NativeUdpBinding): SharedBatch {
  sharedBatch ??= new SharedBatch(native)
  return sharedBatch
}

/**
 * A DatagramSocket that batches datagram I/O beneath Node (Linux, native addon native/udp_*.c): each readable
 * event reads up to 64 datagrams with one recvmmsg and dispatches them with one call into JS; datagrams sent from
 * handlers are collected and sent with one sendmmsg per socket when the batch's handlers have returned. Sends made
 * outside a handler are queued and sent in a microtask, so a burst of sends in one tick is batched too. The receive
 * and send buffers are shared by all the sockets of a thread, so a socket costs little to open and to hold.
 *
 * **The `data` given to the handler is a view into a receive buffer shared with the addon, valid only during the
 * handler call**: the next batch overwrites it. A handler that keeps the bytes (or a view of them) beyond its return
 * must copy them (`Buffer.from(data)`); `StunMessage.decode` copies by default. `send()` copies `data` at once, so
 * sending a received view (echo) is fine.
 *
 * Differences from the node:dgram UdpSocket: on an IPv6 socket an IPv4 destination is sent as `::ffff:a.b.c.d`
 * (dgram fails with EINVAL); a send the kernel cannot queue (EAGAIN) is dropped and counted in `stats()`.
 */
export class BatchUdpSocket implements DatagramSocket {
  readonly local: Endpoint
  private handler: (data: Buffer, from: Endpoint) => void = noop
  private readonly handle: object
  private readonly id: number
  private closed: Promise<void> | undefined
  private jsSendErrors = 0

  private constructor (private readonly native: NativeUdpBinding, family: 4 | 6, options: UdpBindOptions, address: string) {
    const opened = native.open(family, address, options.port ?? 0, options.bufferSize ?? 0, options.ipv6Only ?? false, this.onBatch, options.reusePort ?? false)
    this.handle = opened.handle
    this.id = opened.id
    this.local = { address: opened.address, port: opened.port }
  }

  /** Bind a socket. Rejects with TransportError when the address cannot be bound or the addon is not available. */
  static async bind (options: UdpBindOptions = {}): Promise<BatchUdpSocket> {
    const native = loadNativeUdp()
    if (native === undefined) throw new TransportError(`native UDP socket unavailable: ${nativeUdpUnavailableReason() ?? ''}`)
    const address = options.address ?? '0.0.0.0'
    const family = ipFamily(address)
    if (family === 0) throw new TransportError(`cannot bind UDP to ${JSON.stringify(address)}: not an IP address`)
    const port = options.port ?? 0
    if (!Number.isInteger(port) || port < 0 || port > 65535) throw new TransportError(`cannot bind UDP port ${port}: use 0-65535`)
    if (options.bufferSize !== undefined && !(Number.isInteger(options.bufferSize) && options.bufferSize > 0 && options.bufferSize < 2 ** 31)) {
      throw new TransportError(`bad UDP bufferSize ${options.bufferSize}: give a positive number of bytes`)
    }
    try {
      return new BatchUdpSocket(native, family, options, address)
    } catch (err) {
      throw new TransportError(`cannot bind UDP ${address}:${port}: ${(err as Error).message}`, { cause: err })
    }
  }

  onMessage (handler: (data: Buffer, from: Endpoint) => void): void {
    this.handler = handler
  }

  /** Called by the addon with the number of datagrams in the shared receive buffer (or -errno). */
  private readonly onBatch = (n: number): void => {
    if (n < 0) {
      log.error('socket %s:%d receive error: %s', this.local.address, this.local.port, getSystemErrorName(n))
      return
    }
    const sh = shared(this.native)
    const meta = sh.recvMeta
    const stride = sh.meta
    const slot = sh.slot
    const buffer = sh.recvBuffer
    sh.beginDispatch()
    try {
      for (let i = 0; i < n && this.closed === undefined; i++) {
        const m = i * stride
        const length = meta[m]
        if (length < 0) continue
        const data = Buffer.from(buffer, i * slot, length)
        const from: Endpoint = { address: sh.addressAt(m), port: meta[m + 1] }
        try {
          this.handler(data, from)
        } catch (err) {
          // Handlers must not throw; if one does, the socket stays up and the error is logged.
          log.error('datagram handler threw: %O', err)
        }
      }
    } finally {
      sh.endDispatch()
    }
  }

  /** Send one datagram; copied into the shared send batch at once. Never throws. */
  send (data: Uint8Array, to: Endpoint): void {
    if (this.closed !== undefined) return
    const sh = shared(this.native)
    const length = data.byteLength
    const port = to.port
    const dest = sh.destination(to.address)
    if (dest === undefined || !Number.isInteger(port) || port <= 0 || port > 65535 || length > MAX_DATAGRAM) {
      this.jsSendErrors++
      log.trace('send to %s:%d failed: %s', to.address, port, dest === undefined ? 'not an IP address' : length > MAX_DATAGRAM ? `${length} bytes is too big` : 'bad port')
      return
    }
    sh.enqueue(this.id, data, dest, port)
  }

  /**
   * Fast path (native/udp_fast.c): from now until `ttlMs` have passed, ChannelData on `channel` from `client` on this
   * (listener) socket goes to `peer` from `relay` without reaching the handler (RFC 8656 §12.6), and datagrams from
   * `peer` on `relay` go to `client` from this socket as ChannelData (§12.7), both in the addon. The caller must have
   * checked that it would relay those packets itself. False when not installed.
   */
  fastInstall (client: Endpoint, channel: number, relay: BatchUdpSocket, peer: Endpoint, ttlMs: number): boolean {
    const install = this.native.fastInstall
    if (install === undefined || this.closed !== undefined || relay.closed !== undefined || !(ttlMs > 0)) return false
    try {
      return install(this.handle, client.address, client.port, channel, relay.handle, peer.address, peer.port, Math.floor(ttlMs))
    } catch (err) {
      log.trace('fast path install failed: %O', err)
      return false
    }
  }

  /** Remove every fast path entry naming this socket. */
  fastPurge (): void {
    if (this.closed === undefined) this.native.fastPurge?.(this.handle)
  }

  /** What the fast path relayed through this (relay) socket since the last call: [c→p packets, bytes, p→c packets, bytes]. */
  takeFast (): [number, number, number, number] {
    return this.native.takeFast?.(this.handle) ?? [0, 0, 0, 0]
  }

  /** Counters: datagrams and batches received and sent, drops and errors. */
  stats (): BatchUdpStats {
    const s: NativeUdpStats = this.native.stats(this.handle)
    return { ...s, sendErrors: s.sendErrors + this.jsSendErrors }
  }

  /** Send what is queued, stop polling and close the socket. Idempotent; nothing keeps the event loop alive after. */
  close (): Promise<void> {
    if (this.closed === undefined) {
      // The queue is shared: flushing it all sends this socket's datagrams, and leaves none that name its id, which
      // the addon may give to the next socket opened.
      sharedBatch?.flush()
      this.closed = Promise.resolve()
      this.native.close(this.handle)
      this.handler = noop
    }
    return this.closed
  }

  async [Symbol.asyncDispose] (): Promise<void> { await this.close() }
}

/**
 * Format 4 or 16 address bytes exactly as node:dgram reports them (libuv's inet_ntop: `::ffff:1.2.3.4` for an
 * IPv4-mapped source on a dual-stack socket).
 */
export function formatAddress (family: number, bytes: Uint8Array, offset: number): string {
  const b = bytes
  const o = offset
  if (family === 4) return `${b[o]}.${b[o + 1]}.${b[o + 2]}.${b[o + 3]}`
  let mapped = b[o + 10] === 0xff && b[o + 11] === 0xff
  for (let i = 0; i < 10 && mapped; i++) mapped = b[o + i] === 0
  if (mapped) return `::ffff:${b[o + 12]}.${b[o + 13]}.${b[o + 14]}.${b[o + 15]}`
  // Anything else is rare enough to let Node's own formatter (libuv's inet_ntop) decide, so the text is identical.
  const groups: string[] = []
  for (let i = 0; i < 16; i += 2) groups.push(((b[o + i] << 8) | b[o + i + 1]).toString(16))
  return new SocketAddress({ address: groups.join(':'), family: 'ipv6' }).address
}
