import type { Endpoint } from '../net/endpoint.js'
import type { DatagramSocket } from '../net/udp.js'

/** Bytes of ChannelData a queue holds before it sends early (64 KiB-payload datagrams fit several times). */
const QUEUE_BYTES = 256 * 1024
/** Datagrams a queue holds before it sends early. */
const MAX_QUEUED = 256

/**
 * Peer → client ChannelData (RFC 8656 §12.4) gathered over one event-loop turn and handed to the client-facing
 * sockets together in the check phase (setImmediate). Datagrams from peers arrive on many relay sockets (one per
 * allocation), each with its own readable event; a batched socket (BatchUdpSocket) flushes after every event, so
 * without this each ChannelData to a client costs a sendmmsg of its own. Queued here, the datagrams that one poll
 * delivered leave the listener in one sendmmsg. The framing is written into the queue's buffer, which also
 * outlives the receive view of the payload. Only for sockets whose send() copies at once.
 */
export class ClientSendQueue {
  private readonly buffer = Buffer.allocUnsafeSlow(QUEUE_BYTES)
  private readonly offsets = new Int32Array(MAX_QUEUED)
  private readonly lengths = new Int32Array(MAX_QUEUED)
  private readonly sockets: Array<DatagramSocket | undefined> = new Array<DatagramSocket | undefined>(MAX_QUEUED).fill(undefined)
  private readonly targets: Array<Endpoint | undefined> = new Array<Endpoint | undefined>(MAX_QUEUED).fill(undefined)
  private count = 0
  private used = 0
  private scheduled = false
  private closed = false

  /** Queue a ChannelData message for `to` on `socket`; sent later in this event-loop turn. */
  push (socket: DatagramSocket, to: Endpoint, channel: number, data: Uint8Array): void {
    if (this.closed) return
    const size = 4 + data.length
    if (this.count === MAX_QUEUED || this.used + size > QUEUE_BYTES) this.flush()
    const b = this.buffer
    const offset = this.used
    b[offset] = channel >>> 8
    b[offset + 1] = channel & 0xff
    b[offset + 2] = data.length >>> 8
    b[offset + 3] = data.length & 0xff
    b.set(data, offset + 4)
    const i = this.count++
    this.offsets[i] = offset
    this.lengths[i] = size
    this.sockets[i] = socket
    this.targets[i] = to
    this.used = offset + size
    if (!this.scheduled) {
      this.scheduled = true
      setImmediate(this.flushTask)
    }
  }

  private readonly flushTask = (): void => {
    this.scheduled = false
    this.flush()
  }

  /** Hand everything queued to the sockets now. */
  flush (): void {
    const n = this.count
    this.count = 0
    this.used = 0
    for (let i = 0; i < n; i++) {
      const off = this.offsets[i]
      ;(this.sockets[i] as DatagramSocket).send(this.buffer.subarray(off, off + this.lengths[i]), this.targets[i] as Endpoint)
      this.sockets[i] = undefined
      this.targets[i] = undefined
    }
  }

  /** Send what is queued and accept no more. */
  close (): void {
    this.flush()
    this.closed = true
  }
}
