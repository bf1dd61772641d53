import { relayPortBase } from '../support/net.js'
import { expect } from 'chai'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { get } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { natcheck, natcheckStart } from '../support/cli.js'
import { hasCommand, requireOrSkip } from '../support/env.js'
import { loadNativeUdp, nativeUdpUnavailableReason } from '../../src/net/native.js'
import { exitOf, type Started, waitForOutput } from '../support/process.js'
import { Processes, freePort, parseUclient } from '../integration/relay/support.js'

/** GET http://127.0.0.1:PORT/PATH (bounded). */
async function httpGet (port: number, path: string): Promise<{ status: number, type: string, body: string }> {
  return await new Promise((resolve, reject) => {
    const req = get({ host: '127.0.0.1', port, path, timeout: 5000 }, (res) => {
      let body = ''
      res.on('data', (d: Buffer) => { body += d.toString() })
      res.on('end', () => { resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type'] ?? ''), body }) })
    })
    req.on('timeout', () => { req.destroy(new Error('timeout')) })
    req.on('error', reject)
  })
}

describe('natcheck relay (CLI)', function () {
  this.timeout(60_000)
  const procs = new Processes()
  const started: Started[] = []
  let dir = ''

  before(() => { dir = mkdtempSync(join(tmpdir(), 'natkit-relay-cli-')) })
  after(async () => {
    for (const s of started) await s.stop()
    await procs.killAll()
    rmSync(dir, { recursive: true, force: true })
  })

  async function startRelay (args: string[]): Promise<{ s: Started, port: number }> {
    const port = await freePort()
    const base = relayPortBase()
    const s = await natcheckStart(['relay', '--listen', `127.0.0.1:${port}`, '--ports', `${base}-${base + 499}`, ...args], /listening udp 127\.0\.0\.1:\d+/)
    started.push(s)
    return { s, port }
  }

  const usage: Array<{ name: string, args: string[], says: RegExp }> = [
    { name: 'no realm', args: ['relay', '--user', 'a:b'], says: /--realm is required/ },
    { name: 'no credentials', args: ['relay', '--realm', 'r'], says: /no credentials/ },
    { name: 'a user without a password', args: ['relay', '--realm', 'r', '--user', 'alice'], says: /NAME:PASSWORD/ },
    { name: 'a bad port range', args: ['relay', '--realm', 'r', '--user', 'a:b', '--ports', '9-x'], says: /LOW-HIGH/ },
    { name: 'half a TLS setup', args: ['relay', '--realm', 'r', '--user', 'a:b', '--tls-listen', '127.0.0.1:5349'], says: /TLS needs/ },
    { name: 'a bad quota', args: ['relay', '--realm', 'r', '--user', 'a:b', '--user-quota', '-1'], says: /--user-quota/ },
    { name: 'a missing config file', args: ['relay', '--config', '/nonexistent/natkit-relay.json'], says: /cannot read config/ }
  ]
  for (const u of usage) {
    it(`exits 1 on a usage error: ${u.name}, with stdout empty`, async () => {
      const r = await natcheck(u.args)
      expect(r.code, r.stderr).to.equal(1)
      expect(r.stdout).to.equal('')
      expect(r.stderr).to.match(u.says)
    })
  }

  it('says on stderr whether the native fast path is on, and turns it off with --no-fast-path', async function () {
    requireOrSkip(this, typeof loadNativeUdp()?.fastInstall === 'function', `native UDP addon with the fast path unavailable (${nativeUdpUnavailableReason() ?? 'built without it'})`)
    const common = ['--realm', 'natkit.test', '--user', 'alice:secret', '--workers', '1']
    const on = await startRelay(common)
    expect(await waitForOutput(on.s, /fast path/, 5000)).to.equal(true)
    expect(on.s.output()).to.match(/natcheck relay: fast path on: established channels are relayed in the native addon/)
    const off = await startRelay([...common, '--no-fast-path'])
    expect(await waitForOutput(off.s, /fast path/, 5000)).to.equal(true)
    expect(off.s.output()).to.match(/natcheck relay: fast path off: turned off/)
  })

  it('prints its listen addresses on stderr, relays coturn\'s turnutils_uclient, serves /metrics and /healthz, and drains on SIGTERM with exit 0', async function () {
    requireOrSkip(this, hasCommand('turnutils_uclient') && hasCommand('turnutils_peer'), 'coturn utilities (turnutils_uclient, turnutils_peer) not installed')
    const admin = await freePort()
    const { s, port } = await startRelay(['--realm', 'natkit.test', '--user', 'alice:secret', '--allow-peer', '127.0.0.0/8', '--admin', `127.0.0.1:${admin}`, '--drain-timeout', '2'])
    expect(await waitForOutput(s, /admin http:\/\/127\.0\.0\.1:\d+\/metrics/, 5000)).to.equal(true)
    expect(s.output()).to.match(new RegExp(`natcheck relay: listening udp 127\\.0\\.0\\.1:${port}`))
    expect(s.output()).to.match(new RegExp(`natcheck relay: listening tcp 127\\.0\\.0\\.1:${port}`))

    const health = await httpGet(admin, '/healthz')
    expect(health).to.include({ status: 200, body: 'ok\n' })

    const peerPort = await freePort()
    procs.start('turnutils_peer', ['-L', '127.0.0.1', '-p', String(peerPort)])
    await new Promise((resolve) => setTimeout(resolve, 300))
    const { output } = await procs.run('turnutils_uclient', ['-u', 'alice', '-w', 'secret', '-p', String(port), '-e', '127.0.0.1', '-r', String(peerPort), '-n', '10', '-m', '2', '-c', '127.0.0.1'], 30_000)
    const totals = parseUclient(output)
    expect(totals?.sent, output.slice(-1500)).to.equal(20)
    expect(totals?.received).to.equal(20)

    const metrics = await httpGet(admin, '/metrics')
    expect(metrics.status).to.equal(200)
    expect(metrics.type).to.match(/^text\/plain; version=0\.0\.4/)
    const relayed = /natkit_relay_packets_total\{direction="client-to-peer"\} (\d+)/.exec(metrics.body)
    expect(Number(relayed?.[1] ?? 0)).to.be.at.least(20)
    expect(Number(/natkit_relay_allocations_total\{transport="udp"\} (\d+)/.exec(metrics.body)?.[1] ?? 0)).to.be.at.least(2)
    expect(metrics.body).to.match(/process_cpu_seconds_total/)
    expect(metrics.body).to.not.include('alice')
    expect(await httpGet(admin, '/nope')).to.include({ status: 404 })

    s.child.kill('SIGTERM')
    expect(await exitOf(s, 10_000)).to.equal(0)
    expect(s.output()).to.match(/draining for up to 2s/)
    expect(s.output()).to.match(/natcheck relay: stopped/)
  })

  it('re-reads its config file on SIGHUP: a user added there works after the reload, and stdout stays empty', async function () {
    requireOrSkip(this, hasCommand('turnutils_uclient') && hasCommand('turnutils_peer'), 'coturn utilities (turnutils_uclient, turnutils_peer) not installed')
    const config = join(dir, 'relay.json')
    writeFileSync(config, JSON.stringify({ realm: 'natkit.test', users: { alice: 'secret' }, allowPeer: ['127.0.0.0/8'], drainTimeout: 2 }))
    const { s, port } = await startRelay(['--config', config])
    let stdout = ''
    s.child.stdout?.on('data', (d: Buffer) => { stdout += d.toString() })
    const peerPort = await freePort()
    procs.start('turnutils_peer', ['-L', '127.0.0.1', '-p', String(peerPort)])
    await new Promise((resolve) => setTimeout(resolve, 300))
    const asBob = async (): Promise<{ sent: number, received: number } | undefined> => parseUclient((await procs.run('turnutils_uclient',
      ['-u', 'bob', '-w', 'pw', '-p', String(port), '-e', '127.0.0.1', '-r', String(peerPort), '-n', '5', '-c', '127.0.0.1'], 20_000)).output)

    expect((await asBob())?.received ?? 0).to.equal(0)
    writeFileSync(config, JSON.stringify({ realm: 'natkit.test', users: { alice: 'secret', bob: 'pw' }, allowPeer: ['127.0.0.0/8'], drainTimeout: 2 }))
    s.child.kill('SIGHUP')
    expect(await waitForOutput(s, /configuration reloaded/, 5000)).to.equal(true)
    const after = await asBob()
    expect(after?.sent).to.equal(5)
    expect(after?.received).to.equal(5)

    // A broken config is refused and the old one kept.
    writeFileSync(config, '{ not json')
    s.child.kill('SIGHUP')
    expect(await waitForOutput(s, /reload failed, keeping the old configuration/, 5000)).to.equal(true)
    expect((await asBob())?.received).to.equal(5)

    s.child.kill('SIGTERM')
    expect(await exitOf(s, 40_000)).to.equal(0)
    expect(stdout).to.equal('')
  })

  it('exits 1 when its port is taken', async () => {
    const { port } = await startRelay(['--realm', 'r', '--user', 'a:b'])
    const r = await natcheck(['relay', '--listen', `127.0.0.1:${port}`, '--realm', 'r', '--user', 'a:b'])
    expect(r.code).to.equal(1)
    expect(r.stdout).to.equal('')
    expect(r.stderr).to.match(/cannot (bind|listen)/)
  })
})
