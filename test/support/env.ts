import { spawnSync } from 'node:child_process'

/** True when running under CI (`CI=true`): there, a missing prerequisite is a failure, never a skip. */
export const IN_CI = process.env.CI === 'true' || process.env.CI === '1'

/**
 * Skip the current test (or hook's suite) with a reason when a prerequisite is missing — except under CI,
 * where it throws so the test fails: no lab or interop test may silently skip in CI.
 */
export function requireOrSkip (ctx: Mocha.Context, ok: boolean, reason: string): void {
  if (ok) return
  if (IN_CI) throw new Error(`prerequisite missing in CI: ${reason}`)
  ctx.skip()
}

/** Whether an executable is on PATH. */
export function hasCommand (name: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${name}`], { stdio: 'ignore' }).status === 0
}

/** Whether this process runs as root (needed for network namespaces). */
export function isRoot (): boolean {
  return typeof process.getuid === 'function' && process.getuid() === 0
}
