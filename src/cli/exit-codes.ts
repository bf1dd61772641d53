import { ERROR_CODES, NatError } from '../errors.js'
import { RendezvousError } from '../rendezvous/errors.js'

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

/**
 * The exit code of each error code, for every command. Codes not listed (and errors that are not NatErrors) are
 * Internal. For a long-running server (`natcheck server`, `natcheck relay`), a transport error can only mean that its
 * own listen address cannot be bound or served: a configuration error (see SERVER_EXIT_CODES).
 */
export const EXIT_CODES: Readonly<Record<string, ExitCode>> = Object.freeze({
  [ERROR_CODES.INVALID_ARGUMENT]: ExitCode.Usage,
  [ERROR_CODES.USAGE]: ExitCode.Usage,
  [ERROR_CODES.STUN_TIMEOUT]: ExitCode.Inconclusive,
  [ERROR_CODES.STUN_ERROR_RESPONSE]: ExitCode.Inconclusive,
  [ERROR_CODES.TRANSPORT]: ExitCode.Inconclusive,
  [ERROR_CODES.RESOLVE]: ExitCode.Inconclusive,
  [ERROR_CODES.CONNECT]: ExitCode.Inconclusive,
  [ERROR_CODES.NO_PATH]: ExitCode.Inconclusive,
  [ERROR_CODES.SIGNALLING_TIMEOUT]: ExitCode.Inconclusive,
  [ERROR_CODES.RELAY_SILENT]: ExitCode.Inconclusive,
  [ERROR_CODES.RENDEZVOUS_TIMEOUT]: ExitCode.Inconclusive,
  [ERROR_CODES.RENDEZVOUS_CLOSED]: ExitCode.Inconclusive
})

/** Server commands: what differs from EXIT_CODES (a listen address that cannot be bound is configuration). */
export const SERVER_EXIT_CODES: Readonly<Record<string, ExitCode>> = Object.freeze({
  ...EXIT_CODES,
  [ERROR_CODES.TRANSPORT]: ExitCode.Usage,
  [ERROR_CODES.RESOLVE]: ExitCode.Usage
})

/** Whether the command is a client (asks the network) or a server (listens). */
export type CommandKind = 'client' | 'server'

/** The exit code an error maps to. */
export function exitCodeFor (err: unknown, kind: CommandKind = 'client'): ExitCode {
  if (!(err instanceof NatError)) return ExitCode.Internal
  const map = kind === 'server' ? SERVER_EXIT_CODES : EXIT_CODES
  return map[err.code] ?? (err instanceof RendezvousError ? ExitCode.Inconclusive : ExitCode.Internal)
}
