import createDebug from 'debug'

/** A logger on top of `debug`: `log(...)` is info, `.error` and `.trace` are sub-namespaces. */
export interface Logger {
  (formatter: string, ...args: unknown[]): void
  readonly enabled: boolean
  error(formatter: string, ...args: unknown[]): void
  trace(formatter: string, ...args: unknown[]): void
}

/** Create a logger for a namespace such as `natcheck:stun:client`. Enable with `DEBUG=natcheck:*`. */
export function createLogger (namespace: string): Logger {
  const info = createDebug(namespace)
  const error = createDebug(`${namespace}:error`)
  const trace = createDebug(`${namespace}:trace`)
  const logger = ((formatter: string, ...args: unknown[]) => { info(formatter, ...args) }) as Logger
  Object.defineProperty(logger, 'enabled', { get: () => info.enabled })
  logger.error = (formatter, ...args) => { error(formatter, ...args) }
  logger.trace = (formatter, ...args) => { trace(formatter, ...args) }
  return logger
}
