import { fileURLToPath } from 'node:url'
import { run, start, type RunResult, type Started } from './process.js'

/** The built CLI entry point. */
export const CLI = fileURLToPath(new URL('../../src/cli.js', import.meta.url))

/** Run `natcheck ARGS` to completion. */
export async function natcheck (args: string[], options: { timeoutMs?: number } = {}): Promise<RunResult> {
  return await run(process.execPath, [CLI, ...args], { timeoutMs: options.timeoutMs ?? 20_000, env: { ...process.env, NO_COLOR: '1' } })
}

/** Start a long-running `natcheck ARGS` (a server) and wait for `ready` on its output. */
export async function natcheckStart (args: string[], ready: RegExp): Promise<Started> {
  return await start(process.execPath, [CLI, ...args], { ready, timeoutMs: 10_000, env: { ...process.env, NO_COLOR: '1' } })
}
