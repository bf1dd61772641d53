/**
 * Helpers of the real-kernel lab tests: prerequisites, coturn's turnserver in RFC 5780 mode, the
 * udp-probe script, a parser for `turnutils_natdiscovery` output, and natkit peers in both sites.
 */
import { expect } from 'chai'
import type { ChildProcess } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import type { Lab, LabNode } from '../../../src/lab/index.js'
import { WORKER_PATH, type PeerTask, type PeerWorkerResult } from '../../../src/lab/worker.js'
import { hasCommand, isRoot, requireOrSkip } from '../../support/env.js'

/** Path of the compiled probe script (run with `node` inside a namespace). */
export const PROBE = fileURLToPath(new URL('./udp-probe.js', import.meta.url))

/** RFC 5780 ports of the lab's STUN server. */
export const STUN_PORT = 3478
export const STUN_ALT_PORT = 3479

/** Skip (or fail under CI) unless this host can run lab tests that use coturn. */
export function requireLab (ctx: Mocha.Context, coturn = true): void {
  requireOrSkip(ctx, process.platform === 'linux', 'the NAT lab needs Linux')
  requireOrSkip(ctx, isRoot(), 'the NAT lab needs root')
  requireOrSkip(ctx, hasCommand('ip') && hasCommand('nft'), 'the NAT lab needs iproute2 (ip) and nftables (nft)')
  if (coturn) requireOrSkip(ctx, hasCommand('turnserver') && hasCommand('turnutils_natdiscovery'), 'lab interop tests need coturn (turnserver, turnutils_natdiscovery)')
}

/** A process running in the lab, and its recent output for failure messages. */
export interface LabProcess {
  readonly child: ChildProcess
  output (): string
}

function capture (child: ChildProcess): LabProcess {
  let out = ''
  const keep = (d: Buffer): void => { out = (out + d.toString()).slice(-8000) }
  child.stdout?.on('data', keep)
  child.stderr?.on('data', keep)
  return { child, output: () => out }
}

async function waitFor (cond: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs
  for (let i = 0; i < 100; i++) {
    if (await cond()) return
    if (Date.now() > deadline) break
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  throw new Error(`timed out waiting for ${what}`)
}

/**
 * Start coturn's turnserver as a STUN-only RFC 5780 server on both server addresses (ports 3478 and
 * 3479), without reading /etc/turnserver.conf; resolves once it answers a Binding request.
 */
export async function startTurnserver (lab: Lab): Promise<LabProcess> {
  const { primaryIp, secondaryIp } = lab.info.server
  const p = capture(lab.spawn('server', [
    'turnserver', '-c', '/dev/null', '--stun-only', '--no-auth',
    '--listening-ip', primaryIp, '--listening-ip', secondaryIp,
    '--listening-port', String(STUN_PORT), '--alt-listening-port', String(STUN_ALT_PORT),
    '--no-tls', '--no-dtls', '--no-cli', '--simple-log', '--log-file', 'stdout', '--no-software-attribute'
  ], { stdio: ['ignore', 'pipe', 'pipe'] }))
  try {
    await waitFor(async () => {
      if (p.child.exitCode !== null) throw new Error(`turnserver exited with ${p.child.exitCode}: ${p.output()}`)
      const r = await lab.exec('server', ['node', PROBE, 'stun-ping', JSON.stringify({ to: `${secondaryIp}:${STUN_ALT_PORT}`, timeoutMs: 300 })], { timeoutMs: 5000 })
      return r.code === 0
    }, 8000, 'turnserver to answer')
  } catch (err) {
    p.child.kill('SIGKILL')
    throw err
  }
  return p
}

/** Start the probe's echo server in the server namespace on the given endpoints. */
export async function startEchoServer (lab: Lab, udp: string[], tcp: string[] = []): Promise<LabProcess> {
  const p = capture(lab.spawn('server', ['node', PROBE, 'echo-server', JSON.stringify({ udp, tcp })], { stdio: ['ignore', 'pipe', 'pipe'] }))
  await waitFor(async () => {
    if (p.child.exitCode !== null) throw new Error(`echo server exited: ${p.output()}`)
    return p.output().includes('ready')
  }, 5000, 'the echo server')
  return p
}

/** Result of a probe `client` run. */
export interface ProbeResult {
  localPorts: number[]
  replies: Array<{ socket: number, from: string, body: string }>
}

/** Run a probe client in a node. */
export async function probeClient (lab: Lab, node: LabNode, spec: { sockets: number, bind?: number[], steps: Array<{ socket: number, to: string, body?: string, delayMs?: number }>, waitMs: number }): Promise<ProbeResult> {
  const r = await lab.exec(node, ['node', PROBE, 'client', JSON.stringify(spec)], { timeoutMs: 15_000 })
  if (r.code !== 0) throw new Error(`probe client failed (${r.code}): ${r.stderr}`)
  return JSON.parse(r.stdout) as ProbeResult
}

/** The `seen` field of an echo reply: the source address the server saw. */
export function seen (body: string): string {
  return (JSON.parse(body) as { seen: string }).seen
}

/** Behaviour names as RFC 4787 spells them. */
export type Behaviour = 'endpoint-independent' | 'address-dependent' | 'address-and-port-dependent'

/** What `turnutils_natdiscovery -m -f -H` concluded. */
export interface NatDiscoveryVerdict {
  mapping?: Behaviour
  filtering?: Behaviour
  /** `true` when the hairpinned request came back, `false` when it timed out, absent if not tested. */
  hairpin?: boolean
  /** Whether any response reported a reflexive address (false when UDP is blocked). */
  anyResponse: boolean
}

function behaviour (text: string): Behaviour | undefined {
  if (/Address and Port Dependent/i.test(text)) return 'address-and-port-dependent'
  if (/Address Dependent/i.test(text)) return 'address-dependent'
  if (/Endpoint Independent/i.test(text)) return 'endpoint-independent'
  return undefined
}

/** Parse coturn 4.6 `turnutils_natdiscovery` output, section by section. */
export function parseNatDiscovery (stdout: string): NatDiscoveryVerdict {
  const sections = new Map<string, string>()
  const re = /-= (\w+) Behavior Discovery =-/g
  const heads = [...stdout.matchAll(re)]
  heads.forEach((m, i) => {
    const end = heads[i + 1]?.index ?? stdout.length
    sections.set(m[1]!.toLowerCase(), stdout.slice(m.index, end))
  })
  const verdict: NatDiscoveryVerdict = { anyResponse: /reflexive addr/i.test(stdout) }
  const mapping = sections.get('mapping')
  if (mapping !== undefined) {
    const line = mapping.match(/^.*NAT with .* Mapping!.*$/m)?.[0]
    if (line !== undefined) verdict.mapping = behaviour(line)
  }
  const filtering = sections.get('filtering')
  if (filtering !== undefined) {
    const line = filtering.match(/^.*NAT with .* Filtering!.*$/m)?.[0]
    if (line !== undefined) verdict.filtering = behaviour(line)
  }
  const hairpin = sections.get('hairpinning')
  if (hairpin !== undefined) verdict.hairpin = /successful hairpinning/i.test(hairpin)
  return verdict
}

/** What each side adds to the common peer task (technique options such as portPrediction or portMapping). */
export type PeerExtras = Partial<Omit<PeerTask, 'task' | 'rendezvous' | 'id' | 'peer' | 'secret'>>

/**
 * Run natkit peers in sites A and B at once (src/lab/worker.ts), meeting through the lab's rendezvous with its first
 * TURN relay; each sends `count` datagrams. `tag` makes the peer ids unique per run.
 */
export async function runLabPeers (lab: Lab, tag: string, count: number, extras: { a?: PeerExtras, b?: PeerExtras } = {}): Promise<[PeerWorkerResult, PeerWorkerResult]> {
  const s = lab.services
  if (s === undefined) throw new Error('the lab has no servers')
  const task = (me: string, peer: string, extra: PeerExtras | undefined): PeerTask => ({
    task: 'peer', rendezvous: s.rendezvous, id: me, peer, secret: s.secret, turn: [s.turn[0]], count, timeoutMs: 20_000, settleMs: 4000, ...extra
  })
  const one = async (site: 'a' | 'b', t: PeerTask): Promise<PeerWorkerResult> => {
    const r = await lab.exec(site, [process.execPath, WORKER_PATH, JSON.stringify(t)], { timeoutMs: 60_000 })
    try { return JSON.parse(r.stdout) as PeerWorkerResult } catch { throw new Error(`peer ${site} printed no result: ${r.stderr.slice(-600)}`) }
  }
  return await Promise.all([one('a', task(`${tag}-a`, `${tag}-b`, extras.a)), one('b', task(`${tag}-b`, `${tag}-a`, extras.b))])
}

/** The field of a PeerWorkerResult that reports a technique (present only when the technique was asked for). */
export type TechniqueReport = 'portMapped' | 'prediction' | 'spray' | 'tcpPunch'

/**
 * The pair relayed, as it must where no technique opens it: no error on either side, both paths relayed, every
 * datagram delivered both ways (`count` each), and, with `absent`, that technique's report on neither side (it was
 * not asked for).
 */
export function expectRelayed ([a, b]: [PeerWorkerResult, PeerWorkerResult], count: number, absent?: TechniqueReport): void {
  const where = JSON.stringify({ a, b })
  expect(a.error, where).to.equal(null)
  expect(b.error, where).to.equal(null)
  expect(a.path?.type, where).to.equal('relay')
  expect(b.path?.type, where).to.equal('relay')
  if (absent !== undefined) {
    expect(a[absent], where).to.equal(undefined)
    expect(b[absent], where).to.equal(undefined)
  }
  expect(a.delivered, where).to.equal(count)
  expect(b.delivered, where).to.equal(count)
}
