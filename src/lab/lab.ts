/**
 * The NAT lab: real Linux kernel NATs in network namespaces (Linux, root, iproute2 and nftables).
 *
 * ```ts
 * const lab = await Lab.up({ natA: 'port-restricted-cone', natB: 'symmetric' })
 * try {
 *   const { stdout } = await lab.exec('a', ['turnutils_natdiscovery', '-m', lab.info.server.primaryIp])
 * } finally {
 *   await lab.down()
 * }
 * ```
 */
import { spawn as spawnChild } from 'node:child_process'
import type { ChildProcess, SpawnOptions } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { rm } from 'node:fs/promises'
import { performance } from 'node:perf_hooks'
import { InvalidArgumentError, LabError, NatError } from '../errors.js'
import { createLogger } from '../log.js'
import { natRuleset } from './nat-rules.js'
import { ipBatch, listNetns, netnsExecArgv, netnsNft, netnsPids, netnsSysctl, run, runOk } from './netns.js'
import { miniupnpdStunRules, miniupnpdTables } from './miniupnpd.js'
import { LAB_STUN_ALT_PORT, LAB_STUN_PORT, startLabServices, startMiniupnpd, stopLabServices } from './services.js'
import type { LabServiceProcess, LabServices } from './services.js'
import { listLabStates, readLabState, removeLabState, writeLabState } from './state.js'
import { conntrackSysctls, nodeBatch, nodeSysctls, planLab, resolveLabOptions, rootBatch, validatePrefix } from './topology.js'
import { LAB_NODES } from './types.js'
import type { LabInfo, LabNode, LabOptions } from './types.js'

const log = createLogger('natcheck:lab')

/** Options of {@link Lab.exec}. */
export interface LabExecOptions {
  /** Kill the command (SIGKILL) after this many milliseconds. Default 30 000. */
  timeoutMs?: number
  /** Written to the command's stdin. */
  input?: string
  /** Environment; default the current one. */
  env?: NodeJS.ProcessEnv
}

/** Outcome of {@link Lab.exec}; a non-zero exit is a result, not an error. */
export interface LabExecResult {
  stdout: string
  stderr: string
  /** Exit code, or `null` when killed by a signal. */
  code: number | null
  signal: NodeJS.Signals | null
  timedOut: boolean
}

/** A lab found by {@link listLabs}. */
export interface LabStatus {
  readonly info: LabInfo
  /** The servers `lab up` started, if any. */
  readonly services: LabServices | undefined
  readonly createdAt: string
  /** Namespaces of the lab that exist right now. */
  readonly namespacesPresent: string[]
  /** Whether every namespace exists. */
  readonly complete: boolean
}

function requireLabHost (): void {
  if (process.platform !== 'linux') throw new LabError('the NAT lab needs Linux (network namespaces, nftables)')
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) {
    throw new LabError('the NAT lab needs root (network namespaces, nftables); run as root or in a privileged container')
  }
}

function checkNode (node: string): LabNode {
  if (!(LAB_NODES as readonly string[]).includes(node)) {
    throw new InvalidArgumentError(`node must be one of ${LAB_NODES.join(', ')}; got ${JSON.stringify(node)}`)
  }
  return node as LabNode
}

function checkArgv (argv: readonly string[]): void {
  if (!Array.isArray(argv) || argv.length === 0 || !argv.every((a) => typeof a === 'string')) {
    throw new InvalidArgumentError('argv must be a non-empty array of strings, e.g. [\'ip\', \'addr\']')
  }
}

/** A running lab. Create with {@link Lab.up} (or {@link Lab.attach}); end with {@link Lab.down}. */
export class Lab {
  /** Names and addresses of everything in the lab. */
  readonly info: LabInfo
  /** Milliseconds `up` took (0 for an attached lab). */
  readonly upMs: number
  /** The natkit servers running in the server namespace, when the lab was built with `servers: true`. */
  readonly services: LabServices | undefined
  /** miniupnpd processes on site routers (`upnp` option). */
  readonly upnp: LabServiceProcess[]
  readonly #children = new Set<ChildProcess>()
  #down: Promise<void> | undefined

  private constructor (info: LabInfo, upMs: number, services?: LabServices, upnp?: LabServiceProcess[]) {
    this.info = info
    this.upMs = upMs
    this.services = services
    this.upnp = upnp ?? []
  }

  /**
   * Build a lab: namespaces, links, addresses, routes, sysctls and one nftables ruleset per site router.
   * Idempotent: a previous lab with the same prefix is torn down first.
   * @throws InvalidArgumentError for bad options; LabError when not root or a command fails (whatever
   *   was built is removed again).
   */
  static async up (options: LabOptions): Promise<Lab> {
    const o = resolveLabOptions(options, () => randomBytes(2).toString('hex'))
    requireLabHost()
    const t0 = performance.now()
    await labDown(o.prefix)
    const info = planLab(o)
    let services: LabServices | undefined
    let upnp: LabServiceProcess[] | undefined
    try {
      await ipBatch(rootBatch(info))
      await Promise.all(LAB_NODES.map(async (node) => {
        const ns = info.namespaces[node]
        await ipBatch(nodeBatch(info, node), ns)
        await netnsSysctl(ns, nodeSysctls(node))
        if (node === 'router-a' || node === 'router-b') {
          const site = node === 'router-a' ? info.a : info.b
          const rules = natRuleset({ nat: site.nat, wanIp: site.wanIp, hairpin: site.hairpin, udpTimeoutS: info.udpTimeoutS }) + (site.upnp ? miniupnpdTables() : '')
          if (rules !== '') {
            await netnsNft(ns, rules)
            await netnsSysctl(ns, conntrackSysctls(info.udpTimeoutS))
          }
        }
      }))
      await writeLabState(info)
      if (o.servers) {
        services = await startLabServices(info)
        await writeLabState(info, services)
      }
      if (o.upnp.length > 0) {
        if (o.servers) {
          for (const site of o.upnp) await netnsNft(info[site].routerNs, miniupnpdStunRules(info.server, [LAB_STUN_PORT, LAB_STUN_ALT_PORT]))
        }
        upnp = await startMiniupnpd(info, o.upnp, { stunSelfCheck: o.servers })
        await writeLabState(info, services, upnp)
      }
    } catch (err) {
      await labDown(o.prefix).catch((e: unknown) => { log.error('cleanup after failed up: %O', e) })
      if (err instanceof NatError) throw err
      throw new LabError(`cannot build lab ${o.prefix}: ${(err as Error).message}`, { cause: err })
    }
    const upMs = Math.round(performance.now() - t0)
    log('lab %s up in %d ms: A=%s B=%s hairpin=%s udp-timeout=%ds', o.prefix, upMs, o.natA, o.natB, o.hairpin, o.udpTimeoutS)
    return new Lab(info, upMs, services, upnp)
  }

  /**
   * A handle on a lab built earlier (maybe by another process), from its state file.
   * @throws InvalidArgumentError when no lab with that prefix is recorded; LabError when its namespaces are gone.
   */
  static async attach (prefix: string): Promise<Lab> {
    validatePrefix(prefix)
    const state = await readLabState(prefix)
    if (state === undefined) throw new InvalidArgumentError(`no lab with prefix ${prefix} is recorded; run lab up first`)
    const present = new Set(await listNetns())
    const missing = LAB_NODES.map((n) => state.info.namespaces[n]).filter((ns) => !present.has(ns))
    if (missing.length > 0) throw new LabError(`lab ${prefix} is incomplete (missing ${missing.join(', ')}); run lab down and lab up again`)
    return new Lab(state.info, 0, state.services, state.upnp)
  }

  /** Namespace name of a node. */
  ns (node: LabNode): string {
    return this.info.namespaces[checkNode(node)]
  }

  /**
   * Run a command inside a node's namespace and collect its output.
   * @throws InvalidArgumentError for a bad node or argv; LabError when `ip` cannot be started.
   */
  async exec (node: LabNode, argv: readonly string[], opts: LabExecOptions = {}): Promise<LabExecResult> {
    checkArgv(argv)
    const ns = this.ns(node)
    if (this.#down !== undefined) throw new LabError(`lab ${this.info.prefix} is down`)
    return await run('ip', netnsExecArgv(ns, argv), { timeoutMs: opts.timeoutMs ?? 30_000, input: opts.input, env: opts.env })
  }

  /**
   * Start a long-running command inside a node's namespace. `ip netns exec` execs the command, so the
   * child's PID is the command's own. The lab kills the children it started on {@link Lab.down}.
   * @throws InvalidArgumentError for a bad node or argv.
   */
  spawn (node: LabNode, argv: readonly string[], opts: SpawnOptions = {}): ChildProcess {
    checkArgv(argv)
    const ns = this.ns(node)
    if (this.#down !== undefined) throw new LabError(`lab ${this.info.prefix} is down`)
    const child = spawnChild('ip', netnsExecArgv(ns, argv), opts)
    this.#children.add(child)
    child.once('exit', () => this.#children.delete(child))
    child.once('error', () => this.#children.delete(child))
    return child
  }

  /** Kill the processes this lab started and delete its namespaces. Idempotent. */
  async down (): Promise<void> {
    this.#down ??= (async () => {
      await Promise.all([...this.#children].map(async (child) => await stopChild(child)))
      await labDown(this.info.prefix)
    })()
    return await this.#down
  }

  /** Same as {@link Lab.down}. */
  async [Symbol.asyncDispose] (): Promise<void> {
    await this.down()
  }
}

/** SIGTERM, then SIGKILL after 1 s; resolves when the child has exited (bounded at 3 s). */
async function stopChild (child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return
  await new Promise<void>((resolve) => {
    const kill = setTimeout(() => { child.kill('SIGKILL') }, 1000)
    const giveUp = setTimeout(done, 3000)
    function done (): void { clearTimeout(kill); clearTimeout(giveUp); resolve() }
    child.once('exit', done)
    child.kill('SIGTERM')
  })
}

/**
 * Delete a lab: kill every process left in its namespaces (by PID), delete the namespaces named
 * `prefix + node` for each lab node, and forget its state file. Works after a crash (it scans
 * `ip netns list`). Without a prefix, downs every lab recorded in the state directory.
 */
export async function labDown (prefix?: string): Promise<void> {
  if (prefix === undefined) {
    for (const state of await listLabStates()) await labDown(state.info.prefix)
    return
  }
  validatePrefix(prefix)
  // The servers `lab up` started, by their recorded PIDs (gracefully first); then whatever else runs in the namespaces.
  const recorded = await readLabState(prefix)
  const processes = [...recorded?.services?.processes ?? [], ...recorded?.upnp ?? []]
  if (processes.length > 0) {
    await stopLabServices(processes)
    await Promise.all(processes.flatMap((p) => [p.logFile, ...(p.files ?? [])]).map(async (f) => { await rm(f, { force: true }) }))
  }
  const names = (await listNetns()).filter((n) => n.startsWith(prefix) && (LAB_NODES as readonly string[]).includes(n.slice(prefix.length)))
  for (const ns of names) {
    for (const pid of await netnsPids(ns)) {
      try { process.kill(pid, 'SIGKILL') } catch { /* already gone */ }
    }
  }
  await Promise.all(names.map(async (ns) => {
    const r = await run('ip', ['netns', 'del', ns])
    if (r.code !== 0 && (await listNetns()).includes(ns)) throw new LabError(`cannot delete namespace ${ns}: ${r.stderr.trim()}`)
  }))
  await removeLabState(prefix)
  if (names.length > 0) log('lab %s down (%d namespaces)', prefix, names.length)
}

/** Every recorded lab with the namespaces of it that exist. */
export async function listLabs (): Promise<LabStatus[]> {
  const present = new Set(await listNetns())
  return (await listLabStates()).map((s) => {
    const all = LAB_NODES.map((n) => s.info.namespaces[n])
    const namespacesPresent = all.filter((ns) => present.has(ns))
    return { info: s.info, services: s.services, createdAt: s.createdAt, namespacesPresent, complete: namespacesPresent.length === all.length }
  })
}

/** Whether this host can run a lab: Linux, root, and `ip` and `nft` work. Never throws. */
export async function labSupported (): Promise<{ ok: boolean; reason?: string }> {
  try {
    requireLabHost()
    await runOk('ip', ['-V'])
    await runOk('nft', ['--version'])
    return { ok: true }
  } catch (err) {
    return { ok: false, reason: (err as Error).message }
  }
}
