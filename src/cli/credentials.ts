import { readFile, stat } from 'node:fs/promises'
import { InvalidArgumentError } from '../errors.js'

/** Parse a `--user NAME:PASSWORD` flag (the password may itself contain colons). */
export function parseUserPass (text: string): { username: string, password: string } {
  const colon = text.indexOf(':')
  if (colon <= 0) throw new InvalidArgumentError(`--user ${JSON.stringify(text)}: write NAME:PASSWORD`)
  return { username: text.slice(0, colon), password: text.slice(colon + 1) }
}

/**
 * Warn on stderr when a file that holds secrets can be read by every user of the machine (mode o+r), as ssh does
 * for private keys: a secret on the command line shows in `ps`, one in a world-readable file is no better.
 */
export async function warnIfWorldReadable (file: string, what: string, warn: (line: string) => void): Promise<void> {
  try {
    const mode = (await stat(file)).mode
    if ((mode & 0o004) !== 0) warn(`warning: ${what} ${file} is readable by every user (mode ${(mode & 0o777).toString(8)}): chmod 600 ${file}`)
  } catch {
    // Reading the file reports a missing one.
  }
}

/**
 * The secret lines of a file: each non-empty line not starting with `#`, without surrounding whitespace (so a
 * trailing newline from `echo` is not part of the secret). Warns when the file is world-readable.
 */
export async function readSecretFile (file: string, what: string, warn: (line: string) => void): Promise<string[]> {
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch (err) {
    throw new InvalidArgumentError(`cannot read ${what} ${file}: ${(err as Error).message}`, { cause: err })
  }
  await warnIfWorldReadable(file, what, warn)
  const lines = text.split(/\r?\n/).map(l => l.trim()).filter(l => l !== '' && !l.startsWith('#'))
  if (lines.length === 0) throw new InvalidArgumentError(`${what} ${file} is empty`)
  return lines
}

/** Where a client command (`turn`, `connect`) may take its TURN secrets from, besides the plain flags. */
export interface SecretFlags {
  user?: string
  userFile?: string
  authSecret?: string
  authSecretFile?: string
}

/**
 * Resolve `--user`/`--auth-secret` for a client command: the flag, else `--user-file`/`--auth-secret-file` (first
 * secret line), else the environment (`NATKIT_USER`, `NATKIT_AUTH_SECRET`), so secrets can stay out of `ps`.
 * Giving both a flag and its file is a usage error.
 */
export async function resolveClientSecrets (flags: SecretFlags, env: NodeJS.ProcessEnv, warn: (line: string) => void): Promise<{ user?: string, authSecret?: string }> {
  const pick = async (value: string | undefined, file: string | undefined, envValue: string | undefined, flag: string): Promise<string | undefined> => {
    if (value !== undefined && file !== undefined) throw new InvalidArgumentError(`give --${flag} or --${flag}-file, not both`)
    if (value !== undefined) return value
    if (file !== undefined) return (await readSecretFile(file, `--${flag}-file`, warn))[0]
    return envValue !== undefined && envValue !== '' ? envValue : undefined
  }
  // Any credential flag on the command line beats the environment entirely.
  const onCommandLine = [flags.user, flags.userFile, flags.authSecret, flags.authSecretFile].some(f => f !== undefined)
  const fromEnv: NodeJS.ProcessEnv = onCommandLine ? {} : env
  const user = await pick(flags.user, flags.userFile, fromEnv.NATKIT_USER, 'user')
  const authSecret = await pick(flags.authSecret, flags.authSecretFile, fromEnv.NATKIT_AUTH_SECRET, 'auth-secret')
  return { user, authSecret }
}
