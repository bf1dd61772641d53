import createDebug from 'debug'
import { format } from 'node:util'

/** A logger on top of `debug`: `log(...)` is info, `.error` and `.trace` are sub-namespaces. */
export interface Logger {
  (formatter: string, ...args: unknown[]): void
  readonly enabled: boolean
  error(formatter: string, ...args: unknown[]): void
  trace(formatter: string, ...args: unknown[]): void
}

/** One log record handed to a LogSink. */
export interface LogRecord {
  readonly level: 'info' | 'error' | 'trace'
  /** Where it comes from, e.g. `natcheck:relay:server`. */
  readonly namespace: string
  /** The formatted message (printf-style arguments applied with util.format). */
  readonly message: string
}

/**
 * Where natkit's logs go when an application takes them over (setLogSink): pino, winston, a test's array. The sink
 * decides what to keep by level and namespace; it must not throw.
 */
export type LogSink = (record: LogRecord) => void

let sink: LogSink | undefined

/**
 * Send every natkit log record to `s` instead of `debug` (which prints to stderr when DEBUG=natcheck:* is set), or,
 * with undefined, go back to `debug`. Applies to loggers already created.
 */
export function setLogSink (s: LogSink | undefined): void {
  sink = s
}

/** Create a logger for a namespace such as `natcheck:stun:client`. Enable with `DEBUG=natcheck:*`, or see setLogSink. */
export function createLogger (namespace: string): Logger {
  const info = createDebug(namespace)
  const error = createDebug(`${namespace}:error`)
  const trace = createDebug(`${namespace}:trace`)
  const emit = (level: LogRecord['level'], fallback: createDebug.Debugger, formatter: string, args: unknown[]): void => {
    if (sink === undefined) { fallback(formatter, ...args); return }
    try { sink({ level, namespace, message: format(formatter, ...args) }) } catch { /* a sink must not break natkit */ }
  }
  const logger = ((formatter: string, ...args: unknown[]) => { emit('info', info, formatter, args) }) as Logger
  Object.defineProperty(logger, 'enabled', { get: () => sink !== undefined || info.enabled })
  logger.error = (formatter, ...args) => { emit('error', error, formatter, args) }
  logger.trace = (formatter, ...args) => { emit('trace', trace, formatter, args) }
  return logger
}
