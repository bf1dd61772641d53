import type { Endpoint } from '../net/endpoint.js'
import type { DatagramSocket } from '../net/udp.js'
import { buildBindingRequest } from '../stun/client.js'
import { probeBudgetMs, sendOnSchedule, type ProbeTiming } from './probe.js'

/** Watches a socket's non-response traffic for STUN messages with given transaction keys. */
export class ArrivalWatch {
  private readonly waiting = new Map<string, () => void>()

  /** Feed every datagram that was not a response to a pending request (StunClient's onOther). */
  observe (data: Buffer): void {
    if (data.length < 20) return
    this.waiting.get(data.toString('latin1', 4, 20))?.()
  }

  /** Resolve true when a message with `key` arrives within `ms`, false otherwise. */
  async waitFor (key: string, ms: number, signal?: AbortSignal): Promise<boolean> {
    return await new Promise<boolean>((resolve) => {
      const done = (seen: boolean): void => {
        clearTimeout(timer)
        signal?.removeEventListener('abort', onAbort)
        this.waiting.delete(key)
        resolve(seen)
      }
      const onAbort = (): void => { done(false) }
      const timer = setTimeout(() => { done(false) }, ms)
      this.waiting.set(key, () => { done(true) })
      signal?.addEventListener('abort', onAbort, { once: true })
    })
  }
}

/**
 * RFC 5780 §4.5: send a Binding request from the socket to its own mapped address. If the NAT hairpins, the request
 * comes back to the same socket (as a request, which `watch` sees). Sent three times on the probe schedule, so one
 * lost packet does not turn a hairpinning NAT into a non-hairpinning one.
 */
export async function testHairpin (socket: DatagramSocket, watch: ArrivalWatch, mapped: Endpoint, timing: ProbeTiming, signal?: AbortSignal): Promise<boolean> {
  const request = buildBindingRequest()
  const key = request.toString('latin1', 4, 20)
  const seen = watch.waitFor(key, probeBudgetMs(timing), signal)
  const cancel = sendOnSchedule(() => { socket.send(request, mapped) }, timing)
  try {
    return await seen
  } finally {
    cancel()
  }
}
