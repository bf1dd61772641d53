import { spawn, type ChildProcess } from 'node:child_process'

/** Result of a finished process. */
export interface RunResult {
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
  readonly stdout: string
  readonly stderr: string
  readonly ms: number
}

/** Run a command to completion, killing it (by PID) after `timeoutMs`. Never rejects for a non-zero exit. */
export async function run (cmd: string, args: string[], options: { timeoutMs?: number, env?: NodeJS.ProcessEnv, input?: string } = {}): Promise<RunResult> {
  const started = Date.now()
  const child = spawn(cmd, args, { env: options.env ?? process.env, stdio: ['pipe', 'pipe', 'pipe'] })
  let stdout = ''; let stderr = ''
  child.stdout.on('data', (d: Buffer) => { stdout += d.toString() })
  child.stderr.on('data', (d: Buffer) => { stderr += d.toString() })
  if (options.input !== undefined) child.stdin.end(options.input); else child.stdin.end()
  const timer = setTimeout(() => { child.kill('SIGKILL') }, options.timeoutMs ?? 30_000)
  return await new Promise<RunResult>((resolve, reject) => {
    child.on('error', (err) => { clearTimeout(timer); reject(err) })
    child.on('close', (code, signal) => {
      clearTimeout(timer)
      resolve({ code, signal, stdout, stderr, ms: Date.now() - started })
    })
  })
}

/** A long-running process started by a test; `stop()` kills it by PID and waits for it to exit. */
export interface Started {
  readonly child: ChildProcess
  output (): string
  stop (): Promise<void>
}

/**
 * Start a long-running command and wait until its combined output matches `ready` (or `readyMs` passes when no
 * pattern is given). Rejects, after killing it, if it exits or does not become ready within `timeoutMs`.
 */
export async function start (cmd: string, args: string[], options: { ready?: RegExp, readyMs?: number, timeoutMs?: number, env?: NodeJS.ProcessEnv } = {}): Promise<Started> {
  const child = spawn(cmd, args, { env: options.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  const stop = async (): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) return
    const exited = new Promise<void>(resolve => child.once('exit', () => { resolve() }))
    child.kill('SIGTERM')
    const t = setTimeout(() => { child.kill('SIGKILL') }, 3000)
    await exited
    clearTimeout(t)
  }
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => { void stop(); reject(new Error(`${cmd} not ready after ${options.timeoutMs ?? 10_000} ms; output:\n${out}`)) }, options.timeoutMs ?? 10_000)
    const check = (d: Buffer): void => {
      out += d.toString()
      if (options.ready?.test(out) === true) { clearTimeout(timer); resolve() }
    }
    child.stdout.on('data', check)
    child.stderr.on('data', check)
    child.once('error', (err) => { clearTimeout(timer); reject(err) })
    child.once('exit', (code) => { clearTimeout(timer); reject(new Error(`${cmd} exited (${code}) before it was ready; output:\n${out}`)) })
    if (options.ready === undefined) setTimeout(() => { clearTimeout(timer); resolve() }, options.readyMs ?? 300)
  })
  child.removeAllListeners('exit')
  return { child, output: () => out, stop }
}

/** Wait (bounded) until the started program's output matches; whether it did. */
export async function waitForOutput (s: Started, pattern: RegExp, timeoutMs: number): Promise<boolean> {
  const end = Date.now() + timeoutMs
  while (Date.now() < end) {
    if (pattern.test(s.output())) return true
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  return pattern.test(s.output())
}

/** Wait (bounded) until the started program exits; its exit code, or null if it is still running. */
export async function exitOf (s: Started, timeoutMs: number): Promise<number | null> {
  const c = s.child
  if (c.exitCode !== null) return c.exitCode
  return await new Promise<number | null>((resolve) => {
    const t = setTimeout(() => { resolve(null) }, timeoutMs)
    c.once('exit', (code) => { clearTimeout(t); resolve(code) })
  })
}
