import { InvalidArgumentError, NatError, ResolveError, StunErrorResponse, StunTimeoutError, TransportError } from '../errors.js'

/** natcheck's exit codes, one map for every command. */
export const ExitCode = {
  /** A result was printed. */
  Ok: 0,
  /** Bad usage or configuration. */
  Usage: 1,
  /** The network was inconclusive: nothing answered (or it answered only with errors). */
  Inconclusive: 2,
  /** A bug or an unexpected failure. */
  Internal: 3
} as const
export type ExitCode = typeof ExitCode[keyof typeof ExitCode]

/** The exit code an error maps to. */
export function exitCodeFor (err: unknown): ExitCode {
  if (err instanceof InvalidArgumentError) return ExitCode.Usage
  if (err instanceof StunTimeoutError || err instanceof TransportError || err instanceof ResolveError || err instanceof StunErrorResponse) {
    return ExitCode.Inconclusive
  }
  if (err instanceof NatError && err.code === 'ERR_USAGE') return ExitCode.Usage
  return ExitCode.Internal
}
