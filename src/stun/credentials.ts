import { createHash } from 'node:crypto'
import { InvalidArgumentError } from '../errors.js'

/**
 * Credential preparation and key derivation: RFC 8489 §9.1.2 (short-term), §9.2.2 (long-term, MD5 and SHA-256),
 * §14.4 (USERHASH).
 *
 * Preparation follows SASLprep (RFC 4013) — the profile of RFC 5389 and the one the RFC 5769 and RFC 8489 Appendix B
 * vectors were computed with ("The\u00ADM\u00AAtr\u2168" → "TheMatrIX") — which, for every string it accepts,
 * gives the same bytes as RFC 8265 OpaqueString except that it also applies compatibility (NFKC) mappings.
 * Bidi rules (RFC 3454 §6) are not enforced. See docs/rfc-notes.md.
 */

/** RFC 3454 table B.1: commonly mapped to nothing. */
const MAP_TO_NOTHING = /[\u00AD\u034F\u1806\u180B-\u180D\u200B-\u200D\u2060\uFE00-\uFE0F\uFEFF]/g
/** RFC 3454 table C.1.2: non-ASCII space characters, mapped to U+0020. */
const NON_ASCII_SPACE = /[\u00A0\u1680\u2000-\u200B\u202F\u205F\u3000]/g
/** RFC 3454 tables C.2-C.9: prohibited output (controls, private use, non-characters, surrogates, ...). */
// eslint-disable-next-line no-control-regex
const PROHIBITED = /[\u0000-\u001F\u007F-\u009F\u06DD\u070F\u180E\u200C\u200D\u2028\u2029\u2060-\u2063\u206A-\u206F\uFEFF\uFFF9-\uFFFD\uE000-\uF8FF\uFDD0-\uFDEF\uFFFE\uFFFF\u0340\u0341\u200E\u200F\u202A-\u202E\u2FF0-\u2FFB\uD800-\uDFFF]|[\uDB40][\uDC01\uDC20-\uDC7F]|[\uDB80-\uDBFF][\uDC00-\uDFFF]|[\uD83F\uD87F\uD8BF\uD8FF\uD93F\uD97F\uD9BF\uD9FF\uDA3F\uDA7F\uDABF\uDAFF\uDB3F\uDB7F\uDBBF\uDBFF][\uDFFE\uDFFF]/u

/**
 * Prepare a username, realm or password for key derivation (SASLprep / OpaqueString). Throws
 * InvalidArgumentError for strings that contain prohibited characters.
 */
export function prepareCredential (value: string): string {
  const mapped = value.replace(MAP_TO_NOTHING, '').replace(NON_ASCII_SPACE, ' ').normalize('NFKC')
  if (PROHIBITED.test(mapped)) throw new InvalidArgumentError('credential contains a prohibited character (control, private-use or non-character)')
  return mapped
}

/** Short-term key: the prepared password (RFC 8489 §9.1.2). */
export function shortTermKey (password: string): Buffer {
  return Buffer.from(prepareCredential(password), 'utf8')
}

/** Hash algorithms for the long-term key (RFC 8489 §18.5). */
export type PasswordAlgorithmName = 'md5' | 'sha256'

/** Long-term key: H(username ":" realm ":" password), H = MD5 (16 bytes) or SHA-256 (32 bytes). RFC 8489 §9.2.2. */
export function longTermKey (username: string, realm: string, password: string, algorithm: PasswordAlgorithmName = 'md5'): Buffer {
  return createHash(algorithm === 'md5' ? 'md5' : 'sha256')
    .update(`${username}:${prepareCredential(realm)}:${prepareCredential(password)}`, 'utf8')
    .digest()
}

/** USERHASH: SHA-256(username ":" realm). RFC 8489 §14.4. */
export function userhash (username: string, realm: string): Buffer {
  return createHash('sha256').update(`${username}:${prepareCredential(realm)}`, 'utf8').digest()
}
