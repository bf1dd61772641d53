import { formatEndpoint, type Endpoint } from '../../net/endpoint.js'
import { createLogger } from '../../log.js'
import { classifyIceDatagram } from './app-demux.js'
import { candidateKey } from './check-list.js'
import { routeKey, type IceAction, type IceState } from './types.js'

const log = createLogger('natcheck:traversal:app-data')

/**
 * An application datagram arrived on a base (RFC 7983 §7, RFC 8445 §11): it is the app's when it is not STUN and it
 * came over a checked pair — one an authenticated check proved in either direction — and is dropped otherwise. The
 * bytes are delivered as received, in a copy the app may keep, with the base's component.
 */
export function receiveData (s: IceState, baseKey: string, data: Buffer, from: Endpoint, out: IceAction[]): void {
  const base = s.bases.get(baseKey)
  if (base === undefined) return
  if (classifyIceDatagram(data, s.proven.has(routeKey(baseKey, from))) !== 'app') {
    log.trace('dropped %d bytes from %s: not a checked pair', data.length, formatEndpoint(from))
    return
  }
  out.push({ type: 'data', component: base.component, from, data: Buffer.from(data) })
}

/**
 * The send action for an application datagram on a component's selected pair (raw: the app's bytes are the
 * datagram), or undefined when the component has no path yet.
 */
export function sendData (s: IceState, data: Uint8Array, component: number): IceAction | undefined {
  const pair = s.selected.get(component)
  if (pair === undefined) return undefined
  const base = candidateKey(pair.local)
  if (!s.bases.has(base)) return undefined
  return { type: 'send', base, to: pair.remote, data: Buffer.from(data) }
}
