import { AbortError } from '../errors.js'
import type { RendezvousClient, RendezvousMessageInfo } from './client.js'
import { RendezvousClosedError, RendezvousTimeoutError } from './errors.js'

/** A message received by waitForMessage. */
export interface ReceivedMessage<T = unknown> {
  readonly from: string
  readonly data: T
  readonly info: RendezvousMessageInfo
}

/** Options for waitForMessage. */
export interface WaitForMessageOptions {
  /** Reject with RendezvousTimeoutError after this long (default 10000 ms). */
  readonly timeoutMs?: number
  readonly signal?: AbortSignal
}

/**
 * The next message on `client` that `predicate` accepts (messages before the call are not seen: call it before
 * triggering the answer). Rejects with RendezvousTimeoutError, AbortError, or RendezvousClosedError if the client
 * closes. Listeners and timers are removed when it settles.
 */
export async function waitForMessage<T = unknown> (
  client: RendezvousClient,
  predicate: (from: string, data: unknown, info: RendezvousMessageInfo) => boolean,
  options: WaitForMessageOptions = {}
): Promise<ReceivedMessage<T>> {
  const timeoutMs = options.timeoutMs ?? 10_000
  if (options.signal?.aborted === true) throw new AbortError()
  let onMessage: ((from: string, data: unknown, info: RendezvousMessageInfo) => void) | undefined
  let onClose: ((error?: Error) => void) | undefined
  let onAbort: (() => void) | undefined
  let timer: NodeJS.Timeout | undefined
  try {
    return await new Promise<ReceivedMessage<T>>((resolve, reject) => {
      onMessage = (from, data, info) => {
        let ok = false
        try { ok = predicate(from, data, info) } catch (err) { reject(err as Error); return }
        if (ok) resolve({ from, data: data as T, info })
      }
      onClose = (error) => { reject(new RendezvousClosedError('the rendezvous client closed while waiting for a message', { cause: error })) }
      onAbort = () => { reject(new AbortError()) }
      timer = setTimeout(() => { reject(new RendezvousTimeoutError('waitForMessage', timeoutMs)) }, timeoutMs)
      timer.unref()
      client.on('message', onMessage)
      client.once('close', onClose)
      options.signal?.addEventListener('abort', onAbort, { once: true })
    })
  } finally {
    clearTimeout(timer)
    if (onMessage !== undefined) client.off('message', onMessage)
    if (onClose !== undefined) client.off('close', onClose)
    if (onAbort !== undefined) options.signal?.removeEventListener('abort', onAbort)
  }
}
