import type { RendezvousClient } from '../rendezvous/client.js'
import type { SignalChannel } from './signal-channel.js'

/** A SignalChannel to one peer over a registered rendezvous client. */
export function rendezvousChannel (client: RendezvousClient, peer: string): SignalChannel {
  return {
    send: async (message) => { await client.send(peer, message) },
    subscribe: (handler) => {
      const listener = (from: string, data: unknown): void => { if (from === peer) handler(data) }
      client.on('message', listener)
      return () => { client.off('message', listener) }
    }
  }
}

/** The ICE role by id: the lexicographically smaller id controls (both sides compute the same answer). */
export function roleFor (self: string, peer: string): 'controlling' | 'controlled' {
  return self < peer ? 'controlling' : 'controlled'
}
