import { connect as netConnect, type Socket } from 'node:net'
import { connect as tlsConnect, type ConnectionOptions } from 'node:tls'
import { AbortError, TransportError } from '../errors.js'
import type { Endpoint } from './endpoint.js'

/** TLS settings for a client connection. */
export interface TlsClientOptions {
  /** SNI and certificate name (default: the host name given). */
  readonly servername?: string
  /** Verify the server certificate (default true). */
  readonly rejectUnauthorized?: boolean
  /** Extra trusted CA certificates (PEM). */
  readonly ca?: string | Buffer | Array<string | Buffer>
}

/** Options for connectStream. */
export interface StreamConnectOptions {
  readonly tls?: TlsClientOptions | false
  readonly localAddress?: string
  readonly timeoutMs?: number
  readonly signal?: AbortSignal
}

/** Open a TCP or TLS connection; rejects with TransportError (or AbortError) on failure. */
export async function connectStream (to: Endpoint & { host?: string }, options: StreamConnectOptions = {}): Promise<Socket> {
  const timeoutMs = options.timeoutMs ?? 10_000
  return await new Promise<Socket>((resolve, reject) => {
    let socket: Socket
    const what = options.tls === undefined || options.tls === false ? 'TCP' : 'TLS'
    const fail = (err: Error): void => {
      cleanup(); socket.destroy()
      reject(err instanceof AbortError ? err : new TransportError(`${what} connection to ${to.address}:${to.port} failed: ${err.message}`, { cause: err }))
    }
    const onAbort = (): void => { fail(new AbortError()) }
    const timer = setTimeout(() => { fail(new Error(`timed out after ${timeoutMs} ms`)) }, timeoutMs)
    const cleanup = (): void => {
      clearTimeout(timer)
      options.signal?.removeEventListener('abort', onAbort)
      socket.off('error', fail)
    }
    if (options.tls !== undefined && options.tls !== false) {
      // tls.connect passes localAddress on to net.connect; the type omits it.
      const tlsOptions: ConnectionOptions & { localAddress?: string } = {
        host: to.address,
        port: to.port,
        localAddress: options.localAddress,
        servername: options.tls.servername ?? (to.host !== undefined && to.host !== to.address ? to.host : undefined),
        rejectUnauthorized: options.tls.rejectUnauthorized ?? true,
        ca: options.tls.ca
      }
      socket = tlsConnect(tlsOptions, () => { cleanup(); resolve(socket) })
    } else {
      socket = netConnect({ host: to.address, port: to.port, localAddress: options.localAddress }, () => { cleanup(); resolve(socket) })
    }
    socket.once('error', fail)
    if (options.signal?.aborted === true) { onAbort(); return }
    options.signal?.addEventListener('abort', onAbort, { once: true })
  })
}
