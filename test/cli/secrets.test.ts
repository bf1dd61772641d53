import { relayPortBase } from '../support/net.js'
import { expect } from 'chai'
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { CLI, natcheckStart } from '../support/cli.js'
import { run, type Started } from '../support/process.js'
import { freePort } from '../integration/relay/support.js'

/** Secrets kept out of `ps`: files and environment variables for relay, turn and connect. */
describe('secrets from files and the environment (CLI)', function () {
  this.timeout(60_000)
  let dir = ''
  let relay: Started | undefined
  let port = 0
  const env = (extra: Record<string, string> = {}): NodeJS.ProcessEnv => {
    const e: NodeJS.ProcessEnv = { ...process.env, NO_COLOR: '1', ...extra }
    delete e.NATKIT_USER; delete e.NATKIT_AUTH_SECRET
    return { ...e, ...extra }
  }
  const turn = async (args: string[], extra: Record<string, string> = {}): Promise<{ code: number | null, stdout: string, stderr: string }> =>
    await run(process.execPath, [CLI, 'turn', `127.0.0.1:${port}`, '--count', '5', '--timeout', '3000', '--json', ...args], { timeoutMs: 30_000, env: env(extra) })

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'natkit-secrets-'))
    writeFileSync(join(dir, 'users'), '# static users\nfile-user:file-pass\n')
    chmodSync(join(dir, 'users'), 0o644)
    writeFileSync(join(dir, 'secret'), 'rotated-old\nfile-secret\n')
    chmodSync(join(dir, 'secret'), 0o600)
    port = await freePort()
    const base = relayPortBase()
    relay = await natcheckStart(['relay', '--listen', `127.0.0.1:${port}`, '--ports', `${base}-${base + 99}`, '--realm', 'secrets.test',
      '--user-file', join(dir, 'users'), '--auth-secret-file', join(dir, 'secret'), '--allow-peer', '127.0.0.0/8'], /listening udp/)
  })
  after(async () => {
    await relay?.stop()
    rmSync(dir, { recursive: true, force: true })
  })

  it('relay warns that a world-readable user file is readable by everyone, and says how to fix it', () => {
    expect(relay?.output()).to.match(/warning: user file .*users is readable by every user \(mode 644\): chmod 600/)
    expect(relay?.output()).to.not.match(/auth secret file .* readable by every user/)
  })

  it('turn --user-file authenticates with the user the relay read from its file', async () => {
    writeFileSync(join(dir, 'client-user'), 'file-user:file-pass\n', { mode: 0o600 })
    const r = await turn(['--user-file', join(dir, 'client-user')])
    expect(JSON.parse(r.stdout).ok, r.stdout + r.stderr).to.equal(true)
    expect(r.code).to.equal(0)
  })

  it('turn with NATKIT_AUTH_SECRET (any secret of the relay\'s file) authenticates; a wrong one is refused', async () => {
    const ok = await turn([], { NATKIT_AUTH_SECRET: 'rotated-old' })
    expect(JSON.parse(ok.stdout).ok, ok.stdout + ok.stderr).to.equal(true)
    const bad = await turn([], { NATKIT_AUTH_SECRET: 'not-the-secret' })
    expect(JSON.parse(bad.stdout).ok).to.equal(false)
    expect(bad.code).to.equal(2)
  })

  it('turn with NATKIT_USER authenticates; with no credential anywhere it is a usage error', async () => {
    const ok = await turn([], { NATKIT_USER: 'file-user:file-pass' })
    expect(JSON.parse(ok.stdout).ok, ok.stdout + ok.stderr).to.equal(true)
    const none = await turn([])
    expect(none.code).to.equal(1)
    expect(JSON.parse(none.stdout).error.message).to.match(/NATKIT_USER/)
  })

  it('a flag and its file together are a usage error', async () => {
    const r = await turn(['--user', 'a:b', '--user-file', join(dir, 'users')])
    expect(r.code).to.equal(1)
    expect(JSON.parse(r.stdout).error.message).to.match(/--user or --user-file/)
  })
})
