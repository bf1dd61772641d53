import { expect } from 'chai'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { CLI } from '../support/cli.js'
import { hasCommand, isRoot, requireOrSkip } from '../support/env.js'
import { run, start, type Started } from '../support/process.js'

const UNIT = fileURLToPath(new URL('../../../docs/systemd/natkit-relay.service', import.meta.url))
const GUIDE = fileURLToPath(new URL('../../../docs/relay.md', import.meta.url))

/** The unit's settings, key → values (keys may repeat). */
function settings (text: string): Map<string, string[]> {
  const out = new Map<string, string[]>()
  for (const line of text.split('\n')) {
    const m = /^([A-Za-z]+)=(.*)$/.exec(line.trim())
    if (m !== null) out.set(m[1], [...(out.get(m[1]) ?? []), m[2]])
  }
  return out
}

describe('systemd unit docs/systemd/natkit-relay.service', function () {
  this.timeout(30_000)
  const unit = readFileSync(UNIT, 'utf8')
  const s = settings(unit)
  let dir = ''
  const started: Started[] = []
  before(() => { dir = mkdtempSync(join(tmpdir(), 'natkit-unit-')) })
  after(async () => {
    for (const p of started) await p.stop()
    rmSync(dir, { recursive: true, force: true })
  })

  it('is quoted verbatim in docs/relay.md', () => {
    expect(readFileSync(GUIDE, 'utf8')).to.include('```ini\n' + unit + '```')
  })

  it('runs as a dynamic user with CAP_NET_BIND_SERVICE as its only capability, no new privileges, a read-only system', () => {
    expect(s.get('DynamicUser')).to.deep.equal(['yes'])
    expect(s.get('CapabilityBoundingSet')).to.deep.equal(['CAP_NET_BIND_SERVICE'])
    expect(s.get('AmbientCapabilities')).to.deep.equal(['CAP_NET_BIND_SERVICE'])
    expect(s.get('NoNewPrivileges')).to.deep.equal(['yes'])
    expect(s.get('ProtectSystem')).to.deep.equal(['strict'])
    expect(s.get('ExecStart')?.[0]).to.match(/natcheck relay --config \/etc\/natkit\/relay\.json/)
    // SIGTERM drains for drainTimeout (30 s by default): systemd must wait longer before SIGKILL.
    expect(Number(s.get('TimeoutStopSec')?.[0])).to.be.greaterThan(30)
  })

  it('passes systemd-analyze verify, and systemd-analyze security rates it at most 2.5', async function () {
    requireOrSkip(this, hasCommand('systemd-analyze'), 'systemd-analyze not installed (Debian package systemd)')
    // verify checks that ExecStart's program exists: point it at this checkout's CLI.
    const copy = join(dir, 'natkit-relay.service')
    writeFileSync(copy, unit.replace('/usr/local/bin/natcheck', `${process.execPath} ${CLI}`))
    const verify = await run('systemd-analyze', ['verify', '--man=no', copy], { timeoutMs: 20_000 })
    expect(verify.code, verify.stderr).to.equal(0)
    expect(verify.stderr.trim()).to.equal('')
    const sec = await run('systemd-analyze', ['security', '--offline=yes', copy], { timeoutMs: 20_000 })
    const level = /Overall exposure level for natkit-relay\.service: ([\d.]+)/.exec(sec.stdout + sec.stderr)
    expect(level, sec.stdout + sec.stderr).to.not.equal(null)
    expect(Number(level?.[1])).to.be.at.most(2.5)
  })

  it('needs no more than CAP_NET_BIND_SERVICE: as an unprivileged user with only it, the relay binds a port below 1024; without it, it cannot', async function () {
    requireOrSkip(this, hasCommand('setpriv') && isRoot(), 'needs root and setpriv (util-linux) to drop to an unprivileged user')
    const port = 600 + Math.floor(Math.random() * 400)
    const drop = (caps: boolean): string[] => [
      '--reuid=65534', '--regid=65534', '--clear-groups', '--no-new-privs',
      `--inh-caps=-all${caps ? ',+net_bind_service' : ''}`, `--ambient-caps=-all${caps ? ',+net_bind_service' : ''}`, `--bounding-set=-all${caps ? ',+net_bind_service' : ''}`,
      process.execPath, CLI, 'relay', '--listen', `127.0.0.1:${port}`, '--realm', 'r', '--user', 'u:p', '--log-format', 'json'
    ]
    const without = await run('setpriv', drop(false), { timeoutMs: 15_000 })
    expect(without.code, without.stderr).to.equal(1)
    expect(without.stderr).to.match(/"event":"error"/)
    const withCap = await start('setpriv', drop(true), { ready: /"event":"listening"/, timeoutMs: 15_000 })
    started.push(withCap)
    expect(withCap.output()).to.include(`"address":"127.0.0.1:${port}"`)
  })
})
