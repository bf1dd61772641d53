import type { RelayMetrics } from './metrics.js'
import type { TurnServerCore } from './server-core.js'
import type { RelayAction } from './types.js'

/**
 * What the TURN server adapter's parts (client listeners and connections, relay sockets, RFC 6062 peer connections)
 * call back into: the core, its clock and metrics, and the one place that carries out the core's actions.
 */
export interface AdapterHost {
  readonly core: TurnServerCore
  readonly metrics: RelayMetrics
  now: () => number
  /** Carry out the core's actions (never throws). */
  execute: (actions: RelayAction[]) => void
  /** True once close() began: late callbacks do nothing. */
  closing: () => boolean
  /** A socket whose receive handler gets views of a shared buffer exists: bytes kept past a handler are copied. */
  markNativeViews: () => void
}
