/** `natcheck lab …` end to end: spawns the built CLI (lab commands only) and checks stdout, stderr and exit codes. */
import { expect } from 'chai'
import { spawnSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { labDown } from '../../src/lab/index.js'
import { requireLab } from './support/lab-helpers.js'

const ENTRY = fileURLToPath(new URL('./support/lab-cli-entry.js', import.meta.url))

function cli (...args: string[]): { stdout: string, stderr: string, code: number | null } {
  const r = spawnSync(process.execPath, [ENTRY, 'lab', ...args], { encoding: 'utf8', timeout: 20_000 })
  return { stdout: r.stdout, stderr: r.stderr, code: r.status }
}

describe('natcheck lab (CLI)', function () {
  this.timeout(30_000)
  const prefix = `nk-c${process.pid % 10000}-`
  before(function () { requireLab(this, false) })
  after(async function () { await labDown(prefix) })

  it('up prints the lab as JSON, exec runs in a node with its exit code, down removes it', function () {
    const up = cli('up', '--nat-a', 'symmetric', '--nat-b', 'none', '--udp-timeout', '5', '--prefix', prefix, '--json')
    expect(up.code, up.stderr).to.equal(0)
    const doc = JSON.parse(up.stdout) as { schemaVersion: number, lab: { a: { nat: string, wanIp: string }, udpTimeoutS: number } }
    expect(doc.schemaVersion).to.equal(1)
    expect(doc.lab.a).to.include({ nat: 'symmetric', wanIp: '198.51.100.1' })
    expect(doc.lab.udpTimeoutS).to.equal(5)

    const ex = cli('exec', '--prefix', prefix, 'a', '--', 'ip', '-4', '-o', 'route')
    expect(ex.code, ex.stderr).to.equal(0)
    expect(ex.stdout).to.include('default via 10.0.1.1')
    expect(cli('exec', '--prefix', prefix, 'router-a', '--', 'sh', '-c', 'exit 7').code).to.equal(7)

    const st = cli('status', '--json')
    expect((JSON.parse(st.stdout) as { labs: Array<{ prefix: string, complete: boolean }> }).labs.find((l) => l.prefix === prefix)?.complete).to.equal(true)

    const down = cli('down', '--prefix', prefix)
    expect(down.code).to.equal(0)
    expect(down.stdout).to.equal(`lab ${prefix} down\n`)
    const gone = cli('exec', '--prefix', prefix, 'a', '--', 'true')
    expect(gone.code).to.equal(1)
    expect(gone.stdout).to.equal('')
    expect(gone.stderr).to.include('no lab with prefix')
  })

  it('rejects a bad NAT type or prefix with exit code 1 and nothing on stdout', function () {
    for (const args of [['up', '--nat-a', 'cone', '--nat-b', 'none'], ['up', '--nat-a', 'none', '--nat-b', 'none', '--prefix', 'a/b'], ['exec', 'nowhere', '--', 'true']]) {
      const r = cli(...args)
      expect(r.code, args.join(' ')).to.equal(1)
      expect(r.stdout, args.join(' ')).to.equal('')
      expect(r.stderr, args.join(' ')).to.not.equal('')
    }
  })
})
