import { createSocket, type Socket } from 'node:dgram'
import { TransportError } from '../errors.js'
import { createLogger } from '../log.js'
import { ipFamily, type Endpoint } from './endpoint.js'

const log = createLogger('natcheck:net:udp')

/** The datagram seam every natkit protocol object talks to: tests and the simulator substitute their own. */
export interface DatagramSocket {
  /** The bound local address. */
  readonly local: Endpoint
  /** Send one datagram. Never throws; a failure is reported through the `error` callback or log. */
  send (data: Uint8Array, to: Endpoint): void
  /** Register the single receive handler (replaces any previous one). The handler must not throw. */
  onMessage (handler: (data: Buffer, from: Endpoint) => void): void
  /** Close the socket; idempotent. */
  close (): Promise<void>
}

/** Options for bindUdp. */
export interface UdpBindOptions {
  /** Local IP to bind (default 0.0.0.0; use :: for IPv6). */
  readonly address?: string
  /** Local port (default 0: any). */
  readonly port?: number
  /** Receive and send buffer size in bytes (default: the OS default). Servers under load want a few MB. */
  readonly bufferSize?: number
  /** Only IPv6 on an IPv6 socket (default false: dual-stack when bound to ::). */
  readonly ipv6Only?: boolean
  /**
   * SO_REUSEPORT (default false): sockets of one user bound to the same address and port share it, the kernel
   * hashing each remote address and port to one of them. Native sockets only (node:dgram has it from Node 22.12 on);
   * UdpSocket.bind rejects it.
   */
  readonly reusePort?: boolean
}

/** A DatagramSocket over `node:dgram`. */
export class UdpSocket implements DatagramSocket {
  private handler: (data: Buffer, from: Endpoint) => void = () => {}
  private closed: Promise<void> | undefined

  private constructor (readonly socket: Socket, readonly local: Endpoint) {
    socket.on('message', (data, rinfo) => {
      try {
        this.handler(data, { address: rinfo.address, port: rinfo.port })
      } catch (err) {
        // Handlers must not throw; if one does, the socket stays up and the error is logged.
        log.error('datagram handler threw: %O', err)
      }
    })
    socket.on('error', (err) => { log.error('socket %s:%d error: %s', local.address, local.port, err.message) })
  }

  /** Bind a UDP socket. Rejects with TransportError when the address cannot be bound. */
  static async bind (options: UdpBindOptions = {}): Promise<UdpSocket> {
    const address = options.address ?? '0.0.0.0'
    const family = ipFamily(address)
    if (family === 0) throw new TransportError(`cannot bind UDP to ${JSON.stringify(address)}: not an IP address`)
    if (options.reusePort === true) throw new TransportError(`cannot bind UDP ${address}:${options.port ?? 0} with SO_REUSEPORT: needs the native addon`)
    const socket = createSocket({
      type: family === 6 ? 'udp6' : 'udp4',
      ipv6Only: options.ipv6Only ?? false,
      recvBufferSize: options.bufferSize,
      sendBufferSize: options.bufferSize
    })
    await new Promise<void>((resolve, reject) => {
      const onError = (err: Error): void => { reject(new TransportError(`cannot bind UDP ${address}:${options.port ?? 0}: ${err.message}`, { cause: err })) }
      socket.once('error', onError)
      socket.bind({ address, port: options.port ?? 0, exclusive: true }, () => {
        socket.off('error', onError)
        resolve()
      })
    })
    const info = socket.address()
    return new UdpSocket(socket, { address: info.address, port: info.port })
  }

  send (data: Uint8Array, to: Endpoint): void {
    if (this.closed !== undefined) return
    this.socket.send(data, to.port, to.address, (err) => {
      if (err != null) log.trace('send to %s:%d failed: %s', to.address, to.port, err.message)
    })
  }

  onMessage (handler: (data: Buffer, from: Endpoint) => void): void {
    this.handler = handler
  }

  close (): Promise<void> {
    this.closed ??= new Promise<void>((resolve) => {
      try { this.socket.close(() => { resolve() }) } catch { resolve() }
    })
    return this.closed
  }

  async [Symbol.asyncDispose] (): Promise<void> { await this.close() }
}
