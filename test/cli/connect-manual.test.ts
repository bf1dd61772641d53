import { expect } from 'chai'
import { iceLines, manualSide } from './support/manual-side.js'

describe('natcheck connect --manual', function () {
  this.timeout(30_000)

  it('connects two terminals by copied ICE lines (both controlling: the tie-breaker decides) and echoes datagrams', async () => {
    const a = manualSide(['--json'], 5)
    const b = manualSide([], 5)
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
    const s = manualSide(['--rendezvous', 'ws://127.0.0.1:9/'], 5)
    s.child.stdin.end()
    expect(await s.exit).to.equal(1)
    expect(s.stderr).to.match(/--manual replaces --rendezvous/)
  })
})
