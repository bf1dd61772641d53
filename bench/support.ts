import { spawnSync, type ChildProcess } from 'node:child_process'
import { createSocket } from 'node:dgram'
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

/** The built natcheck CLI. */
export const CLI = fileURLToPath(new URL('../src/cli.js', import.meta.url))

/** Clock ticks per second, for /proc/PID/stat times. */
const CLK_TCK = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100

/** CPU seconds (user + system) and resident memory of a process, from /proc/PID/stat (proc(5)). */
export function procStat (pid: number): { cpu: number, rssBytes: number } {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  // After the command name: utime and stime (fields 14, 15) are at offsets 11 and 12, rss in pages (24) at 21.
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return { cpu: (Number(f[11]) + Number(f[12])) / CLK_TCK, rssBytes: Number(f[21]) * 4096 }
}

/** CPU seconds (user + system) a process has used. */
export function cpuSeconds (pid: number): number {
  return procStat(pid).cpu
}

/** Every child a benchmark starts, so that all of them are killed by PID on exit or interruption. */
const children = new Set<ChildProcess>()

/** Remember a child for killAll(). */
export function track (c: ChildProcess): ChildProcess {
  children.add(c)
  c.once('exit', () => { children.delete(c) })
  c.on('error', () => {})
  return c
}

/** SIGKILL every tracked child still running. */
export function killAll (): void {
  for (const c of children) {
    if (c.exitCode === null && c.signalCode === null && c.pid !== undefined) {
      try { process.kill(c.pid, 'SIGKILL') } catch { /* already gone */ }
    }
  }
  children.clear()
}

/** Stop a child by PID: SIGTERM, then SIGKILL after `graceMs`. */
export async function stopChild (child: ChildProcess, graceMs = 2000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return
  const exited = new Promise<void>(resolve => child.once('exit', () => { resolve() }))
  child.kill('SIGTERM')
  const t = setTimeout(() => { child.kill('SIGKILL') }, graceMs)
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

/** A UDP port free on 127.0.0.1 right now (bound and released). */
export async function freeUdpPort (): Promise<number> {
  const s = createSocket('udp4')
  await new Promise<void>(resolve => s.bind(0, '127.0.0.1', () => { resolve() }))
  const port = s.address().port
  await new Promise<void>(resolve => s.close(() => { resolve() }))
  return port
}
