import type { Endpoint } from '../net/endpoint.js'
import type { DatagramSocket } from '../net/udp.js'
import { buildBindingRequest, StunClient } from '../stun/client.js'
import { ArrivalWatch } from './hairpin.js'
import { clientProbe, probeBudgetMs, sendOnSchedule, type ProbeTiming } from './probe.js'

/** Result of the binding lifetime test. */
export interface LifetimeResult {
  /** The longest idle time (s) after which a mapping still let the server's response in. */
  readonly aliveS: number | null
  /** The shortest idle time (s) after which it did not. Null when every mapping survived. */
  readonly expiredS: number | null
}

/** Default idle times to test, in seconds (RFC 4787 REQ-5 asks NATs to keep UDP mappings at least 120 s). */
export const LIFETIME_CHECKPOINTS_S = [5, 10, 20, 30, 45, 60, 90, 120, 180, 300]

/**
 * RFC 5780 §4.6, run in parallel rather than as a sequential search: one socket per idle time T makes a mapping with
 * a Binding request, then stays silent. After T seconds another socket asks the server (RESPONSE-PORT) to send a
 * response to the shared public IP at that first socket's mapped port. If it arrives, the mapping outlived T. The
 * whole test takes the longest T, and brackets the lifetime between the last surviving and first expired T.
 */
export async function testLifetime (o: {
  primary: Endpoint
  timing: ProbeTiming
  maxS: number
  bindAddress: string
  /** Socket seam (default: bind a node:dgram socket on `bindAddress`); the sockets it binds are closed at the end. */
  bindSocket?: () => Promise<DatagramSocket>
  signal?: AbortSignal
  onCheckpoint?: (s: number, alive: boolean) => void
}): Promise<LifetimeResult> {
  const checkpoints = LIFETIME_CHECKPOINTS_S.filter(s => s <= o.maxS)
  const clients: StunClient[] = []
  const sockets: DatagramSocket[] = []
  const create = async (onOther?: (d: Buffer) => void): Promise<StunClient> => {
    if (o.bindSocket === undefined) return await StunClient.create({ localAddress: o.bindAddress, onOther })
    const socket = await o.bindSocket()
    sockets.push(socket)
    return await StunClient.create({ socket, onOther })
  }
  try {
    const results = await Promise.all(checkpoints.map(async (seconds) => {
      const watch = new ArrivalWatch()
      const holder = await create((d) => { watch.observe(d) })
      clients.push(holder)
      const first = await clientProbe(holder, o.timing, o.signal)(o.primary)
      if (first.kind !== 'response') return { seconds, alive: null }
      await sleep(seconds * 1000, o.signal)
      const asker = await create()
      clients.push(asker)
      const request = buildBindingRequest({ responsePort: first.result.mapped.port })
      const seen = watch.waitFor(request.toString('latin1', 4, 20), probeBudgetMs(o.timing), o.signal)
      const cancel = sendOnSchedule(() => { asker.socket.send(request, o.primary) }, o.timing)
      const alive = await seen
      cancel()
      o.onCheckpoint?.(seconds, alive)
      return { seconds, alive }
    }))
    const alive = results.filter(r => r.alive === true).map(r => r.seconds)
    const dead = results.filter(r => r.alive === false).map(r => r.seconds)
    return { aliveS: alive.length > 0 ? Math.max(...alive) : null, expiredS: dead.length > 0 ? Math.min(...dead) : null }
  } finally {
    await Promise.all(clients.map(async c => { await c.close() }))
    await Promise.all(sockets.map(async s => { await s.close() }))
  }
}

async function sleep (ms: number, signal?: AbortSignal): Promise<void> {
  await new Promise<void>((resolve) => {
    const t = setTimeout(() => { signal?.removeEventListener('abort', onAbort); resolve() }, ms)
    const onAbort = (): void => { clearTimeout(t); resolve() }
    signal?.addEventListener('abort', onAbort, { once: true })
  })
}
