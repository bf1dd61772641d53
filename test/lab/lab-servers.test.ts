/**
 * The lab as a user meets it: `natcheck lab up` starts natkit's RFC 5780 STUN server, a TURN relay and the
 * rendezvous in the server namespace, prints the commands to try, and those commands work exactly as printed
 * (with `natcheck` on PATH, as after `npm install -g`); `lab down` stops the servers by their recorded PIDs.
 */
import { expect } from 'chai'
import { mkdtempSync, readFileSync, rmSync, symlinkSync, chmodSync, existsSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { LAB_NAT_TYPES, labDown } from '../../src/lab/index.js'
import { labStateDir, readLabState } from '../../src/lab/state.js'
import { netnsPids } from '../../src/lab/netns.js'
import { CLI } from '../support/cli.js'
import { run } from '../support/process.js'
import { requireLab } from './support/lab-helpers.js'

function alive (pid: number): boolean {
  try { process.kill(pid, 0); return true } catch { return false }
}

describe('natcheck lab up: servers and the commands to try', function () {
  this.timeout(120_000)
  const prefix = `nkhn-s${process.pid % 10000}-`
  let bin = ''
  let cwd = ''
  let env: NodeJS.ProcessEnv = {}
  /** Run a shell command line as a user would type it, with natcheck on PATH. */
  const sh = async (line: string, timeoutMs = 60_000): ReturnType<typeof run> => await run('sh', ['-c', `cd '${cwd}' && ${line}`], { env, timeoutMs })

  before(function () {
    requireLab(this, false)
    bin = mkdtempSync(join(tmpdir(), 'nkhn-bin-'))
    cwd = mkdtempSync(join(tmpdir(), 'nkhn-cwd-'))
    chmodSync(CLI, 0o755)
    symlinkSync(CLI, join(bin, 'natcheck'))
    env = { ...process.env, PATH: `${bin}:${process.env.PATH ?? ''}`, NO_COLOR: '1' }
  })
  after(async function () {
    await labDown(prefix)
    if (bin !== '') rmSync(bin, { recursive: true, force: true })
    if (cwd !== '') rmSync(cwd, { recursive: true, force: true })
  })

  it('the README example works as written, every printed command works, and down stops the servers', async () => {
    const up = await sh(`natcheck lab up --nat-a symmetric --nat-b full-cone --prefix ${prefix}`)
    expect(up.code, up.stderr).to.equal(0)
    const tries = up.stdout.split('\n').filter((l) => l.startsWith('  natcheck ')).map((l) => l.trim())
    expect(tries[0]).to.equal(`natcheck lab exec --prefix ${prefix} a -- natcheck --server 203.0.113.10`)
    expect(tries.some((l) => l.startsWith('natcheck pair '))).to.equal(true)
    expect(tries.filter((l) => l.includes(' natcheck connect '))).to.have.length(2)

    const state = await readLabState(prefix)
    const procs = state?.services?.processes ?? []
    expect(procs.map((p) => p.name)).to.deep.equal(['stun', 'relay'])
    for (const p of procs) expect(alive(p.pid), `${p.name} pid ${p.pid}`).to.equal(true)

    // The README's own command, from each site: natkit's RFC 5780 server answers, so the NAT types are measured.
    const a = await sh(tries[0])
    expect(a.code, a.stderr).to.equal(0)
    expect(a.stdout).to.match(/^NAT type: symmetric$/m)
    expect(a.stdout).to.include('RFC 5780')
    const b = await sh(tries[1])
    expect(b.code, b.stderr).to.equal(0)
    expect(b.stdout).to.match(/^NAT type: full-cone$/m)

    // Saved reports and the pair predictor, as printed.
    for (const line of tries.filter((l) => l.endsWith('.json') || l.startsWith('natcheck pair '))) {
      const r = await sh(line)
      expect(r.code, `${line}: ${r.stderr}`).to.equal(0)
      if (line.startsWith('natcheck pair ')) expect(r.stdout).to.match(/^symmetric \+ full-cone: /)
    }
    expect((JSON.parse(readFileSync(join(cwd, 'a.json'), 'utf8')) as { nat: { type: string } }).nat.type).to.equal('symmetric')

    // The two connect commands, together, as printed (the first one ends in `&`).
    const connect = tries.filter((l) => l.includes(' natcheck connect '))
    const c = await sh(`${connect[0]}\n${connect[1]}; cb=$?; wait $!; ca=$?; exit $((ca | cb))`)
    expect(c.code, c.stdout + c.stderr).to.equal(0)
    expect(c.stdout.match(/^path: direct,/gm), c.stdout).to.have.length(2)
    expect(c.stdout.match(/20\/20 delivered/g), c.stdout).to.have.length(2)

    const down = await sh(tries[tries.length - 1])
    expect(down.code, down.stderr).to.equal(0)
    for (const p of procs) {
      expect(alive(p.pid), `${p.name} pid ${p.pid} after down`).to.equal(false)
      expect(existsSync(p.logFile)).to.equal(false)
    }
    expect(existsSync(join(labStateDir(), `${prefix}.json`))).to.equal(false)
  })

  it('--no-servers starts nothing in the server namespace and says so', async () => {
    const up = await sh(`natcheck lab up --nat-a none --nat-b none --no-servers --prefix ${prefix} --json`)
    expect(up.code, up.stderr).to.equal(0)
    const doc = JSON.parse(up.stdout) as { services: unknown, try: string[] }
    expect(doc.services).to.equal(null)
    expect(await netnsPids(`${prefix}server`)).to.deep.equal([])
    const r = await sh(`natcheck lab exec --prefix ${prefix} a -- natcheck --server 203.0.113.10 --timeout 500`)
    expect(r.code).to.equal(2)
    await labDown(prefix)
  })
})

describe('natcheck lab up --help', function () {
  it('lists every lab NAT type, including tcp-only, --upnp and --no-servers', async () => {
    const r = await run(process.execPath, [CLI, 'lab', 'up', '--help'], { timeoutMs: 10_000 })
    expect(r.code).to.equal(0)
    const text = r.stdout.replace(/\s+/g, ' ')
    for (const t of LAB_NAT_TYPES) expect(text).to.include(`"${t}"`)
    expect(text).to.include('"tcp-only"')
    expect(text).to.include('--no-servers')
    expect(text).to.include('--upnp <sites>')
  })
})
