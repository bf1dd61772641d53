import { createServer, type Server } from 'node:http'
import { TransportError } from '../errors.js'
import { createLogger } from '../log.js'
import type { Endpoint } from '../net/endpoint.js'

const log = createLogger('natcheck:relay:admin')

/** Options for AdminServer.start. */
export interface AdminServerOptions {
  /** Where to listen (keep it on loopback or a management network: there is no authentication). */
  readonly listen: Endpoint
  /** Prometheus text exposition for GET /metrics (e.g. PrometheusRelayMetrics.render). */
  readonly metrics: () => string | Promise<string>
  /** Content-Type of the exposition (default the Prometheus text format 0.0.4). */
  readonly contentType?: string
  /** Health for GET /healthz: true → 200 "ok", false → 503 "draining", a string → 503 with that text. */
  readonly healthy: () => boolean | string
}

const TEXT_FORMAT = 'text/plain; version=0.0.4; charset=utf-8'

/** A tiny HTTP admin endpoint: GET /metrics (Prometheus text format 0.0.4) and GET /healthz. */
export class AdminServer {
  private closed: Promise<void> | undefined
  private constructor (private readonly server: Server, readonly local: Endpoint) {}

  static async start (options: AdminServerOptions): Promise<AdminServer> {
    const server = createServer((req, res) => {
      try {
        const path = (req.url ?? '/').split('?')[0]
        if (req.method !== 'GET' && req.method !== 'HEAD') { res.writeHead(405, { allow: 'GET, HEAD' }).end(); return }
        if (path === '/metrics') {
          Promise.resolve().then(options.metrics).then((text) => {
            res.writeHead(200, { 'content-type': options.contentType ?? TEXT_FORMAT }).end(text)
          }, (err) => {
            log.error('metrics failed: %O', err)
            if (!res.headersSent) res.writeHead(500).end()
          })
        } else if (path === '/healthz') {
          const h = options.healthy()
          res.writeHead(h === true ? 200 : 503, { 'content-type': 'text/plain' }).end(h === true ? 'ok\n' : h === false ? 'draining\n' : `${h}\n`)
        } else {
          res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n')
        }
      } catch (err) {
        log.error('admin request failed: %O', err)
        if (!res.headersSent) res.writeHead(500).end()
      }
    })
    server.keepAliveTimeout = 5000
    const local = await new Promise<Endpoint>((resolve, reject) => {
      server.once('error', (err) => { reject(new TransportError(`cannot listen for admin HTTP on ${options.listen.address}:${options.listen.port}: ${err.message}`, { cause: err })) })
      server.listen({ host: options.listen.address, port: options.listen.port }, () => {
        const a = server.address()
        if (a === null || typeof a === 'string') { reject(new TransportError('admin listener has no address')); return }
        resolve({ address: a.address, port: a.port })
      })
    })
    return new AdminServer(server, local)
  }

  /** Stop listening and drop idle connections. Idempotent. */
  close (): Promise<void> {
    this.closed ??= new Promise<void>((resolve) => {
      this.server.close(() => { resolve() })
      this.server.closeAllConnections()
    })
    return this.closed
  }

  async [Symbol.asyncDispose] (): Promise<void> { await this.close() }
}
