import { expect } from 'chai'
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process'
import { CLI } from '../../support/cli.js'

/** One terminal of `natcheck connect --manual` on 127.0.0.1: its output so far and its exit. */
export interface ManualSide { child: ChildProcessWithoutNullStreams, stdout: string, stderr: string, exit: Promise<number | null> }

/** Start `natcheck connect --manual` on 127.0.0.1 sending `count` datagrams; `args` are added. */
export function manualSide (args: string[], count: number): ManualSide {
  const child = spawn(process.execPath, [CLI, 'connect', '--manual', '--local-address', '127.0.0.1', '--count', String(count), '--timeout', '10000', ...args], { env: { ...process.env, NO_COLOR: '1' }, stdio: ['pipe', 'pipe', 'pipe'] })
  const s: ManualSide = { child, stdout: '', stderr: '', exit: new Promise(resolve => child.on('exit', (code) => { resolve(code) })) }
  child.stdout.on('data', (d: Buffer) => { s.stdout += d.toString() })
  child.stderr.on('data', (d: Buffer) => { s.stderr += d.toString() })
  child.stdin.on('error', () => {})
  return s
}

/** This side's ICE lines, once printed in full (bounded wait). */
export async function iceLines (s: ManualSide, from: 'stdout' | 'stderr'): Promise<string[]> {
  const deadline = Date.now() + 10_000
  while (!s[from].includes('a=end-of-candidates') && Date.now() < deadline) await new Promise(resolve => setTimeout(resolve, 10))
  const lines = s[from].split('\n').filter(l => l.startsWith('a='))
  expect(lines.at(-1), `${from} of natcheck: ${s[from]}`).to.equal('a=end-of-candidates')
  return lines
}
