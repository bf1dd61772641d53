/**
 * Thin wrappers over `ip` and `nft`: every command is an argv array run with `child_process.spawn`
 * (never a shell string), bounded by a timeout.
 */
import { spawn } from 'node:child_process'
import { LabError } from '../errors.js'
import { createLogger } from '../log.js'

const log = createLogger('natcheck:lab')

/** Options of {@link run}. */
export interface RunOptions {
  /** Written to the child's stdin, which is then closed. */
  input?: string
  /** Kill the child (SIGKILL) after this many milliseconds. Default 10 000. */
  timeoutMs?: number
  /** Environment; default the current one. */
  env?: NodeJS.ProcessEnv
}

/** Outcome of {@link run}: a non-zero exit is a result, not an error. */
export interface RunResult {
  stdout: string
  stderr: string
  /** Exit code, or `null` when the child was killed by a signal. */
  code: number | null
  signal: NodeJS.Signals | null
  /** Whether the timeout killed the child. */
  timedOut: boolean
}

/**
 * Run a program and collect its output.
 * @throws LabError when the program cannot be started (e.g. not installed).
 */
export function run (file: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  const timeoutMs = opts.timeoutMs ?? 10_000
  return new Promise((resolve, reject) => {
    log.trace('run %s %o', file, args)
    const child = spawn(file, args, { stdio: ['pipe', 'pipe', 'pipe'], env: opts.env ?? process.env })
    const stdout: Buffer[] = []
    const stderr: Buffer[] = []
    let timedOut = false
    const timer = setTimeout(() => { timedOut = true; child.kill('SIGKILL') }, timeoutMs)
    timer.unref()
    child.stdout.on('data', (b: Buffer) => stdout.push(b))
    child.stderr.on('data', (b: Buffer) => stderr.push(b))
    child.stdin.on('error', () => { /* the child may exit before reading its input; its exit code tells */ })
    child.on('error', (err) => {
      clearTimeout(timer)
      reject(new LabError(`cannot run ${file}: ${err.message}`, { cause: err }))
    })
    child.on('close', (code, signal) => {
      clearTimeout(timer)
      resolve({ stdout: Buffer.concat(stdout).toString(), stderr: Buffer.concat(stderr).toString(), code, signal, timedOut })
    })
    child.stdin.end(opts.input ?? '')
  })
}

/**
 * Run a program that must succeed; return its stdout.
 * @throws LabError with the command and its stderr when it fails or times out.
 */
export async function runOk (file: string, args: readonly string[], opts: RunOptions = {}): Promise<string> {
  const r = await run(file, args, opts)
  if (r.code !== 0) {
    const why = r.timedOut ? `timed out after ${opts.timeoutMs ?? 10_000} ms` : `exited with ${r.code ?? r.signal}`
    throw new LabError(`${file} ${args.join(' ')} ${why}: ${r.stderr.trim() || r.stdout.trim()}`)
  }
  return r.stdout
}

/** argv prefix that runs a command inside a namespace: `ip netns exec NS …`. */
export function netnsExecArgv (ns: string, argv: readonly string[]): string[] {
  return ['netns', 'exec', ns, ...argv]
}

/** Names of all network namespaces (`ip netns list`). */
export async function listNetns (): Promise<string[]> {
  const out = await runOk('ip', ['netns', 'list'])
  return out.split('\n').map((l) => l.trim().split(/\s+/)[0]).filter((n): n is string => n !== undefined && n !== '')
}

/** PIDs of the processes inside a namespace (`ip netns pids NS`); empty if the namespace is gone. */
export async function netnsPids (ns: string): Promise<number[]> {
  const r = await run('ip', ['netns', 'pids', ns])
  if (r.code !== 0) return []
  return r.stdout.split('\n').map((s) => Number.parseInt(s, 10)).filter((n) => Number.isInteger(n) && n > 1)
}

/** Run `ip -batch -` (optionally `ip -n NS -batch -`) with the given lines. */
export async function ipBatch (lines: string, ns?: string): Promise<void> {
  const args = ns === undefined ? ['-batch', '-'] : ['-n', ns, '-batch', '-']
  await runOk('ip', args, { input: lines })
}

/** Set sysctls (`key=value`) inside a namespace. */
export async function netnsSysctl (ns: string, settings: readonly string[]): Promise<void> {
  if (settings.length === 0) return
  await runOk('ip', netnsExecArgv(ns, ['sysctl', '-q', '-w', ...settings]))
}

/** Load an nftables ruleset inside a namespace (`nft -f -`). */
export async function netnsNft (ns: string, ruleset: string): Promise<void> {
  await runOk('ip', netnsExecArgv(ns, ['nft', '-f', '-']), { input: ruleset })
}
