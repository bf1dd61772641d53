import { InvalidArgumentError } from '../errors.js'

/** How `natcheck relay` writes its log on stderr. */
export type RelayLogFormat = 'text' | 'json'

/** A log level, as log shippers name them. */
export type RelayLogLevel = 'info' | 'warn' | 'error'

/** Field values: scalars and lists of them, so every line stays flat and greppable. */
export type RelayLogFields = Readonly<Record<string, string | number | boolean | readonly string[] | undefined>>

/**
 * The relay's event log: one line per event on stderr (stdout stays empty).
 *
 * - `text`: `natcheck relay: <text>`, for people.
 * - `json`: one JSON object per line for log shippers (journald, Vector, Fluent Bit, Loki), with stable field names:
 *   `ts` (ISO 8601, UTC), `level` (info, warn, error), `event` (a fixed name such as `allocation` or
 *   `quota-refused`), `msg` (the text line), then the event's own fields. Field names never change meaning; new
 *   fields may be added.
 */
export interface RelayLog {
  (level: RelayLogLevel, event: string, text: string, fields?: RelayLogFields): void
  readonly format: RelayLogFormat
}

/** Parse `--log-format`. */
export function parseLogFormat (value: string | undefined): RelayLogFormat {
  if (value === undefined || value === 'text') return 'text'
  if (value === 'json') return 'json'
  throw new InvalidArgumentError(`--log-format ${JSON.stringify(value)}: write text or json`)
}

/** Make a RelayLog writing to `write` (default: stderr), stamping times with `now` (default Date.now), with `base` fields on every JSON line (a worker's number). */
export function createRelayLog (format: RelayLogFormat, write: (line: string) => void = (l) => { process.stderr.write(l) }, now: () => number = Date.now, base: RelayLogFields = {}): RelayLog {
  const log = ((level: RelayLogLevel, event: string, text: string, fields: RelayLogFields = {}): void => {
    if (format === 'text') { write(`natcheck relay: ${text}\n`); return }
    const line: Record<string, unknown> = { ts: new Date(now()).toISOString(), level, event, msg: text, ...base }
    for (const [k, v] of Object.entries(fields)) if (v !== undefined && !(k in line)) line[k] = v
    write(`${JSON.stringify(line)}\n`)
  }) as RelayLog
  Object.defineProperty(log, 'format', { value: format })
  return log
}
