import { relayPortBase } from '../support/net.js'
import { expect } from 'chai'
import { natcheck, natcheckStart } from '../support/cli.js'
import { hasCommand, requireOrSkip } from '../support/env.js'
import type { Started } from '../support/process.js'
import { Processes, freePort } from '../integration/relay/support.js'

describe('natcheck relay --log-format json (CLI)', function () {
  this.timeout(60_000)
  const procs = new Processes()
  const started: Started[] = []
  after(async () => {
    for (const s of started) await s.stop()
    await procs.killAll()
  })

  it('writes one JSON object per stderr line with ts, level, event and the event\'s fields, for every event', async function () {
    requireOrSkip(this, hasCommand('turnutils_uclient') && hasCommand('turnutils_peer'), 'coturn utilities (turnutils_uclient, turnutils_peer) not installed')
    const port = await freePort()
    const peerPort = await freePort()
    const base = relayPortBase()
    const s = await natcheckStart(['relay', '--listen', `127.0.0.1:${port}`, '--ports', `${base}-${base + 99}`, '--realm', 'natkit.test', '--user', 'u:p',
      '--allow-peer', '127.0.0.0/8', '--user-quota', '1', '--drain-timeout', '1', '--log-format', 'json'], /"event":"listening"/)
    started.push(s)
    procs.start('turnutils_peer', ['-L', '127.0.0.1', '-p', String(peerPort)])
    await new Promise((resolve) => setTimeout(resolve, 300))
    // Two clients for a quota of one: one allocation, one refusal. Then a wrong password: an auth failure.
    await procs.run('turnutils_uclient', ['-u', 'u', '-w', 'p', '-p', String(port), '-e', '127.0.0.1', '-r', String(peerPort), '-n', '2', '-m', '2', '-c', '127.0.0.1'], 20_000)
    await procs.run('turnutils_uclient', ['-u', 'u', '-w', 'wrong', '-p', String(port), '-e', '127.0.0.1', '-r', String(peerPort), '-n', '1', '-c', '127.0.0.1'], 20_000)
    s.child.kill('SIGTERM')
    await new Promise<void>((resolve) => {
      const t = setTimeout(resolve, 15_000)
      s.child.once('exit', () => { clearTimeout(t); resolve() })
    })

    const lines = s.output().split('\n').filter(l => l !== '')
    const events = lines.map((l) => JSON.parse(l) as Record<string, unknown>) // throws on any line that is not JSON
    for (const e of events) {
      expect(e.ts).to.be.a('string').and.match(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/)
      expect(['info', 'warn', 'error']).to.include(e.level)
      expect(e.event).to.be.a('string')
      expect(e.msg).to.be.a('string')
    }
    const byEvent = (name: string): Array<Record<string, unknown>> => events.filter(e => e.event === name)
    expect(byEvent('listening').map(e => e.protocol)).to.have.members(['udp', 'tcp'])
    expect(byEvent('listening')[0].address).to.match(new RegExp(`^127\\.0\\.0\\.1:(${port})$`))
    const alloc = byEvent('allocation')
    expect(alloc).to.have.length(1)
    expect(alloc[0]).to.include({ level: 'info', user: 'u', protocol: 'udp', transport: 'udp' })
    expect(alloc[0].lifetime).to.be.a('number').above(0)
    expect(alloc[0].id).to.be.a('number')
    expect(alloc[0].client).to.match(/^127\.0\.0\.1:\d+$/)
    expect(alloc[0].relayed).to.be.an('array').with.length(1)
    const refused = byEvent('quota-refused')
    expect(refused.length).to.be.at.least(1)
    expect(refused[0]).to.include({ level: 'warn', quota: 'user', limit: 1, user: 'u', protocol: 'udp' })
    expect(byEvent('auth-failure').length).to.be.at.least(1)
    expect(byEvent('auth-failure')[0].reason).to.be.a('string')
    expect(byEvent('draining')[0]).to.include({ timeout: 1 })
    expect(byEvent('stopped')).to.have.length(1)
  })

  it('logs a usage error as JSON too, and rejects an unknown format', async () => {
    const r = await natcheck(['relay', '--realm', 'r', '--log-format', 'json'])
    expect(r.code).to.equal(1)
    expect(JSON.parse(r.stderr.trim())).to.include({ level: 'error', event: 'error', code: 'ERR_INVALID_ARGUMENT' })
    const bad = await natcheck(['relay', '--realm', 'r', '--user', 'a:b', '--log-format', 'yaml'])
    expect(bad.code).to.equal(1)
    expect(bad.stderr).to.match(/--log-format "yaml": write text or json/)
  })
})
