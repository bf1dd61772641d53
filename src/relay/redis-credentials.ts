import { createClient } from 'redis'
import { InvalidArgumentError, TransportError } from '../errors.js'
import { createLogger } from '../log.js'
import type { PasswordAlgorithmName } from '../stun/index.js'

const log = createLogger('natcheck:relay:redis')

/**
 * Users, REST secrets and quotas of one realm read from coturn's Redis user database (coturn's
 * schema.userdb.redis), so that an operator moves from coturn without migrating credentials:
 *
 * - `turn/realm/<realm>/user/<name>/key`: the long-term MD5 key, hex of MD5("name:realm:password") (RFC 8489 §9.2.2);
 * - `turn/realm/<realm>/secret`: a set of TURN REST API shared secrets;
 * - `turn/realm/<realm>/user-quota`, `turn/realm/<realm>/total-quota`: allocation quotas.
 *
 * The relay's authentication is synchronous, so this keeps a snapshot, re-read every `refreshMs`; lookups use the
 * snapshot (CredentialStoreOptions.keySource). When Redis cannot be reached the last snapshot stays in use: existing
 * allocations are untouched and known users keep authenticating; `healthy` turns false and `error` says why.
 * Only MD5 keys are stored by coturn, so Redis users authenticate with MD5 (not SHA-256) PASSWORD-ALGORITHM.
 */
export interface RedisCredentialsOptions {
  /** redis://[user:password@]host:port[/db] */
  readonly url: string
  readonly realm: string
  /** How often the snapshot is re-read (default 2000 ms). */
  readonly refreshMs?: number
  /** Called after a re-read that changed the secrets or quotas (users need no call: lookups read the snapshot). */
  readonly onChange?: (snapshot: RedisRealmSnapshot) => void
  /** Called when Redis becomes unreachable (with why) or reachable again. */
  readonly onHealth?: (healthy: boolean, error: string | undefined) => void
}

/** What one read of the realm found. */
export interface RedisRealmSnapshot {
  readonly keys: ReadonlyMap<string, Buffer>
  readonly secrets: readonly string[]
  readonly userQuota: number | undefined
  readonly totalQuota: number | undefined
}

/** Escape Redis glob characters (SCAN MATCH) in a literal. */
function globEscape (s: string): string {
  return s.replace(/[*?[\]\\]/g, (c) => `\\${c}`)
}

function quota (v: string | null): number | undefined {
  if (v === null) return undefined
  const n = Number(v)
  return Number.isInteger(n) && n > 0 ? n : undefined
}

/** A refreshed snapshot of one realm in coturn's Redis user database. */
export class RedisCredentials {
  private snapshot: RedisRealmSnapshot = { keys: new Map(), secrets: [], userQuota: undefined, totalQuota: undefined }
  private timer: NodeJS.Timeout | undefined
  private refreshing = false
  private closed = false
  /** Whether the last read succeeded. */
  healthy = false
  /** Why the last read failed. */
  error: string | undefined

  private constructor (private readonly options: RedisCredentialsOptions, private readonly client: ReturnType<typeof createClient>) {}

  /** Connect and read the realm once; rejects with TransportError when Redis cannot be reached at start. */
  static async start (options: RedisCredentialsOptions): Promise<RedisCredentials> {
    if (!/^rediss?:\/\//.test(options.url)) throw new InvalidArgumentError(`--redis ${JSON.stringify(options.url)}: write redis://HOST:PORT[/DB]`)
    let connected = false
    const client = createClient({
      url: options.url,
      // Fail commands at once while disconnected (the snapshot stays in use) rather than queue them.
      disableOfflineQueue: true,
      // At start, give up at the first failure (the operator's error, reported); later, retry for ever.
      socket: { connectTimeout: 2000, reconnectStrategy: (retries: number, cause: Error) => connected ? Math.min(100 * (retries + 1), 2000) : cause }
    })
    client.once('ready', () => { connected = true })
    const rc = new RedisCredentials(options, client)
    client.on('error', (err: Error) => { rc.setHealth(false, err.message) })
    try {
      await client.connect()
      await rc.refresh()
    } catch (err) {
      await rc.close()
      throw new TransportError(`cannot read Redis at ${options.url}: ${(err as Error).message}`, { cause: err })
    }
    if (!rc.healthy) { const why = rc.error; await rc.close(); throw new TransportError(`cannot read Redis at ${options.url}: ${why ?? 'unknown error'}`) }
    rc.timer = setInterval(() => { void rc.refresh() }, options.refreshMs ?? 2000)
    rc.timer.unref()
    return rc
  }

  /** The current snapshot. */
  get current (): RedisRealmSnapshot { return this.snapshot }

  /** CredentialStoreOptions.keySource over the snapshot (MD5 keys only: that is what coturn stores). */
  readonly keySource = (username: string, algorithm: PasswordAlgorithmName): Buffer | undefined =>
    algorithm === 'md5' ? this.snapshot.keys.get(username) : undefined

  /** Re-read the realm now. Never rejects: a failure keeps the old snapshot and marks the source unhealthy. */
  async refresh (): Promise<void> {
    if (this.refreshing || this.closed) return
    this.refreshing = true
    try {
      const realm = this.options.realm
      const prefix = `turn/realm/${realm}/user/`
      const names: string[] = []
      for await (const key of this.client.scanIterator({ MATCH: `${globEscape(prefix)}*/key`, COUNT: 1000 })) {
        const name = key.slice(prefix.length, -'/key'.length)
        if (name !== '') names.push(name)
      }
      const values = names.length === 0 ? [] : await this.client.mGet(names.map(n => `${prefix}${n}/key`))
      const keys = new Map<string, Buffer>()
      names.forEach((name, i) => {
        const v = values[i]
        if (v !== null && /^[0-9a-fA-F]{32}$/.test(v)) keys.set(name, Buffer.from(v, 'hex'))
        else if (v !== null) log.error('ignoring %s%s/key: not 32 hex digits (an MD5 key)', prefix, name)
      })
      const secrets = (await this.client.sMembers(`turn/realm/${realm}/secret`)).sort()
      const [userQuota, totalQuota] = await this.client.mGet([`turn/realm/${realm}/user-quota`, `turn/realm/${realm}/total-quota`])
      const next: RedisRealmSnapshot = { keys, secrets, userQuota: quota(userQuota), totalQuota: quota(totalQuota) }
      const old = this.snapshot
      this.snapshot = next
      this.setHealth(true, undefined)
      if (old.secrets.join('\n') !== next.secrets.join('\n') || old.userQuota !== next.userQuota || old.totalQuota !== next.totalQuota) {
        this.options.onChange?.(next)
      }
    } catch (err) {
      this.setHealth(false, (err as Error).message)
    } finally {
      this.refreshing = false
    }
  }

  private setHealth (ok: boolean, error: string | undefined): void {
    const changed = ok !== this.healthy
    this.healthy = ok
    this.error = error
    if (changed && !this.closed) {
      log('%s', ok ? 'Redis reachable' : `Redis unreachable: ${error ?? ''}`)
      this.options.onHealth?.(ok, error)
    }
  }

  /** Stop refreshing and disconnect; idempotent. */
  async close (): Promise<void> {
    if (this.closed) return
    this.closed = true
    if (this.timer !== undefined) clearInterval(this.timer)
    try { await this.client.disconnect() } catch { /* already closed */ }
  }
}
