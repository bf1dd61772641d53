import { createInterface } from 'node:readline'
import { ERROR_CODES, InvalidArgumentError, NatError } from '../errors.js'
import { formatEndpoint } from '../net/endpoint.js'
import { Agent } from '../traversal/agent.js'
import type { PortMappingOptions, TurnServerConfig } from '../traversal/gather.js'
import { buildIceSdp, parseIceSdp } from '../traversal/sdp.js'

/** What `natcheck connect --manual` needs from the command line. */
export interface ManualOptions {
  readonly role: 'controlling' | 'controlled'
  readonly bindAddress?: string
  readonly includeLoopback: boolean
  readonly policy: 'all' | 'relay'
  readonly stunServers: string[]
  readonly turnServers: TurnServerConfig[]
  readonly timeoutMs: number
  readonly count: number
  readonly lite: boolean
  /** The agent's port mapping and port prediction (off when absent). */
  readonly portMapping?: PortMappingOptions
  readonly portPrediction?: boolean
  /** Where this side's ICE lines go (stdout for people, stderr with --json so stdout stays one document). */
  readonly printLines: (text: string) => void
  readonly progress: (line: string) => void
}

/** The outcome of a manual connection, for the renderers. */
export interface ManualResult {
  readonly agent: Agent
  readonly echo: { delivered: number, medianRttMs: number | null }
}

/**
 * `natcheck connect --manual`: gather, print this side's ICE lines (RFC 8839: ice-ufrag, ice-pwd, candidates,
 * end-of-candidates), read the peer's from stdin up to an empty line, `a=end-of-candidates` or EOF, run the checks,
 * then exchange `count` echo datagrams. No rendezvous: the two people copy the lines between terminals. The roles may
 * be equal on both sides: the RFC 8445 §7.3.1.1 tie-breaker settles them.
 */
export async function connectManual (o: ManualOptions): Promise<ManualResult> {
  const agent = await Agent.create({ bindAddress: o.bindAddress, includeLoopback: o.includeLoopback, policy: o.policy, stunServers: o.stunServers, turnServers: o.turnServers, role: o.role, lite: o.lite, portMapping: o.portMapping, portPrediction: o.portPrediction })
  try {
    const local = await agent.gather()
    o.printLines(buildIceSdp({ ufrag: agent.ufrag, pwd: agent.pwd, candidates: local, endOfCandidates: true, lite: o.lite }).join('\n') + '\n')
    o.progress('paste the peer\'s a= lines, then an empty line')
    const peer = parseIceSdp(await readPeerLines(o.timeoutMs))
    for (const s of peer.skipped) o.progress(`ignored ${s.line}: ${s.detail}`)
    if (peer.ufrag === undefined || peer.pwd === undefined) throw new InvalidArgumentError('the peer\'s lines need a=ice-ufrag and a=ice-pwd')
    agent.setRemoteCredentials(peer.ufrag, peer.pwd)
    if (peer.lite) agent.setRemoteLite()
    agent.addRemoteCandidates(peer.candidates)
    if (peer.endOfCandidates) agent.setRemoteGatheringComplete()
    agent.start()
    const started = performance.now()
    while (agent.path === undefined && performance.now() - started < o.timeoutMs) {
      // Every pair decided and nothing new for 8 s: give up before the timeout.
      if (!agent.checking && agent.gatheringComplete && performance.now() - started > 8000) break
      await new Promise(resolve => setTimeout(resolve, 20))
    }
    const path = agent.path
    if (path === undefined) throw new NatError('no candidate pair worked', ERROR_CODES.CONNECT)
    o.progress(`connected over a ${path.type} path: ${formatEndpoint(path.local)} → ${formatEndpoint(path.remote)}`)
    return { agent, echo: await echo(agent, o.count) }
  } catch (err) {
    await agent.close()
    throw err
  }
}

/** Lines from stdin up to an empty line after some content, `a=end-of-candidates`, EOF or the timeout. */
async function readPeerLines (timeoutMs: number): Promise<string> {
  const rl = createInterface({ input: process.stdin, terminal: false })
  const lines: string[] = []
  try {
    return await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => { reject(new NatError(`no ICE lines from the peer on stdin within ${timeoutMs} ms`, ERROR_CODES.SIGNALLING_TIMEOUT)) }, timeoutMs)
      const done = (): void => { clearTimeout(timer); resolve(lines.join('\n')) }
      rl.on('line', (line) => {
        const t = line.trim()
        if (t === '' && lines.length > 0) { done(); return }
        if (t !== '') lines.push(t)
        if (t === 'a=end-of-candidates') done()
      })
      rl.on('close', done)
    })
  } finally {
    rl.close()
  }
}

/**
 * Echo over the new path: send `count` numbered pings (0x50 'P'), answer the peer's with 0x52 'R', collect the
 * replies for up to 2 s, and keep answering for 1 s more so the peer can finish too.
 */
async function echo (agent: Agent, count: number): Promise<{ delivered: number, medianRttMs: number | null }> {
  const sentAt = new Map<number, number>()
  const rtts: number[] = []
  agent.on('message', (d) => {
    if (d.length !== 5) return
    const n = d.readUInt32BE(1)
    if (d[0] === 0x50) { const r = Buffer.from(d); r[0] = 0x52; agent.send(r) } else if (d[0] === 0x52) {
      const at = sentAt.get(n)
      if (at !== undefined) { sentAt.delete(n); rtts.push(performance.now() - at) }
    }
  })
  for (let i = 0; i < count; i++) {
    const b = Buffer.alloc(5); b[0] = 0x50; b.writeUInt32BE(i, 1)
    sentAt.set(i, performance.now())
    agent.send(b)
    await new Promise(resolve => setTimeout(resolve, 5))
  }
  const deadline = performance.now() + 2000
  while (rtts.length < count && performance.now() < deadline) await new Promise(resolve => setTimeout(resolve, 10))
  await new Promise(resolve => setTimeout(resolve, 1000))
  const sorted = rtts.sort((a, b) => a - b)
  return { delivered: rtts.length, medianRttMs: sorted.length > 0 ? Math.round(sorted[Math.floor(sorted.length / 2)] * 100) / 100 : null }
}
