import { relayPortBase } from '../support/net.js'
import { expect } from 'chai'
import { createHash } from 'node:crypto'
import { get } from 'node:http'
import { natcheck, natcheckStart } from '../support/cli.js'
import { hasCommand, requireOrSkip } from '../support/env.js'
import { run, start, type Started } from '../support/process.js'
import { Processes, freePort, parseUclient } from '../integration/relay/support.js'
import { TurnClient } from '../../src/relay/turn-client.js'

const REALM = 'natkit.test'

async function httpGet (port: number, path: string): Promise<{ status: number, body: string }> {
  return await new Promise((resolve, reject) => {
    const req = get({ host: '127.0.0.1', port, path, timeout: 5000 }, (res) => {
      let body = ''
      res.on('data', (d: Buffer) => { body += d.toString() })
      res.on('end', () => { resolve({ status: res.statusCode ?? 0, body }) })
    })
    req.on('timeout', () => { req.destroy(new Error('timeout')) })
    req.on('error', reject)
  })
}

/** Poll (bounded) until `check` is true. */
async function eventually (check: () => Promise<boolean> | boolean, timeoutMs: number): Promise<boolean> {
  const end = Date.now() + timeoutMs
  while (Date.now() < end) {
    if (await check()) return true
    await new Promise((resolve) => setTimeout(resolve, 200))
  }
  return false
}

/** coturn's Redis user key: hex MD5 of "user:realm:password" (coturn schema.userdb.redis). */
const coturnKey = (user: string, password: string): string => createHash('md5').update(`${user}:${REALM}:${password}`).digest('hex')

describe('natcheck relay --redis (coturn Redis user database, CLI)', function () {
  this.timeout(120_000)
  const procs = new Processes()
  const started: Started[] = []
  let redis: Started | undefined
  let redisPort = 0
  let peerPort = 0

  const startRedis = async (): Promise<void> => {
    redis = await start('redis-server', ['--port', String(redisPort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { ready: /Ready to accept connections/, timeoutMs: 10_000 })
  }
  const cli = async (...args: string[]): Promise<string> => (await run('redis-cli', ['-h', '127.0.0.1', '-p', String(redisPort), ...args], { timeoutMs: 5000 })).stdout

  before(async function () {
    requireOrSkip(this, hasCommand('redis-server') && hasCommand('redis-cli'), 'redis-server not installed (Debian package redis-server)')
    requireOrSkip(this, hasCommand('turnutils_uclient') && hasCommand('turnutils_peer'), 'coturn utilities (turnutils_uclient, turnutils_peer) not installed')
    redisPort = await freePort()
    await startRedis()
    peerPort = await freePort()
    procs.start('turnutils_peer', ['-L', '127.0.0.1', '-p', String(peerPort)])
  })
  after(async () => {
    for (const s of started) await s.stop()
    await redis?.stop()
    await procs.killAll()
  })

  const uclient = async (port: number, args: string[]): Promise<ReturnType<typeof parseUclient>> =>
    parseUclient((await procs.run('turnutils_uclient', [...args, '-p', String(port), '-e', '127.0.0.1', '-r', String(peerPort), '-n', '5', '-m', '2', '-c', '127.0.0.1'], 30_000)).output)

  it('authenticates coturn\'s Redis users and REST secrets, sees changes while running, applies its quotas, and keeps serving when Redis goes away', async () => {
    await cli('set', `turn/realm/${REALM}/user/gorst/key`, coturnKey('gorst', 'hero'))
    await cli('sadd', `turn/realm/${REALM}/secret`, 'logen', 'bloody9')
    const port = await freePort()
    const admin = await freePort()
    const base = relayPortBase()
    const s = await natcheckStart(['relay', '--listen', `127.0.0.1:${port}`, '--ports', `${base}-${base + 499}`, '--realm', REALM, '--redis', `redis://127.0.0.1:${redisPort}`,
      '--allow-peer', '127.0.0.0/8', '--admin', `127.0.0.1:${admin}`], /admin http:/)
    started.push(s)

    expect((await uclient(port, ['-u', 'gorst', '-w', 'hero']))?.received).to.equal(10)
    expect((await uclient(port, ['-W', 'bloody9', '-u', 'rest-user']))?.received).to.equal(10)
    expect((await uclient(port, ['-u', 'gorst', '-w', 'wrong']))?.received ?? 0).to.equal(0)
    expect((await httpGet(admin, '/healthz')).status).to.equal(200)

    // A user added to Redis while the relay runs (coturn: "almost immediately seen").
    await cli('set', `turn/realm/${REALM}/user/whirrun/key`, coturnKey('whirrun', 'sword'))
    expect(await eventually(async () => {
      try { const c = await TurnClient.allocate({ server: `127.0.0.1:${port}`, credentials: { username: 'whirrun', password: 'sword' } }); await c.close(); return true } catch { return false }
    }, 15_000)).to.equal(true)

    // The realm's user-quota from Redis.
    await cli('set', `turn/realm/${REALM}/user-quota`, '1')
    await new Promise((resolve) => setTimeout(resolve, 3000))
    await uclient(port, ['-u', 'gorst', '-w', 'hero', '-m', '3'])
    expect(s.output()).to.match(/allocation refused \(486\): user quota of 1 reached, user=gorst/)
    await cli('del', `turn/realm/${REALM}/user-quota`)
    await new Promise((resolve) => setTimeout(resolve, 3000)) // a refresh (every 2 s) drops the quota

    // Redis goes away: /healthz says so, the log says so, and users and secrets last read keep working.
    await redis?.stop()
    expect(await eventually(async () => (await httpGet(admin, '/healthz')).status === 503, 15_000)).to.equal(true)
    expect((await httpGet(admin, '/healthz')).body).to.match(/^redis unreachable/)
    expect(s.output()).to.match(/Redis unreachable \(.*\): serving existing allocations and the users and secrets last read/)
    const cached = await uclient(port, ['-u', 'whirrun', '-w', 'sword'])
    expect(cached?.received).to.equal(10)

    // Back again.
    await startRedis()
    expect(await eventually(async () => (await httpGet(admin, '/healthz')).status === 200, 15_000)).to.equal(true)
  })

  it('exits 1 when Redis cannot be reached at start', async () => {
    const dead = await freePort()
    const r = await natcheck(['relay', '--listen', `127.0.0.1:${await freePort()}`, '--realm', REALM, '--redis', `redis://127.0.0.1:${dead}`, '--workers', '1'], { timeoutMs: 30_000 })
    expect(r.code, r.stderr).to.equal(1)
    expect(r.stderr).to.match(/cannot read Redis at redis:\/\/127\.0\.0\.1:\d+/)
  })
})
