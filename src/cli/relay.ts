import { readFile } from 'node:fs/promises'
import type { Command } from 'commander'
import { InvalidArgumentError, NatError } from '../errors.js'
import { ExitCode, exitCodeFor } from './exit-codes.js'
import { formatEndpoint, parseEndpoint, type Endpoint } from '../net/endpoint.js'
import { AdminServer } from '../relay/admin-server.js'
import type { RendezvousServer } from '../rendezvous/server.js'
import { startRelayRendezvous } from './relay-rendezvous.js'
import { parseUserPass, readSecretFile, warnIfWorldReadable } from './credentials.js'
import { RELAY_CONNECTION_KEYS, addRelayConnectionOptions, relayConnectionConfig, relayConnectionEnv, relayConnectionOptions, type RelayConnectionSettings } from './connection-limits.js'
import { createRelayLog, parseLogFormat, type RelayLog } from './relay-log.js'
import { currentWorker, reusePortUnavailable, runRelayPrimary, workerCount } from './relay-workers.js'
import { PrometheusRelayMetrics } from '../relay/metrics.js'
import { RedisCredentials } from '../relay/redis-credentials.js'
import { RedisNodeRegistry } from '../relay/redis-registry.js'
import { TurnServer, fastPathState, type TurnServerOptions } from '../relay/turn-server.js'

/**
 * `natcheck relay`: run the TURN server in the foreground. Settings come from, lowest precedence first, a JSON
 * config file (`--config`), NATKIT_RELAY_* environment variables, and flags. stdout stays empty; stderr gets the
 * listening addresses and one line per allocation event. SIGINT stops; SIGTERM drains (new allocations get 508,
 * existing ones run until they end or the drain deadline); SIGHUP re-reads the config and TLS files, and opens and
 * closes listeners and moves the relay address as they say (see TurnServer.reload).
 * Exit codes: 0 stopped cleanly, 1 usage or config error, 3 internal error.
 */

/** The relay command's settings, as in the config file (and flags, camel-cased). */
export interface RelaySettings extends RelayConnectionSettings {
  listen?: string[]
  realm?: string
  user?: string[]
  authSecret?: string
  /** A file of static users, one NAME:PASS a line (keeps passwords out of `ps` and the environment). */
  userFile?: string
  /** A file of REST secrets, one a line: the first signs nothing (the relay only verifies), all are accepted (rotation). */
  authSecretFile?: string
  /** Refuse REST usernames whose expiry is further ahead than this many seconds (default 86400). */
  restMaxTtl?: number
  tlsListen?: string
  tlsCert?: string
  tlsKey?: string
  relayIp?: string
  externalIp?: string
  ports?: string
  allowPeer?: string[]
  denyPeer?: string[]
  admin?: string
  /** Serve the rendezvous (signalling) WebSocket here too, with the same auth secret. */
  rendezvous?: string
  drainTimeout?: number
  userQuota?: number
  totalQuota?: number
  nativeIo?: string
  /** The native fast path for established channels (default on; `--no-fast-path`, see TurnServerOptions.fastPath). */
  fastPath?: boolean
  /** `text` (default) or `json`: one JSON object per log line (see relay-log.ts). */
  logFormat?: string
  /** Worker processes (default: the number of CPUs); see relay-workers.ts. */
  workers?: number
  /** coturn-compatible Redis user database (users, REST secrets, quotas of the realm): redis://HOST:PORT[/DB]. */
  redis?: string
}

const DEFAULT_PORT = 3478
/** SO_RCVBUF/SO_SNDBUF of the client-facing UDP listeners. */
const LISTENER_BUFFER_BYTES = 4 * 1024 * 1024

function list (v: unknown, key: string): string[] | undefined {
  if (v === undefined) return undefined
  if (typeof v === 'string') return [v]
  if (Array.isArray(v) && v.every(x => typeof x === 'string')) return v
  throw new InvalidArgumentError(`config key ${key} must be a string or an array of strings`)
}

function str (v: unknown, key: string): string | undefined {
  if (v === undefined) return undefined
  if (typeof v !== 'string') throw new InvalidArgumentError(`config key ${key} must be a string`)
  return v
}

/** Read a JSON config file with the same keys as the flags (camelCase; `users` may be an object name → password). */
export async function readRelayConfig (file: string): Promise<RelaySettings> {
  let raw: unknown
  try {
    raw = JSON.parse(await readFile(file, 'utf8'))
  } catch (err) {
    throw new InvalidArgumentError(`cannot read config ${file}: ${(err as Error).message}`, { cause: err })
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new InvalidArgumentError(`config ${file} must be a JSON object`)
  const o = raw as Record<string, unknown>
  const known = new Set(['listen', 'realm', 'user', 'users', 'authSecret', 'tlsListen', 'tlsCert', 'tlsKey', 'relayIp', 'externalIp', 'ports', 'allowPeer', 'denyPeer', 'admin', 'rendezvous', 'drainTimeout', 'userQuota', 'totalQuota', 'nativeIo', 'fastPath', 'userFile', 'authSecretFile', 'restMaxTtl', 'logFormat', 'workers', 'redis'])
  for (const k of RELAY_CONNECTION_KEYS) known.add(k)
  for (const k of Object.keys(o)) if (!known.has(k)) throw new InvalidArgumentError(`unknown config key ${JSON.stringify(k)} in ${file}`)
  let user = list(o.user, 'user')
  if (o.users !== undefined) {
    if (typeof o.users !== 'object' || o.users === null) throw new InvalidArgumentError('config key users must be an object of name: password')
    user = [...(user ?? []), ...Object.entries(o.users as Record<string, unknown>).map(([n, p]) => `${n}:${String(p)}`)]
  }
  if (o.drainTimeout !== undefined && typeof o.drainTimeout !== 'number') throw new InvalidArgumentError('config key drainTimeout must be a number of seconds')
  if (o.fastPath !== undefined && typeof o.fastPath !== 'boolean') throw new InvalidArgumentError('config key fastPath must be true or false')
  for (const k of ['userQuota', 'totalQuota', 'restMaxTtl', 'workers']) {
    if (o[k] !== undefined && typeof o[k] !== 'number') throw new InvalidArgumentError(`config key ${k} must be a number of allocations`)
  }
  return {
    listen: list(o.listen, 'listen'), realm: str(o.realm, 'realm'), user, authSecret: str(o.authSecret, 'authSecret'),
    tlsListen: str(o.tlsListen, 'tlsListen'), tlsCert: str(o.tlsCert, 'tlsCert'), tlsKey: str(o.tlsKey, 'tlsKey'),
    relayIp: str(o.relayIp, 'relayIp'), externalIp: str(o.externalIp, 'externalIp'), ports: str(o.ports, 'ports'),
    allowPeer: list(o.allowPeer, 'allowPeer'), denyPeer: list(o.denyPeer, 'denyPeer'), admin: str(o.admin, 'admin'),
    rendezvous: str(o.rendezvous, 'rendezvous'),
    drainTimeout: o.drainTimeout as number | undefined,
    userQuota: o.userQuota as number | undefined,
    totalQuota: o.totalQuota as number | undefined,
    nativeIo: str(o.nativeIo, 'nativeIo'),
    fastPath: o.fastPath as boolean | undefined,
    userFile: str(o.userFile, 'userFile'),
    authSecretFile: str(o.authSecretFile, 'authSecretFile'),
    restMaxTtl: o.restMaxTtl as number | undefined,
    ...relayConnectionConfig(o),
    logFormat: str(o.logFormat, 'logFormat'),
    workers: o.workers as number | undefined,
    redis: str(o.redis, 'redis')
  }
}

/** NATKIT_RELAY_* environment variables (lists are comma-separated). */
export function relayEnv (env: NodeJS.ProcessEnv): RelaySettings {
  const csv = (v: string | undefined): string[] | undefined => v === undefined || v === '' ? undefined : v.split(',').map(s => s.trim()).filter(s => s !== '')
  const s = (v: string | undefined): string | undefined => v === '' ? undefined : v
  const drain = s(env.NATKIT_RELAY_DRAIN_TIMEOUT)
  const num = (v: string | undefined): number | undefined => s(v) === undefined ? undefined : Number(v)
  return {
    listen: csv(env.NATKIT_RELAY_LISTEN), realm: s(env.NATKIT_RELAY_REALM), user: csv(env.NATKIT_RELAY_USERS),
    authSecret: s(env.NATKIT_RELAY_AUTH_SECRET), tlsListen: s(env.NATKIT_RELAY_TLS_LISTEN), tlsCert: s(env.NATKIT_RELAY_TLS_CERT),
    tlsKey: s(env.NATKIT_RELAY_TLS_KEY), relayIp: s(env.NATKIT_RELAY_RELAY_IP), externalIp: s(env.NATKIT_RELAY_EXTERNAL_IP),
    ports: s(env.NATKIT_RELAY_PORTS), allowPeer: csv(env.NATKIT_RELAY_ALLOW_PEER), denyPeer: csv(env.NATKIT_RELAY_DENY_PEER),
    admin: s(env.NATKIT_RELAY_ADMIN), rendezvous: s(env.NATKIT_RELAY_RENDEZVOUS), drainTimeout: drain === undefined ? undefined : Number(drain),
    userQuota: num(env.NATKIT_RELAY_USER_QUOTA), totalQuota: num(env.NATKIT_RELAY_TOTAL_QUOTA),
    nativeIo: s(env.NATKIT_RELAY_NATIVE_IO),
    fastPath: s(env.NATKIT_RELAY_FAST_PATH) === undefined ? undefined : !/^(0|false|off|no)$/i.test(env.NATKIT_RELAY_FAST_PATH ?? ''),
    userFile: s(env.NATKIT_RELAY_USER_FILE),
    authSecretFile: s(env.NATKIT_RELAY_AUTH_SECRET_FILE),
    restMaxTtl: num(env.NATKIT_RELAY_REST_MAX_TTL),
    ...relayConnectionEnv(env),
    logFormat: s(env.NATKIT_RELAY_LOG_FORMAT),
    workers: num(env.NATKIT_RELAY_WORKERS),
    redis: s(env.NATKIT_RELAY_REDIS)
  }
}

/** Later sources win, key by key (undefined keeps the earlier value). */
export function mergeSettings (...sources: RelaySettings[]): RelaySettings {
  const out: Record<string, unknown> = {}
  for (const src of sources) for (const [k, v] of Object.entries(src)) if (v !== undefined) out[k] = v
  return out as RelaySettings
}

/** Turn settings into TurnServer options (throws InvalidArgumentError with what to fix). */
export function relayOptions (s: RelaySettings & { authSecrets?: string[] }): TurnServerOptions & { admin?: Endpoint, rendezvous?: Endpoint, drainTimeout: number, redis?: string } {
  if (s.realm === undefined || s.realm === '') throw new InvalidArgumentError('--realm is required (or realm in the config, NATKIT_RELAY_REALM)')
  const users: Record<string, string> = {}
  for (const u of s.user ?? []) {
    const { username, password } = parseUserPass(u)
    users[username] = password
  }
  const secrets = [...(s.authSecret !== undefined ? [s.authSecret] : []), ...(s.authSecrets ?? [])]
  if (Object.keys(users).length === 0 && secrets.length === 0 && s.redis === undefined) throw new InvalidArgumentError('no credentials: give --user NAME:PASS, --auth-secret SECRET and/or --redis URL')
  let portRange: [number, number] | undefined
  if (s.ports !== undefined) {
    const m = /^(\d{1,5})-(\d{1,5})$/.exec(s.ports)
    if (m === null) throw new InvalidArgumentError(`--ports ${JSON.stringify(s.ports)}: write LOW-HIGH, e.g. 49152-65535`)
    portRange = [Number(m[1]), Number(m[2])]
  }
  const tlsParts = [s.tlsListen, s.tlsCert, s.tlsKey].filter(x => x !== undefined).length
  if (tlsParts !== 0 && tlsParts !== 3) throw new InvalidArgumentError('TLS needs all of --tls-listen, --tls-cert and --tls-key')
  const drainTimeout = s.drainTimeout ?? 30
  if (!Number.isFinite(drainTimeout) || drainTimeout < 0) throw new InvalidArgumentError('drain timeout must be a non-negative number of seconds')
  for (const [flag, v] of [['--user-quota', s.userQuota], ['--total-quota', s.totalQuota]] as const) {
    if (v !== undefined && !(Number.isInteger(v) && v > 0)) throw new InvalidArgumentError(`${flag} must be a positive whole number of allocations`)
  }
  if (s.restMaxTtl !== undefined && !(Number.isInteger(s.restMaxTtl) && s.restMaxTtl > 0)) throw new InvalidArgumentError('--rest-max-ttl must be a positive whole number of seconds')
  const io = s.nativeIo ?? 'all'
  if (io !== 'all' && io !== 'listeners' && io !== 'off') throw new InvalidArgumentError(`--native-io ${JSON.stringify(io)}: write all, listeners or off`)
  const admin = s.admin !== undefined ? parseEndpoint(s.admin, 9641) : undefined
  const rendezvous = rendezvousEndpoint(s, secrets)
  return {
    realm: s.realm,
    users,
    nativeIo: io !== 'off',
    // Client-facing listeners take every client's traffic: the OS default receive buffer (≈ 208 KiB) overflows under
    // load (measured: ~1.5 % loss at saturation, bench/relay-saturate.ts). Linux caps this at net.core.rmem_max.
    udpBufferSize: LISTENER_BUFFER_BYTES,
    nativeRelayIo: io === 'all',
    fastPath: s.fastPath,
    userQuota: s.userQuota,
    totalQuota: s.totalQuota,
    authSecret: secrets.length === 0 ? undefined : secrets.length === 1 ? secrets[0] : secrets,
    restMaxTtlS: s.restMaxTtl,
    listen: (s.listen ?? ['127.0.0.1']).map(l => parseEndpoint(l, DEFAULT_PORT)),
    tls: s.tlsListen !== undefined ? { listen: [parseEndpoint(s.tlsListen, 5349)], certFile: s.tlsCert as string, keyFile: s.tlsKey as string } : undefined,
    relayIp: s.relayIp,
    externalIp: s.externalIp,
    portRange,
    allowPeer: s.allowPeer,
    denyPeer: s.denyPeer,
    admin,
    rendezvous,
    // This host's admin and rendezvous ports are never peers (in worker processes too, which do not serve them).
    protectedEndpoints: [admin, rendezvous].filter((e): e is Endpoint => e !== undefined),
    drainTimeout,
    ...relayConnectionOptions(s),
    redis: s.redis
  }
}

/** The client-facing address a relay node publishes in the Redis registry: its external IP, or its first listener's. */
function registryNode (options: { externalIp?: string }, server: TurnServer): Endpoint {
  const first = server.addresses.udp[0] ?? server.addresses.tcp[0] ?? server.addresses.tls[0]
  return { address: options.externalIp ?? first.address, port: first.port }
}

/** The rendezvous listen address; it authenticates peers with the relay's REST secret, so it needs one. */
function rendezvousEndpoint (s: RelaySettings, secrets: string[]): Endpoint | undefined {
  if (s.rendezvous === undefined) return undefined
  if (secrets.length === 0) throw new InvalidArgumentError('--rendezvous needs --auth-secret: peers authenticate with tokens made from the same secret as the TURN REST credentials')
  return parseEndpoint(s.rendezvous, 80)
}

/** One startup line: whether established channels are relayed by the native fast path, and if not, why. */
function sayFastPath (say: RelayLog, state: { enabled: boolean, reason?: string }): void {
  if (state.enabled) say('info', 'fast-path', 'fast path on: established channels are relayed in the native addon', { enabled: true })
  else say('info', 'fast-path', `fast path off: ${state.reason ?? ''}`, { enabled: false, reason: state.reason })
}

function collect (value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value]
}


/** Register `relay` on the program. */
export function registerRelayCommand (program: Command): void {
  addRelayConnectionOptions(program.command('relay'))
    .description('run a TURN server (RFC 8656, RFC 6062 TCP relays, RFC 6156 IPv6) in the foreground')
    .option('--listen <ip[:port]>', 'UDP and TCP listen address, repeatable (default 127.0.0.1:3478)', collect)
    .option('--realm <realm>', 'REALM for long-term credentials')
    .option('--user <name:pass>', 'a static user, repeatable', collect)
    .option('--auth-secret <secret>', 'TURN REST API shared secret (coturn --use-auth-secret)')
    .option('--user-file <file>', 'static users from a file, one NAME:PASS a line (keeps them out of ps)')
    .option('--auth-secret-file <file>', 'REST secrets from a file, one a line, all accepted (rotation)')
    .option('--rest-max-ttl <seconds>', 'refuse REST usernames and rendezvous tokens expiring further ahead than this (default 86400)', Number)
    .option('--tls-listen <ip:port>', 'TLS listen address')
    .option('--tls-cert <file>', 'PEM certificate (re-read on SIGHUP)')
    .option('--tls-key <file>', 'PEM private key (re-read on SIGHUP)')
    .option('--relay-ip <ip>', 'address relay sockets bind to')
    .option('--external-ip <ip>', 'public address advertised in XOR-RELAYED-ADDRESS (like coturn -X)')
    .option('--ports <low-high>', 'relay port range (default 49152-65535)')
    .option('--allow-peer <cidr>', 'allow peers in this range despite the deny list, repeatable', collect)
    .option('--deny-peer <cidr>', 'deny peers in this range too, repeatable', collect)
    .option('--admin <ip:port>', 'serve /metrics and /healthz over HTTP here')
    .option('--rendezvous <ip:port>', 'also serve the rendezvous (signalling) WebSocket at ws://IP:PORT/, authenticated with --auth-secret')
    .option('--native-io <mode>', 'batched UDP I/O (recvmmsg/sendmmsg): all, listeners (relay sockets use node:dgram) or off (default all)')
    .option('--no-fast-path', 'relay established channels in JS too, not in the native addon (the fast path is on by default when native I/O is)')
    .option('--user-quota <n>', 'allocations per username (default: no per-user limit, as coturn)', Number)
    .option('--total-quota <n>', 'allocations in total (default 10000)', Number)
    .option('--drain-timeout <seconds>', 'on SIGTERM, how long existing allocations may continue (default 30)', Number)
    .option('--workers <n>', 'worker processes sharing the listeners (SO_REUSEPORT; default: the number of CPUs)', Number)
    .option('--redis <url>', 'read users (MD5 keys), REST secrets and quotas of the realm from coturn\'s Redis user database (redis://HOST:PORT[/DB]), re-read every 2 s')
    .option('--log-format <format>', 'stderr log: text (default) or json (one object per line: ts, level, event, msg, fields)')
    .option('--config <file>', 'JSON config file with the same keys (camelCase); flags override it, env vars NATKIT_RELAY_* too')
    .action(async (flags: RelaySettings & { config?: string }) => {
      process.exitCode = await runRelay(flags)
    })
}

async function loadSettings (flags: RelaySettings & { config?: string }, warn: (line: string) => void): Promise<RelaySettings & { authSecrets?: string[] }> {
  const { config, ...rest } = flags
  // commander sets fastPath true when --no-fast-path is absent: only false was given on the command line.
  if (rest.fastPath === true) rest.fastPath = undefined
  const file = config ?? process.env.NATKIT_RELAY_CONFIG
  const fromFile = file !== undefined ? await readRelayConfig(file) : {}
  if (file !== undefined && (fromFile.user !== undefined || fromFile.authSecret !== undefined)) await warnIfWorldReadable(file, 'config', warn)
  const merged = mergeSettings(fromFile, relayEnv(process.env), rest)
  // Secrets from files: users are added to the others, REST secrets accepted beside --auth-secret (rotation).
  const user = merged.userFile !== undefined ? [...(merged.user ?? []), ...await readSecretFile(merged.userFile, 'user file', warn)] : merged.user
  const authSecrets = merged.authSecretFile !== undefined ? await readSecretFile(merged.authSecretFile, 'auth secret file', warn) : undefined
  return { ...merged, user, authSecrets }
}

async function runRelay (flags: RelaySettings & { config?: string }): Promise<number> {
  // The format is known before the config file is read, so that errors reading it are logged in it too.
  let say: RelayLog = createRelayLog('text')
  const worker = currentWorker()
  const base = worker !== undefined ? { worker: worker.index } : undefined
  try { say = createRelayLog(parseLogFormat(flags.logFormat ?? relayEnv(process.env).logFormat), undefined, undefined, base) } catch { /* reported below */ }
  let server: TurnServer | undefined
  let admin: AdminServer | undefined
  let rendezvous: RendezvousServer | undefined
  let redis: RedisCredentials | undefined
  let registry: RedisNodeRegistry | undefined
  try {
    const settings = await loadSettings(flags, (line) => { say('warn', 'secrets', line, {}) })
    say = createRelayLog(parseLogFormat(settings.logFormat), undefined, undefined, base)
    const options = relayOptions(settings)
    const workers = workerCount(settings.workers)
    let current = options
    if (options.redis !== undefined) {
      redis = await RedisCredentials.start({
        url: options.redis,
        realm: options.realm,
        onChange: () => {
          server?.reload(forServer(current)).catch((err: Error) => { say('error', 'reload-failed', `applying Redis changes failed: ${err.message}`, { error: err.message }) })
        },
        onHealth: (ok, error) => {
          if (ok) say('info', 'redis', 'Redis reachable', { healthy: true })
          else say('warn', 'redis', `Redis unreachable (${error ?? ''}): serving existing allocations and the users and secrets last read`, { healthy: false, error })
        }
      })
    }
    const rc = redis
    /** The server's options: the settings, plus Redis's users, secrets and quotas, plus this worker's part. */
    const forServer = (o: typeof options): typeof options => {
      const r = rc === undefined
        ? o
        : {
            ...o,
            keySource: rc.keySource,
            // coturn's Redis database holds MD5 keys only: offering SHA-256 would send clients that prefer it (natkit's
            // own) down a path their Redis user cannot pass.
            passwordAlgorithms: ['md5'] as const,
            authSecret: [...(o.authSecret === undefined ? [] : typeof o.authSecret === 'string' ? [o.authSecret] : o.authSecret), ...rc.current.secrets],
            userQuota: rc.current.userQuota ?? o.userQuota,
            totalQuota: rc.current.totalQuota ?? o.totalQuota
          }
      return worker?.apply(r) ?? r
    }
    const redisHealth = (): true | string => rc === undefined || rc.healthy ? true : `redis unreachable: ${rc.error ?? ''}`
    if (worker === undefined && workers > 1) {
      const why = reusePortUnavailable(options)
      if (why === undefined) {
        const reload = async (): Promise<typeof options> => relayOptions(await loadSettings(flags, () => {}))
        sayFastPath(say, fastPathState(options))
        try { return await runRelayPrimary({ options, workers, say, health: redisHealth, reload }) } finally { await redis?.close() }
      }
      say('warn', 'workers', `workers 1, not ${workers}: ${why}`, { workers: 1, reason: why })
    }
    // Process metrics (CPU, memory, event-loop lag) only when someone can scrape them: they sample the event loop.
    const metrics = new PrometheusRelayMetrics({ processMetrics: options.admin !== undefined || worker !== undefined, worker: worker?.index })
    server = await TurnServer.start({ ...forServer(options), metrics })
    const s = server
    if (worker !== undefined) worker.attach(s, metrics)
    if (options.redis !== undefined) {
      // Relay nodes sharing the realm: quotas across nodes, 300 Try Alternate from a draining or full node.
      registry = await RedisNodeRegistry.start({ url: options.redis, realm: options.realm, node: registryNode(options, s), worker: worker?.index })
      registry.attach(s)
    }
    if (worker !== undefined) worker.ready(s.addresses)
    for (const proto of worker !== undefined ? [] : ['udp', 'tcp', 'tls'] as const) {
      for (const e of s.addresses[proto]) say('info', 'listening', `listening ${proto} ${formatEndpoint(e)}`, { protocol: proto, address: formatEndpoint(e) })
    }
    if (worker === undefined) sayFastPath(say, s.fastPath)
    if (worker === undefined) rendezvous = await startRelayRendezvous(options, say)
    if (options.admin !== undefined && worker === undefined) {
      admin = await AdminServer.start({ listen: options.admin, metrics: async () => await metrics.render(), contentType: metrics.contentType, healthy: () => s.core.draining ? false : redisHealth() })
      const url = `http://${formatEndpoint(admin.local)}/metrics`
      say('info', 'admin', `admin ${url}`, { url })
    }
    // The bound admin and rendezvous addresses (a configured port 0 is only known now) join the protected endpoints.
    const bound = [admin?.local, rendezvous?.address].filter((e): e is Endpoint => e !== undefined)
    if (bound.length > 0) await s.reload({ protectedEndpoints: [...(options.protectedEndpoints ?? []), ...bound] })
    s.on('allocation', (e) => {
      const client = formatEndpoint(e.client); const relayed = e.relayed.map(formatEndpoint)
      say('info', 'allocation', `allocation ${e.id} user=${e.username} client=${e.protocol}:${client} relayed=${relayed.join(',')} ${e.transport} lifetime=${e.lifetime}s`,
        { id: e.id, user: e.username, client, protocol: e.protocol, relayed, transport: e.transport, lifetime: e.lifetime })
    })
    s.on('deallocation', (e) => { say('info', 'deallocation', `allocation ${e.id} ended: ${e.reason}`, { id: e.id, reason: e.reason }) })
    s.on('quota-refused', (e) => {
      const client = formatEndpoint(e.client)
      say('warn', 'quota-refused', `allocation refused (486): ${e.quota} quota of ${e.limit} reached, user=${e.username} client=${e.protocol}:${client}${e.quota === 'user' ? ' (raise --user-quota or leave it unset)' : ' (raise --total-quota)'}`,
        { quota: e.quota, limit: e.limit, user: e.username, client, protocol: e.protocol })
    })
    s.on('auth-failure', (e) => {
      const client = formatEndpoint(e.client)
      say('warn', 'auth-failure', `authentication failed: ${e.reason} client=${client}`, { reason: e.reason, client })
    })
    const done = new Promise<number>((resolve) => {
      let stopping = false
      const stop = (how: 'SIGINT' | 'SIGTERM'): void => {
        // A second signal while draining stops at once.
        if (stopping) { if (worker === undefined) say('info', 'stopping', 'stopping now'); void s.close(); return }
        stopping = true
        const closing = how === 'SIGTERM'
          ? (worker === undefined && say('info', 'draining', `draining for up to ${options.drainTimeout}s`, { timeout: options.drainTimeout }), s.drain(options.drainTimeout * 1000))
          : s.close()
        closing.then(async () => {
          process.off('SIGINT', onInt); process.off('SIGTERM', onTerm); process.off('SIGHUP', onHup)
          await rendezvous?.close(); await admin?.close(); await registry?.close(); await redis?.close()
          if (worker !== undefined) worker.done(); else say('info', 'stopped', 'stopped')
          resolve(ExitCode.Ok)
        }, (err) => { say('error', 'error', `error while stopping: ${String(err)}`, { error: String(err) }); resolve(ExitCode.Internal) })
      }
      const onInt = (): void => { stop('SIGINT') }
      const onTerm = (): void => { stop('SIGTERM') }
      const onHup = (): void => {
        loadSettings(flags, (line) => { say('warn', 'secrets', line, {}) }).then(relayOptions).then(async (next) => {
          const before = { udp: [...s.addresses.udp], tcp: [...s.addresses.tcp], tls: [...s.addresses.tls] }
          await s.reload(forServer(next))
          current = next
          // Other nodes send clients to the address this one publishes: it follows the listeners and external IP.
          await registry?.moveTo(registryNode(next, s))
          // Every worker opens and closes the same UDP listeners; worker 0 speaks for them (the primary for TCP and
          // TLS, which it listens on).
          if (worker === undefined || worker.index === 0) {
            for (const proto of worker === undefined ? ['udp', 'tcp', 'tls'] as const : ['udp'] as const) {
              const had = new Set(before[proto].map(formatEndpoint)); const has = new Set(s.addresses[proto].map(formatEndpoint))
              for (const a of has) if (!had.has(a)) say('info', 'listening', `listening ${proto} ${a}`, { protocol: proto, address: a })
              for (const a of had) if (!has.has(a)) say('info', 'listener-removed', `stopped listening ${proto} ${a} (allocations made through it go on until they end)`, { protocol: proto, address: a })
            }
          }
          say('info', 'reloaded', 'configuration reloaded')
        }).catch((err: Error) => { say('error', 'reload-failed', `reload failed, keeping the old configuration: ${err.message}`, { error: err.message }) })
      }
      process.on('SIGINT', onInt); process.on('SIGTERM', onTerm); process.on('SIGHUP', onHup)
    })
    return await done
  } catch (err) {
    await server?.close()
    await rendezvous?.close()
    await admin?.close()
    await registry?.close()
    await redis?.close()
    worker?.done()
    const exit = exitCodeFor(err, 'server')
    if (exit === ExitCode.Internal) say('error', 'error', `internal error: ${(err as Error).stack ?? String(err)}`, { error: String(err) })
    else say('error', 'error', `error: ${(err as Error).message}`, { error: (err as Error).message, code: (err as NatError).code })
    return exit
  }
}
