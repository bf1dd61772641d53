import type { ChildProcess } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

/** The built natcheck CLI. */
export const CLI = fileURLToPath(new URL('../src/cli.js', import.meta.url))

/** CPU seconds (user + system) a process has used, from /proc/PID/stat. */
export function cpuSeconds (pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  // After the command name: field 14 (utime) and 15 (stime) of proc(5) are at offsets 11 and 12 here.
  return (Number(fields[11]) + Number(fields[12])) / 100
}

/** Stop a child by PID: SIGTERM, then SIGKILL after 2 s. */
export async function stopChild (child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return
  const exited = new Promise<void>(resolve => child.once('exit', () => { resolve() }))
  child.kill('SIGTERM')
  const t = setTimeout(() => { child.kill('SIGKILL') }, 2000)
  await exited
  clearTimeout(t)
}

/** The median of a list of numbers. */
export function median (values: number[]): number {
  const s = [...values].sort((a, b) => a - b)
  const m = Math.floor(s.length / 2)
  return s.length % 2 === 1 ? s[m] : (s[m - 1] + s[m]) / 2
}

/** Whether this process may build the NAT lab (Linux, root). */
export function canRunLab (): string | undefined {
  if (process.platform !== 'linux') return 'the NAT lab needs Linux'
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) return 'the NAT lab needs root'
  return undefined
}
