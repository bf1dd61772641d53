import { InvalidArgumentError } from '../errors.js'

/** Parse a `--user NAME:PASSWORD` flag (the password may itself contain colons). */
export function parseUserPass (text: string): { username: string, password: string } {
  const colon = text.indexOf(':')
  if (colon <= 0) throw new InvalidArgumentError(`--user ${JSON.stringify(text)}: write NAME:PASSWORD`)
  return { username: text.slice(0, colon), password: text.slice(colon + 1) }
}
