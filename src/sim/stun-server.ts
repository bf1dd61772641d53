import { InvalidArgumentError } from '../errors.js'
import { createLogger } from '../log.js'
import { endpointKey, formatEndpoint, type Endpoint } from '../net/endpoint.js'
import { StunServerCore, type StunServerStats } from '../stun/server-core.js'
import type { SimHost } from './host.js'
import type { SimSocket } from './socket.js'

const log = createLogger('natcheck:traversal:sim:stun')

/** Options of SimStunServer.start. */
export interface SimStunServerOptions {
  /** The primary port P1 (default 3478). */
  readonly primaryPort?: number
  /**
   * The RFC 5780 alternate: a second host (its IP is IP2) and port P2 (default 3479). The server then listens on
   * (IP1,P1) (IP1,P2) on the primary host and (IP2,P1) (IP2,P2) on this one, and honours CHANGE-REQUEST.
   */
  readonly alternate?: { readonly host: SimHost, readonly port?: number }
  /** SOFTWARE in responses (default 'natkit'). */
  readonly software?: string
}

/**
 * natkit's STUN server core (StunServerCore, RFC 8489 / RFC 5780) on simulated hosts: the sans-IO adapter of
 * src/stun/server.ts with SimSockets in place of UDP sockets. Closed by close() or when its network closes.
 */
export class SimStunServer {
  private readonly sockets = new Map<string, SimSocket>()
  private closing: Promise<void> | undefined

  private constructor (readonly core: StunServerCore) {}

  /** Bind the one (or, with an alternate, four) sockets and start answering. Rejects with TransportError when a port is taken. */
  static async start (host: SimHost, options: SimStunServerOptions = {}): Promise<SimStunServer> {
    const primary = { address: host.ip, port: options.primaryPort ?? 3478 }
    const alt = options.alternate
    if (alt !== undefined && alt.host.network !== host.network) throw new InvalidArgumentError('the alternate host must be on the same SimNetwork')
    const core = new StunServerCore({
      primary,
      alternate: alt === undefined ? undefined : { address: alt.host.ip, port: alt.port ?? 3479 },
      software: options.software
    })
    const server = new SimStunServer(core)
    try {
      for (const local of core.localAddresses()) {
        const owner = local.address === host.ip ? host : (alt as { host: SimHost }).host
        server.attach(await owner.bind(local.port))
      }
    } catch (err) {
      await server.close()
      throw err
    }
    host.network.addCleanup(async () => { await server.close() })
    return server
  }

  /** (IP1, P1). */
  get primary (): Endpoint { return this.core.options.primary }

  /** (IP2, P2), the OTHER-ADDRESS of responses to the primary; undefined without an alternate. */
  get alternate (): Endpoint | undefined { return this.core.options.alternate }

  /** Counters from the protocol core. */
  get stats (): StunServerStats { return this.core.stats }

  /** Every address the server listens on. */
  addresses (): Endpoint[] {
    return [...this.sockets.values()].map(s => ({ ...s.local }))
  }

  private attach (socket: SimSocket): void {
    const local = socket.local
    this.sockets.set(endpointKey(local), socket)
    socket.onMessage((data, from) => {
      const action = this.core.handle(data, from, local)
      if (action.type === 'send') this.sockets.get(endpointKey(action.via))?.send(action.data, action.to)
      else log.trace('ignored datagram from %s: %s %s', formatEndpoint(from), action.reason, action.detail ?? '')
    })
  }

  /** Close every socket. Idempotent. */
  close (): Promise<void> {
    this.closing ??= (async () => {
      await Promise.all([...this.sockets.values()].map(async s => { await s.close() }))
    })()
    return this.closing
  }

  async [Symbol.asyncDispose] (): Promise<void> { await this.close() }
}
