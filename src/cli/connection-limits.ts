import type { Command } from 'commander'
import { InvalidArgumentError } from '../errors.js'
import { CONNECTION_GUARD_DEFAULTS } from '../net/connection-guard.js'

/**
 * The TCP/TLS connection-limit flags of `natcheck relay` and `natcheck server` (src/net/connection-guard.ts), kept
 * here so both commands parse them the same way. Times are in seconds on the command line, ms in the options.
 */

/** The relay's connection-limit settings (flags, config keys, NATKIT_RELAY_* variables). */
export interface RelayConnectionSettings {
  tcpFirstMessageTimeout?: number
  tcpAuthTimeout?: number
  tcpUnauthPerIp?: number
  tcpMaxQueued?: number
}

/** Config-file keys of RelayConnectionSettings. */
export const RELAY_CONNECTION_KEYS = ['tcpFirstMessageTimeout', 'tcpAuthTimeout', 'tcpUnauthPerIp', 'tcpMaxQueued'] as const

const RELAY_ENV: Record<(typeof RELAY_CONNECTION_KEYS)[number], string> = {
  tcpFirstMessageTimeout: 'NATKIT_RELAY_TCP_FIRST_MESSAGE_TIMEOUT',
  tcpAuthTimeout: 'NATKIT_RELAY_TCP_AUTH_TIMEOUT',
  tcpUnauthPerIp: 'NATKIT_RELAY_TCP_UNAUTH_PER_IP',
  tcpMaxQueued: 'NATKIT_RELAY_TCP_MAX_QUEUED'
}

const FIRST = CONNECTION_GUARD_DEFAULTS.firstMessageTimeoutMs / 1000
const PER_IP = CONNECTION_GUARD_DEFAULTS.maxUnauthenticatedPerIp
const QUEUED = CONNECTION_GUARD_DEFAULTS.maxQueuedBytes

/** Register the relay's connection-limit flags. */
export function addRelayConnectionOptions (cmd: Command): Command {
  return cmd
    .option('--tcp-first-message-timeout <seconds>', `close a TCP/TLS connection with no complete STUN/ChannelData message this long after accept, TLS handshake included (default ${FIRST})`, Number)
    .option('--tcp-auth-timeout <seconds>', 'close a TCP/TLS connection with no successful Allocate or ConnectionBind this long after accept (default 30)', Number)
    .option('--tcp-unauth-per-ip <n>', `unauthenticated TCP/TLS connections per source IP (IPv6: per /64); the newest beyond is refused (default ${PER_IP})`, Number)
    .option('--tcp-max-queued <bytes>', `close a TCP/TLS connection once this many bytes wait for it to read (default ${QUEUED})`, Number)
}

/** Read the connection-limit keys of a relay config object (numbers only). */
export function relayConnectionConfig (o: Record<string, unknown>): RelayConnectionSettings {
  const out: RelayConnectionSettings = {}
  for (const k of RELAY_CONNECTION_KEYS) {
    const v = o[k]
    if (v === undefined) continue
    if (typeof v !== 'number') throw new InvalidArgumentError(`config key ${k} must be a number`)
    out[k] = v
  }
  return out
}

/** The NATKIT_RELAY_TCP_* environment variables. */
export function relayConnectionEnv (env: NodeJS.ProcessEnv): RelayConnectionSettings {
  const out: RelayConnectionSettings = {}
  for (const k of RELAY_CONNECTION_KEYS) {
    const v = env[RELAY_ENV[k]]
    if (v !== undefined && v !== '') out[k] = Number(v)
  }
  return out
}

function seconds (flag: string, v: number | undefined): number | undefined {
  if (v === undefined) return undefined
  if (!(Number.isFinite(v) && v > 0)) throw new InvalidArgumentError(`${flag} must be a positive number of seconds`)
  return Math.round(v * 1000)
}

function count (flag: string, v: number | undefined, what: string): number | undefined {
  if (v === undefined) return undefined
  if (!(Number.isInteger(v) && v > 0)) throw new InvalidArgumentError(`${flag} must be a positive whole number of ${what}`)
  return v
}

/** TurnServer options from the relay's connection-limit settings (InvalidArgumentError says which flag is wrong). */
export function relayConnectionOptions (s: RelayConnectionSettings): { firstMessageTimeoutMs?: number, authTimeoutMs?: number, maxUnauthenticatedPerIp?: number, maxQueuedBytes?: number } {
  return {
    firstMessageTimeoutMs: seconds('--tcp-first-message-timeout', s.tcpFirstMessageTimeout),
    authTimeoutMs: seconds('--tcp-auth-timeout', s.tcpAuthTimeout),
    maxUnauthenticatedPerIp: count('--tcp-unauth-per-ip', s.tcpUnauthPerIp, 'connections'),
    maxQueuedBytes: count('--tcp-max-queued', s.tcpMaxQueued, 'bytes')
  }
}

/** The STUN server's connection-limit flags. */
export interface ServerConnectionFlags {
  tcpFirstMessageTimeout?: number
  tcpIdleTimeout?: number
  tcpPerIp?: number
  tcpMaxQueued?: number
}

/** Register the STUN server's connection-limit flags. */
export function addServerConnectionOptions (cmd: Command): Command {
  return cmd
    .option('--tcp-first-message-timeout <seconds>', `close a TCP/TLS connection with no complete STUN message this long after accept, TLS handshake included (default ${FIRST})`, Number)
    .option('--tcp-idle-timeout <seconds>', 'close a TCP/TLS connection with no complete STUN message for this long (default 30)', Number)
    .option('--tcp-per-ip <n>', `TCP/TLS connections per source IP (IPv6: per /64); the newest beyond is refused (default ${PER_IP})`, Number)
    .option('--tcp-max-queued <bytes>', `close a TCP/TLS connection once this many response bytes wait for it to read (default ${QUEUED})`, Number)
}

/** StunServer options from the flags. */
export function serverConnectionOptions (f: ServerConnectionFlags): { firstMessageTimeoutMs?: number, idleTimeoutMs?: number, maxConnectionsPerIp?: number, maxQueuedBytes?: number } {
  return {
    firstMessageTimeoutMs: seconds('--tcp-first-message-timeout', f.tcpFirstMessageTimeout),
    idleTimeoutMs: seconds('--tcp-idle-timeout', f.tcpIdleTimeout),
    maxConnectionsPerIp: count('--tcp-per-ip', f.tcpPerIp, 'connections'),
    maxQueuedBytes: count('--tcp-max-queued', f.tcpMaxQueued, 'bytes')
  }
}
