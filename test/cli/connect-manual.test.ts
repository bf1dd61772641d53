import { expect } from 'chai'
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process'
import { CLI } from '../support/cli.js'

interface Side { child: ChildProcessWithoutNullStreams, stdout: string, stderr: string, exit: Promise<number | null> }

function side (args: string[]): Side {
  const child = spawn(process.execPath, [CLI, 'connect', '--manual', '--local-address', '127.0.0.1', '--count', '5', '--timeout', '10000', ...args], { env: { ...process.env, NO_COLOR: '1' }, stdio: ['pipe', 'pipe', 'pipe'] })
  const s: Side = { child, stdout: '', stderr: '', exit: new Promise(resolve => child.on('exit', (code) => { resolve(code) })) }
  child.stdout.on('data', (d: Buffer) => { s.stdout += d.toString() })
  child.stderr.on('data', (d: Buffer) => { s.stderr += d.toString() })
  child.stdin.on('error', () => {})
  return s
}

/** This side's ICE lines, once printed in full (bounded wait). */
async function iceLines (s: Side, from: 'stdout' | 'stderr'): Promise<string[]> {
  const deadline = Date.now() + 10_000
  while (!s[from].includes('a=end-of-candidates') && Date.now() < deadline) await new Promise(resolve => setTimeout(resolve, 10))
  const lines = s[from].split('\n').filter(l => l.startsWith('a='))
  expect(lines.at(-1), `${from} of natcheck: ${s[from]}`).to.equal('a=end-of-candidates')
  return lines
}

describe('natcheck connect --manual', function () {
  this.timeout(30_000)

  it('connects two terminals by copied ICE lines (both controlling: the tie-breaker decides) and echoes datagrams', async () => {
    const a = side(['--json'])
    const b = side([])
    try {
      const la = await iceLines(a, 'stderr') // with --json the lines go to stderr, stdout stays one document
      const lb = await iceLines(b, 'stdout')
      expect(la.some(l => l.startsWith('a=ice-ufrag:'))).to.equal(true)
      expect(la.some(l => / typ host/.test(l))).to.equal(true)
      a.child.stdin.end(lb.join('\n') + '\n\n')
      b.child.stdin.end(la.join('\n') + '\n\n')
      const [ca, cb] = await Promise.all([a.exit, b.exit])
      expect(ca, a.stderr).to.equal(0)
      expect(cb, b.stderr).to.equal(0)
      const doc = JSON.parse(a.stdout) as { path: { type: string } | null, delivered: number, role: string }
      expect(doc.path?.type).to.equal('direct')
      expect(doc.delivered).to.equal(5)
      expect(b.stdout).to.match(/echo: 5\/5 delivered/)
    } finally {
      for (const s of [a, b]) if (s.child.exitCode === null) s.child.kill('SIGKILL')
    }
  })

  it('rejects --manual together with --rendezvous (exit 1)', async () => {
    const s = side(['--rendezvous', 'ws://127.0.0.1:9/'])
    s.child.stdin.end()
    expect(await s.exit).to.equal(1)
    expect(s.stderr).to.match(/--manual replaces --rendezvous/)
  })
})
