import { formatEndpoint, type Endpoint } from '../net/endpoint.js'
import { RedisRendezvousRemote } from '../rendezvous/redis-remote.js'
import { RendezvousServer } from '../rendezvous/server.js'
import type { RelayLog } from './relay-log.js'

/** What the relay's rendezvous needs from its options. */
export interface RelayRendezvousOptions {
  readonly rendezvous?: Endpoint
  readonly authSecret?: string | readonly string[]
  readonly restMaxTtlS?: number
  readonly realm: string
  readonly redis?: string
}

/**
 * Start the relay's rendezvous (`--rendezvous`), if asked for. With `--redis` it shares peers with the rendezvous of
 * every relay node of the realm (RedisRendezvousRemote): peers registered at different nodes find and signal each
 * other. Redis going away is logged; peers of this node are served throughout.
 */
export async function startRelayRendezvous (options: RelayRendezvousOptions, say: RelayLog): Promise<RendezvousServer | undefined> {
  if (options.rendezvous === undefined) return undefined
  const remote = options.redis === undefined
    ? undefined
    : await RedisRendezvousRemote.start({
      url: options.redis,
      namespace: options.realm,
      onHealth: (ok, error) => {
        if (ok) say('info', 'rendezvous-redis', 'rendezvous: Redis reachable again, peers of other nodes are reachable again', { healthy: true })
        else say('warn', 'rendezvous-redis', `rendezvous: Redis unreachable (${error ?? ''}): peers of this node are served, messages for other nodes are queued`, { healthy: false, error })
      }
    })
  let server: RendezvousServer
  try {
    server = await RendezvousServer.start({ listen: options.rendezvous, authSecret: options.authSecret as string | string[], maxTokenAheadS: options.restMaxTtlS, remote })
  } catch (err) {
    await remote?.close()
    throw err
  }
  const url = server.url ?? formatEndpoint(options.rendezvous)
  say('info', 'rendezvous', `rendezvous ${url}${remote !== undefined ? ` (shared with the realm's nodes through Redis as node ${remote.node})` : ''}`, { url, node: remote?.node })
  return server
}
