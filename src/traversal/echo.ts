import { NoPathError } from '../errors.js'
import { createLogger } from '../log.js'
import type { RendezvousClient } from '../rendezvous/client.js'
import type { PathInfo } from './agent-options.js'
import type { PeerSession } from './session.js'

const log = createLogger('natcheck:traversal:echo')

/**
 * The outcome of echoExchange: how many of our pings came back, their median round trip (ms), and the path they ran
 * on (undefined when the session had none then).
 */
export interface EchoResult { readonly delivered: number, readonly medianRttMs: number | null, readonly path: PathInfo | undefined }

/**
 * Each side sends `count` numbered pings and answers the peer's; then says `done` through the rendezvous and keeps
 * answering until the peer has said it too (bounded), so neither side closes while the other still counts. The path
 * is taken before this side says `done`: once it has, the peer may close, and a direct TCP path (the TCP punch) ends
 * with the peer's close — often before the peer's `done` is seen here — leaving the session on the relay.
 */
export async function echoExchange (session: PeerSession, client: RendezvousClient, peer: string, count: number): Promise<EchoResult> {
  const sentAt = new Map<number, number>()
  const rtts: number[] = []
  let peerDone = false
  const onDone = (from: string, data: unknown): void => { if (from === peer && (data as { t?: string })?.t === 'natkit/echo-done') peerDone = true }
  client.on('message', onDone)
  session.on('message', (d) => {
    if (d.length !== 5) return
    const n = d.readUInt32BE(1)
    if (d[0] === 0x50) { const r = Buffer.from(d); r[0] = 0x52; session.send(r) } // P → R
    else if (d[0] === 0x52) { const at = sentAt.get(n); if (at !== undefined) { sentAt.delete(n); rtts.push(performance.now() - at) } }
  })
  for (let i = 0; i < count; i++) {
    const b = Buffer.alloc(5); b[0] = 0x50; b.writeUInt32BE(i, 1)
    sentAt.set(i, performance.now())
    session.send(b)
    await new Promise(resolve => setTimeout(resolve, 5))
  }
  const deadline = performance.now() + 2000
  while (rtts.length < count && performance.now() < deadline) await new Promise(resolve => setTimeout(resolve, 10))
  const path = currentPath(session)
  await client.send(peer, { t: 'natkit/echo-done' }).catch((err: Error) => { log('could not tell %s the echo is done: %s', peer, err.message) })
  const peerDeadline = performance.now() + 5000
  while (!peerDone && performance.now() < peerDeadline) await new Promise(resolve => setTimeout(resolve, 10))
  client.off('message', onDone)
  const sorted = rtts.sort((a, b) => a - b)
  return { delivered: rtts.length, medianRttMs: sorted.length > 0 ? Math.round(sorted[Math.floor(sorted.length / 2)] * 100) / 100 : null, path }
}

function currentPath (session: PeerSession): PathInfo | undefined {
  try {
    return session.path
  } catch (err) {
    if (err instanceof NoPathError) return undefined // no path works at this moment
    throw err
  }
}
