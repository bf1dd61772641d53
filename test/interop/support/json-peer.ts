import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process'
import { fileURLToPath } from 'node:url'

/** Debian's python (python3-aioice is installed for it), not whatever python3 is first on PATH. */
export const PYTHON = '/usr/bin/python3'
/** The aioice peer script (source tree: it is not compiled). */
export const AIOICE_PEER = fileURLToPath(new URL('../../../../test/interop/aioice-peer.py', import.meta.url))
/** The compiled natkit peer (test/interop/support/natkit-peer.ts). */
export const NATKIT_PEER = fileURLToPath(new URL('./natkit-peer.js', import.meta.url))

/** Whether Debian's python can import aioice. */
export function aioiceAvailable (): boolean {
  return spawnSync(PYTHON, ['-c', 'import aioice'], { stdio: 'ignore', timeout: 10_000 }).status === 0
}

/** A brief candidate as natkit-peer prints it. */
export interface BriefCandidate { type: string, address: string, port: number }
/** A path as natkit-peer prints it. */
export interface BriefPath { type: 'direct' | 'relay', local: BriefCandidate, remote: BriefCandidate }

/** Every document either peer prints (see aioice-peer.py and natkit-peer.ts). */
export type PeerDoc = { type: 'local', gen?: number, ufrag: string, pwd: string, candidates: string[] } |
{ type: 'connected', gen?: number, local?: [string, number], remote?: [string, number], path?: BriefPath, components?: Record<string, [[string, number], [string, number]]> } |
{ type: 'path', path: BriefPath } |
{ type: 'mdns', resolutions: Array<{ name: string, port: number, address: string | null, ms: number }> } |
{ type: 'failed', gen?: number, error: string } | { type: 'recv', gen?: number, hex: string, component?: number } |
{ type: 'closed', attempts?: unknown[], remote?: BriefCandidate[] }

/**
 * A peer process speaking JSON lines both ways (test/interop/aioice-peer.py, natkit-peer.ts); `netns` runs it inside a
 * network namespace with `ip netns exec`, which execs the program, so the child's PID is the peer's own.
 */
export class JsonPeer {
  private readonly docs: PeerDoc[] = []
  private buffer = ''
  private stderr = ''
  private readonly child: ChildProcessWithoutNullStreams
  constructor (argv: string[], options: { netns?: string } = {}) {
    const [cmd, ...args] = options.netns === undefined ? argv : ['ip', 'netns', 'exec', options.netns, ...argv]
    this.child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] })
    this.child.stdout.on('data', (d: Buffer) => {
      this.buffer += d.toString()
      let nl: number
      while ((nl = this.buffer.indexOf('\n')) >= 0) {
        const line = this.buffer.slice(0, nl); this.buffer = this.buffer.slice(nl + 1)
        try { this.docs.push(JSON.parse(line) as PeerDoc) } catch { this.stderr += `bad line: ${line}\n` }
      }
    })
    this.child.stderr.on('data', (d: Buffer) => { this.stderr = (this.stderr + d.toString()).slice(-20_000) })
    this.child.stdin.on('error', () => {})
  }

  /** An aioice peer (`spec` as aioice-peer.py documents it). */
  static aioice (role: 'controlling' | 'controlled', spec: object = {}, netns?: string): JsonPeer {
    return new JsonPeer([PYTHON, AIOICE_PEER, role, JSON.stringify(spec)], { netns })
  }

  /** A natkit peer (`spec` as natkit-peer.ts documents it). */
  static natkit (spec: object, netns?: string): JsonPeer {
    return new JsonPeer([process.execPath, NATKIT_PEER, JSON.stringify(spec)], { netns })
  }

  write (doc: object): void { this.child.stdin.write(JSON.stringify(doc) + '\n') }

  /** What the peer wrote on stderr (for failure messages). */
  get log (): string { return this.stderr }

  /** The next document of a type (bounded wait), removed from the queue. */
  async next<T extends PeerDoc['type']> (type: T, timeoutMs = 15_000): Promise<Extract<PeerDoc, { type: T }>> {
    const deadline = Date.now() + timeoutMs
    for (;;) {
      const i = this.docs.findIndex(d => d.type === type)
      if (i >= 0) return this.docs.splice(i, 1)[0] as Extract<PeerDoc, { type: T }>
      const failed = this.docs.find(d => d.type === 'failed')
      if (failed !== undefined) throw new Error(`peer failed: ${JSON.stringify(failed)}\n${this.stderr}`)
      if (Date.now() > deadline || this.child.exitCode !== null) throw new Error(`no ${type} from the peer within ${timeoutMs} ms; stderr:\n${this.stderr}`)
      await new Promise(resolve => setTimeout(resolve, 10))
    }
  }

  /** Datagrams received so far (with the generation that received each, for aioice), taken from the queue. */
  receivedDocs (): Array<{ gen?: number, hex: string, component?: number }> {
    const out: Array<{ gen?: number, hex: string, component?: number }> = []
    for (let i = this.docs.length - 1; i >= 0; i--) if (this.docs[i].type === 'recv') out.unshift(this.docs.splice(i, 1)[0] as { gen?: number, hex: string, component?: number })
    return out
  }

  /** Datagrams received so far (hex), taken from the queue. */
  received (): string[] { return this.receivedDocs().map(d => d.hex) }

  /** Ask it to close and wait for its last document; kill it by PID if it has not exited within 3 s. */
  async stop (): Promise<PeerDoc | undefined> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return this.docs.find(d => d.type === 'closed')
    const exited = new Promise<void>(resolve => this.child.once('exit', () => { resolve() }))
    try { this.write({ type: 'close' }) } catch { /* already gone */ }
    const t = setTimeout(() => { this.child.kill('SIGKILL') }, 3000)
    await exited
    clearTimeout(t)
    return this.docs.find(d => d.type === 'closed')
  }
}

/** Datagrams chosen to cross every RFC 7983 range the app may use, and a natkit-era 0xFF one. */
export const PAYLOADS = [
  '80e0000100000064cafebabe0102030405', // RTP, PT 96, marker
  '81c80006cafebabe0000000000000000', // RTCP SR
  '16fefd000000000000000000010203', // DTLS record
  'ff00ff'
]

/** Poll `get` (bounded) until it has gathered `want` items or the time is up; returns what it gathered. */
export async function collect<T> (get: () => T[], want: number, timeoutMs = 5000): Promise<T[]> {
  const deadline = Date.now() + timeoutMs
  let got: T[] = []
  while (got.length < want && Date.now() < deadline) { got = got.concat(get()); await new Promise(resolve => setTimeout(resolve, 10)) }
  return got
}
