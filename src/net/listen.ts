import type { Server } from 'node:net'
import { TransportError } from '../errors.js'
import { createLogger } from '../log.js'
import { formatEndpoint, type Endpoint } from './endpoint.js'

const log = createLogger('natcheck:net:listen')

/** Options of listenStream. */
export interface ListenStreamOptions {
  /**
   * Hold the port alone (default true). False lets node:cluster's primary share the listener among its workers
   * (the TURN relay's `reusePort`), as `server.listen(port, host)` without options does.
   */
  readonly exclusive?: boolean
  /** What the error message calls the listener (default 'TCP'), e.g. 'TLS'. */
  readonly label?: string
}

/**
 * Start a net.Server or tls.Server listening on `local` (port 0 picks one) and resolve to the bound endpoint; rejects
 * with TransportError when the address cannot be bound. Errors after that are logged, never thrown: the STUN server,
 * the TURN server's client listeners and its RFC 6062 relay listeners all listen through here.
 */
export async function listenStream (server: Server, local: Endpoint, options: ListenStreamOptions = {}): Promise<Endpoint> {
  const label = options.label ?? 'TCP'
  return await new Promise<Endpoint>((resolve, reject) => {
    const onError = (err: Error): void => {
      reject(new TransportError(`cannot listen on ${label} ${formatEndpoint(local)}: ${err.message}`, { cause: err }))
    }
    server.once('error', onError)
    server.listen({ host: local.address, port: local.port, exclusive: options.exclusive ?? true }, () => {
      server.off('error', onError)
      server.on('error', (err) => { log.error('%s listener %s error: %s', label, formatEndpoint(local), err.message) })
      const a = server.address()
      if (a === null || typeof a === 'string') { reject(new TransportError('listener has no address')); return }
      resolve({ address: a.address, port: a.port })
    })
  })
}

/** Stop `server` accepting and resolve once it has closed (connections it accepted are the caller's). */
export async function closeStream (server: Server): Promise<void> {
  await new Promise<void>((resolve) => { server.close(() => { resolve() }) })
}
