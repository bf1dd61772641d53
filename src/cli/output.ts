import { ERROR_CODES, NatError } from '../errors.js'
import { ExitCode, exitCodeFor, type CommandKind } from './exit-codes.js'

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

/** The `error` member of a --json document: `{ code, message }`. */
export function errorJson (err: unknown): { code: string, message: string } {
  return { code: err instanceof NatError ? err.code : ERROR_CODES.INTERNAL, message: err instanceof Error ? err.message : String(err) }
}

/**
 * Report a failure the natcheck way: `{ "error": { code, message } }` on stdout with --json (after the members of
 * `doc`, e.g. a partial report), a one-line message on stderr in any case; sets process.exitCode from the one map
 * (exit-codes.ts). Returns the exit code.
 */
export function reportError (err: unknown, json: boolean, o: { kind?: CommandKind, doc?: Record<string, unknown> } = {}): ExitCode {
  const { message } = errorJson(err)
  const exit = exitCodeFor(err, o.kind)
  if (json) printJson({ ...o.doc, error: errorJson(err) })
  process.stderr.write(`natcheck: ${message}\n`)
  if (exit === ExitCode.Internal && err instanceof Error && err.stack !== undefined && process.env.DEBUG !== undefined) {
    process.stderr.write(`${err.stack}\n`)
  }
  process.exitCode = exit
  return exit
}
