import { NatError } from '../errors.js'
import { ExitCode, exitCodeFor } from './exit-codes.js'

/** The version of every `--json` document natcheck prints. */
export const SCHEMA_VERSION = 1

/** Whether to colour stderr/stdout output: only on a TTY, honouring NO_COLOR, FORCE_COLOR and --no-color. */
export function useColor (stream: NodeJS.WriteStream, flag: boolean | undefined): boolean {
  if (flag === false) return false
  if (process.env.FORCE_COLOR !== undefined && process.env.FORCE_COLOR !== '0') return true
  if (process.env.NO_COLOR !== undefined && process.env.NO_COLOR !== '') return false
  return stream.isTTY === true
}

/** Minimal ANSI styling that degrades to plain text. */
export function styler (enabled: boolean): { bold: (s: string) => string, dim: (s: string) => string, green: (s: string) => string, red: (s: string) => string, yellow: (s: string) => string } {
  const wrap = (open: number, close: number) => (s: string) => enabled ? `\u001b[${open}m${s}\u001b[${close}m` : s
  return { bold: wrap(1, 22), dim: wrap(2, 22), green: wrap(32, 39), red: wrap(31, 39), yellow: wrap(33, 39) }
}

/** Print one JSON document on stdout. */
export function printJson (doc: Record<string, unknown>): void {
  process.stdout.write(`${JSON.stringify({ schemaVersion: SCHEMA_VERSION, ...doc }, null, 2)}\n`)
}

/** Aligned `label   value` rows. */
export function table (rows: Array<[string, string]>): string {
  const width = Math.max(...rows.map(([k]) => k.length))
  return rows.map(([k, v]) => `${k.padEnd(width)}  ${v}`).join('\n') + '\n'
}

/**
 * Report a failure the natcheck way: `{ "error": { code, message } }` on stdout with --json, a one-line message on
 * stderr otherwise; sets process.exitCode from the one map.
 */
export function reportError (err: unknown, json: boolean): void {
  const code = err instanceof NatError ? err.code : 'ERR_INTERNAL'
  const message = err instanceof Error ? err.message : String(err)
  const exit = exitCodeFor(err)
  if (json) printJson({ error: { code, message } })
  process.stderr.write(`natcheck: ${message}\n`)
  if (exit === ExitCode.Internal && err instanceof Error && err.stack !== undefined && process.env.DEBUG !== undefined) {
    process.stderr.write(`${err.stack}\n`)
  }
  process.exitCode = exit
}
