import { expect } from 'chai'
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { TurnServer } from '../../src/relay/turn-server.js'
import { Agent, buildIceSdp, parseIceSdp, type AgentOptions } from '../../src/traversal/index.js'
import { requireOrSkip } from '../support/env.js'

/** Debian's python (python3-aioice is installed for it), not whatever python3 is first on PATH. */
const PYTHON = '/usr/bin/python3'
const SCRIPT = fileURLToPath(new URL('../../../test/interop/aioice-peer.py', import.meta.url))

function aioiceAvailable (): boolean {
  return spawnSync(PYTHON, ['-c', 'import aioice'], { stdio: 'ignore', timeout: 10_000 }).status === 0
}

type PeerDoc = { type: 'local', ufrag: string, pwd: string, candidates: string[] } | { type: 'connected', local: [string, number], remote: [string, number] } |
{ type: 'failed', error: string } | { type: 'recv', hex: string } | { type: 'closed' }

/** The aioice peer process: JSON lines both ways (test/interop/aioice-peer.py). */
class AioicePeer {
  private readonly docs: PeerDoc[] = []
  private buffer = ''
  private stderr = ''
  private readonly child: ChildProcessWithoutNullStreams
  constructor (role: 'controlling' | 'controlled') {
    this.child = spawn(PYTHON, [SCRIPT, role], { stdio: ['pipe', 'pipe', 'pipe'] })
    this.child.stdout.on('data', (d: Buffer) => {
      this.buffer += d.toString()
      let nl: number
      while ((nl = this.buffer.indexOf('\n')) >= 0) {
        const line = this.buffer.slice(0, nl); this.buffer = this.buffer.slice(nl + 1)
        try { this.docs.push(JSON.parse(line) as PeerDoc) } catch { this.stderr += `bad line: ${line}\n` }
      }
    })
    this.child.stderr.on('data', (d: Buffer) => { this.stderr += d.toString() })
    this.child.stdin.on('error', () => {})
  }

  write (doc: object): void { this.child.stdin.write(JSON.stringify(doc) + '\n') }

  /** The next document of a type (bounded wait), removed from the queue. */
  async next<T extends PeerDoc['type']> (type: T, timeoutMs = 15_000): Promise<Extract<PeerDoc, { type: T }>> {
    const deadline = Date.now() + timeoutMs
    for (;;) {
      const i = this.docs.findIndex(d => d.type === type)
      if (i >= 0) return this.docs.splice(i, 1)[0] as Extract<PeerDoc, { type: T }>
      const failed = this.docs.find(d => d.type === 'failed')
      if (failed !== undefined) throw new Error(`aioice: ${JSON.stringify(failed)}\n${this.stderr}`)
      if (Date.now() > deadline || this.child.exitCode !== null) throw new Error(`no ${type} from aioice within ${timeoutMs} ms; stderr:\n${this.stderr}`)
      await new Promise(resolve => setTimeout(resolve, 10))
    }
  }

  /** Datagrams received so far (hex), taken from the queue. */
  received (): string[] {
    const out: string[] = []
    for (let i = this.docs.length - 1; i >= 0; i--) if (this.docs[i].type === 'recv') out.unshift((this.docs.splice(i, 1)[0] as { hex: string }).hex)
    return out
  }

  /** Ask it to close, then kill it by PID if it has not exited within 3 s. */
  async stop (): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return
    const exited = new Promise<void>(resolve => this.child.once('exit', () => { resolve() }))
    try { this.write({ type: 'close' }) } catch { /* already gone */ }
    const t = setTimeout(() => { this.child.kill('SIGKILL') }, 3000)
    await exited
    clearTimeout(t)
  }
}

/** Datagrams chosen to cross every RFC 7983 range the app may use, and a natkit-era 0xFF one. */
const PAYLOADS = [
  '80e0000100000064cafebabe0102030405', // RTP, PT 96, marker
  '81c80006cafebabe0000000000000000', // RTCP SR
  '16fefd000000000000000000010203', // DTLS record
  'ff00ff'
]

async function run (role: 'controlling' | 'controlled', extra: AgentOptions = {}): Promise<{ agent: Agent, peer: AioicePeer }> {
  const agent = await Agent.create({ bindAddress: '127.0.0.1', role, ...extra })
  const peer = new AioicePeer(role === 'controlling' ? 'controlled' : 'controlling')
  try {
    const local = await agent.gather()
    const theirs = await peer.next('local')
    // Both directions go through natkit's SDP helpers: what natkit prints, aioice parses, and the other way round.
    const ours = parseIceSdp(buildIceSdp({ ufrag: agent.ufrag, pwd: agent.pwd, candidates: local, endOfCandidates: true, lite: extra.lite }).join('\n'))
    const remote = parseIceSdp([`a=ice-ufrag:${theirs.ufrag}`, `a=ice-pwd:${theirs.pwd}`, ...theirs.candidates.map(c => `a=${c}`), 'a=end-of-candidates'].join('\r\n'))
    expect(remote.skipped).to.deep.equal([])
    agent.setRemoteCredentials(remote.ufrag as string, remote.pwd as string)
    agent.addRemoteCandidates(remote.candidates)
    agent.setRemoteGatheringComplete()
    peer.write({ type: 'remote', ufrag: ours.ufrag, pwd: ours.pwd, lite: ours.lite, candidates: buildIceSdp({ ufrag: agent.ufrag, pwd: agent.pwd, candidates: local }).filter(l => l.startsWith('a=candidate:')) })
    agent.start()
    await peer.next('connected', 20_000)
    const deadline = Date.now() + 10_000
    while (agent.path === undefined && Date.now() < deadline) await new Promise(resolve => setTimeout(resolve, 10))
    expect(agent.path, 'natkit found a path').to.not.equal(undefined)
    return { agent, peer }
  } catch (err) {
    await peer.stop(); await agent.close()
    throw err
  }
}

async function exchange (agent: Agent, peer: AioicePeer): Promise<void> {
  // natkit → aioice: the exact bytes, no framing.
  for (const hex of PAYLOADS) expect(agent.send(Buffer.from(hex, 'hex'))).to.equal(true)
  const deadline = Date.now() + 5000
  let got: string[] = []
  while (got.length < PAYLOADS.length && Date.now() < deadline) { got = got.concat(peer.received()); await new Promise(resolve => setTimeout(resolve, 10)) }
  expect([...got].sort()).to.deep.equal([...PAYLOADS].sort())
  // aioice → natkit.
  const back: string[] = []
  agent.on('message', (d) => { back.push(d.toString('hex')) })
  for (const hex of PAYLOADS) peer.write({ type: 'send', hex })
  const until = Date.now() + 5000
  while (back.length < PAYLOADS.length && Date.now() < until) await new Promise(resolve => setTimeout(resolve, 10))
  expect([...back].sort()).to.deep.equal([...PAYLOADS].sort())
}

describe('interop: natkit Agent ↔ aioice (python3-aioice)', function () {
  this.timeout(60_000)
  before(function () {
    requireOrSkip(this, aioiceAvailable(), `${PYTHON} cannot import aioice (apt-get install python3-aioice)`)
  })

  it('natkit controlling, aioice controlled: host candidates, raw datagrams both ways, byte for byte', async () => {
    const { agent, peer } = await run('controlling')
    try {
      expect(agent.path?.type).to.equal('direct')
      await exchange(agent, peer)
    } finally { await peer.stop(); await agent.close() }
  })

  it('natkit controlled, aioice controlling with aggressive nomination (USE-CANDIDATE on every check)', async () => {
    const { agent, peer } = await run('controlled')
    try {
      expect(agent.path?.type).to.equal('direct')
      expect(agent.attempts().some(p => p.nominated && p.state === 'succeeded'), 'aioice nominated a pair natkit marked').to.equal(true)
      await exchange(agent, peer)
    } finally { await peer.stop(); await agent.close() }
  })

  it('natkit as an ICE-lite agent (a=ice-lite): aioice checks and nominates, natkit only answers and uses the nominated pair', async () => {
    const { agent, peer } = await run('controlled', { lite: true })
    try {
      expect(agent.path?.type).to.equal('direct')
      const used = agent.attempts().filter(p => p.state === 'succeeded')
      expect(used.length).to.be.above(0)
      expect(used.every(p => p.nominated && p.checksSent === 0), 'natkit sent no checks of its own').to.equal(true)
      await exchange(agent, peer)
    } finally { await peer.stop(); await agent.close() }
  })

  it('relay-only on the natkit side (natkit\'s TURN server): aioice reaches natkit\'s relayed candidate', async () => {
    const turn = await TurnServer.start({ listen: [{ address: '127.0.0.1', port: 0 }], realm: 'natkit.test', users: { u: 'p' }, allowPeer: ['127.0.0.0/8'] })
    try {
      const { agent, peer } = await run('controlling', { policy: 'relay', turnServers: [{ server: `127.0.0.1:${turn.addresses.udp[0].port}`, credentials: { username: 'u', password: 'p' } }] })
      try {
        expect(agent.path?.type).to.equal('relay')
        expect(agent.path?.local.type).to.equal('relay')
        await exchange(agent, peer)
      } finally { await peer.stop(); await agent.close() }
    } finally { await turn.close() }
  })
})
