/**
 * natkit's own servers in the lab's server namespace, so a lab is usable the moment it is up: an RFC 5780
 * STUN server on both public addresses, a TURN relay and the rendezvous (signalling) server. They run as
 * detached processes (they outlive the `natcheck lab up` that started them); their PIDs are recorded in the
 * lab's state file, and {@link stopLabServices} (called by `lab down`) stops them by PID.
 *
 * Ports, chosen so a `udp-blocked` site (only TCP 80/443 out) still reaches the relay and the rendezvous:
 * - STUN (RFC 5780): UDP and TCP on 203.0.113.10 and .11, ports 3478 and 3479 (four sockets per transport).
 * - TURN: UDP and TCP on 203.0.113.10:443 (RFC 8656; TURN over TCP on 443 for firewalled sites).
 * - rendezvous: ws://203.0.113.10:80/, authenticated with tokens from the lab's shared secret.
 */
import { spawn } from 'node:child_process'
import { openSync, closeSync, readFileSync, writeFileSync } from 'node:fs'
import { mkdir, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { LabError } from '../errors.js'
import { createLogger } from '../log.js'
import { netnsExecArgv } from './netns.js'
import { labStateDir } from './state.js'
import { miniupnpdConfig } from './miniupnpd.js'
import type { LabInfo, LabSite } from './types.js'

const log = createLogger('natcheck:lab:services')

/** The built natcheck CLI (dist/src/cli.js), run inside the server namespace. */
const CLI = fileURLToPath(new URL('../cli.js', import.meta.url))

/** The lab's TURN/rendezvous shared secret. A lab is a test bed on one machine, so it is a fixed, public value. */
export const LAB_SECRET = 'natkit-lab'
/** TURN realm of the lab relay. */
export const LAB_REALM = 'natkit-lab'
/** STUN (RFC 5780) ports on both server addresses. */
export const LAB_STUN_PORT = 3478
export const LAB_STUN_ALT_PORT = 3479
/** TURN over UDP and TCP on the primary address: 443, what a firewall that lets only web traffic out passes. */
export const LAB_TURN_PORT = 443
/** Rendezvous WebSocket port on the primary address. */
export const LAB_RENDEZVOUS_PORT = 80

/** One server process the lab started. */
export interface LabServiceProcess {
  readonly name: 'stun' | 'relay' | 'miniupnpd-a' | 'miniupnpd-b'
  readonly pid: number
  /** Its stdout and stderr. */
  readonly logFile: string
  /** A word of its command line (guards against PID reuse when stopping it). */
  readonly match: string
  /** Other files it owns (config, lease file), removed on down. */
  readonly files?: string[]
}

/** What {@link startLabServices} started, as recorded in the lab's state file. */
export interface LabServices {
  /** The STUN server and relay (and miniupnpd on routers with `upnp`). */
  readonly processes: LabServiceProcess[]
  /** `HOST` for `natcheck --server` (RFC 5780 server on the default port 3478). */
  readonly stun: string
  /** TURN URIs of the relay. */
  readonly turn: string[]
  /** Rendezvous URL. */
  readonly rendezvous: string
  /** Shared secret for `--auth-secret` (TURN REST credentials and rendezvous tokens). */
  readonly secret: string
}

/** The argv of each lab server (run inside the server namespace). */
export function labServiceArgv (info: LabInfo): Record<'stun' | 'relay', string[]> {
  const { primaryIp, secondaryIp } = info.server
  return {
    stun: [process.execPath, CLI, 'server', '--listen', `${primaryIp}:${LAB_STUN_PORT}`, '--alternate', `${secondaryIp}:${LAB_STUN_ALT_PORT}`, '--tcp'],
    relay: [process.execPath, CLI, 'relay', '--listen', `${primaryIp}:${LAB_TURN_PORT}`, '--realm', LAB_REALM, '--auth-secret', LAB_SECRET,
      '--rendezvous', `${primaryIp}:${LAB_RENDEZVOUS_PORT}`,
      // The lab's "internet" is the RFC 5737 documentation ranges, which a relay denies as peers by default.
      '--allow-peer', '192.0.2.0/24', '--allow-peer', '198.51.100.0/24', '--allow-peer', '203.0.113.0/24']
  }
}

/** The line each server prints once it serves. */
const READY: Record<LabServiceProcess['name'], RegExp> = {
  stun: /natcheck server: STUN on UDP/,
  // Both: with relay workers the primary prints the rendezvous line seconds before a worker listens for TURN.
  relay: /^(?=[\s\S]*natcheck relay: rendezvous )(?=[\s\S]*natcheck relay: listening tcp )/,
  'miniupnpd-a': /Listening for NAT-PMP\/PCP traffic/,
  'miniupnpd-b': /Listening for NAT-PMP\/PCP traffic/
}

/** How long the servers get to start (node start-up dominates: about 0.3-1 s each on a busy machine). */
const READY_TIMEOUT_MS = 15_000

/**
 * Start the lab's servers in its server namespace as detached processes and wait until each says it serves.
 * @throws LabError when one exits or does not become ready in time (the ones started are stopped again).
 */
export async function startLabServices (info: LabInfo): Promise<LabServices> {
  const argv = labServiceArgv(info)
  const processes = await startAll(info, [
    { name: 'stun', ns: info.server.ns, argv: argv.stun, match: CLI },
    { name: 'relay', ns: info.server.ns, argv: argv.relay, match: CLI }
  ])
  const ip = info.server.primaryIp
  log('lab %s: servers up (%s)', info.prefix, processes.map((p) => `${p.name} pid ${p.pid}`).join(', '))
  return {
    processes,
    stun: ip,
    turn: [`turn:${ip}:${LAB_TURN_PORT}`, `turn:${ip}:${LAB_TURN_PORT}?transport=tcp`],
    rendezvous: `ws://${ip}:${LAB_RENDEZVOUS_PORT}/`,
    secret: LAB_SECRET
  }
}

/**
 * Start miniupnpd on the router of each given site (its nftables chains must exist: see miniupnpd.ts). With
 * `stunSelfCheck` (the lab's STUN server is up and the routers let its answers in) it checks its address through that
 * server and grants mappings; without, it refuses them.
 * @throws LabError when miniupnpd is not installed, exits, or does not start in time.
 */
export async function startMiniupnpd (info: LabInfo, sites: readonly LabSite[], options: { stunSelfCheck?: boolean } = {}): Promise<LabServiceProcess[]> {
  const dir = labStateDir()
  await mkdir(dir, { recursive: true, mode: 0o755 })
  const specs = sites.map((site) => {
    const s = info[site]
    const name = `miniupnpd-${site}` as const
    const conf = join(dir, `${info.prefix}${name}.conf`)
    const leases = join(dir, `${info.prefix}${name}.leases`)
    const uuid = `6e6b6c61-6200-4000-8000-${Buffer.from(`${info.prefix}${site}`.padEnd(6, '-').slice(-6)).toString('hex')}`
    const stun = options.stunSelfCheck === true ? { host: info.server.primaryIp, port: LAB_STUN_PORT } : undefined
    writeFileSync(conf, miniupnpdConfig(s, { leaseFile: leases, uuid, stun }))
    return { name, ns: s.routerNs, argv: ['miniupnpd', '-f', conf, '-d', '-P', join(dir, `${info.prefix}${name}.pid`)], match: conf, files: [conf, leases, join(dir, `${info.prefix}${name}.pid`)] }
  })
  return await startAll(info, specs)
}

interface Spec { name: LabServiceProcess['name'], ns: string, argv: string[], match: string, files?: string[] }

/** Start detached processes in namespaces and wait until each prints its ready line; stop them all on failure. */
async function startAll (info: LabInfo, specs: Spec[]): Promise<LabServiceProcess[]> {
  const dir = labStateDir()
  await mkdir(dir, { recursive: true, mode: 0o755 })
  const processes: LabServiceProcess[] = []
  try {
    for (const spec of specs) {
      const logFile = join(dir, `${info.prefix}${spec.name}.log`)
      const fd = openSync(logFile, 'w')
      try {
        const child = spawn('ip', netnsExecArgv(spec.ns, spec.argv), { detached: true, stdio: ['ignore', fd, fd] })
        child.on('error', (err) => { log.error('%s: %s', spec.name, err.message) })
        child.unref()
        if (child.pid === undefined) throw new LabError(`cannot start the lab's ${spec.name}`)
        processes.push({ name: spec.name, pid: child.pid, logFile, match: spec.match, files: spec.files })
      } finally {
        closeSync(fd)
      }
    }
    const deadline = Date.now() + READY_TIMEOUT_MS
    for (const p of processes) {
      for (let i = 0; ; i++) {
        const text = readLog(p.logFile)
        if (READY[p.name].test(text)) break
        if (!alive(p.pid)) throw new LabError(`the lab's ${p.name} exited: ${text.trim().slice(-500)}`)
        if (Date.now() > deadline || i > READY_TIMEOUT_MS / 50) throw new LabError(`the lab's ${p.name} did not start within ${READY_TIMEOUT_MS} ms: ${text.trim().slice(-500)}`)
        await new Promise((resolve) => setTimeout(resolve, 50))
      }
    }
  } catch (err) {
    await stopLabServices(processes)
    await Promise.all(processes.flatMap((p) => [p.logFile, ...(p.files ?? [])]).map(async (f) => { await rm(f, { force: true }) }))
    throw err
  }
  return processes
}

function readLog (file: string): string {
  try { return readFileSync(file, 'utf8') } catch { return '' }
}

/** Whether a PID exists (signal 0). */
function alive (pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

/** Whether the process is one of ours: its command line has the recorded word (guards against PID reuse). */
function isOurs (p: LabServiceProcess): boolean {
  try {
    return readFileSync(`/proc/${p.pid}/cmdline`, 'utf8').split('\0').includes(p.match ?? CLI)
  } catch {
    return false
  }
}

/**
 * Stop recorded lab servers by PID: SIGINT (the relay stops at once; SIGTERM would drain it for 30 s), then
 * SIGKILL after 2 s. Resolves when all are gone (bounded at about 3 s). Never throws.
 */
export async function stopLabServices (processes: readonly LabServiceProcess[]): Promise<void> {
  const ours = processes.filter((p) => alive(p.pid) && isOurs(p))
  for (const p of ours) {
    try { process.kill(p.pid, 'SIGINT') } catch { /* already gone */ }
  }
  for (let i = 0; i < 60 && ours.some((p) => alive(p.pid)); i++) {
    if (i === 40) {
      for (const p of ours) {
        try { process.kill(p.pid, 'SIGKILL') } catch { /* already gone */ }
      }
    }
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}
