/**
 * A natkit `Agent` driven over stdin/stdout, one JSON document per line: the natkit side of the interop tests that
 * run inside network namespaces (`ip netns exec NS node natkit-peer.js SPEC`), speaking the same line protocol as
 * test/interop/aioice-peer.py so a test can relay signalling between the two.
 *
 * SPEC (argv[2], JSON): { role, bindAddress, stunServers?: string[], mdnsTimeoutMs?: number, mdnsHostCandidates?: boolean }
 * Out: {"type":"local","ufrag","pwd","candidates":["candidate:…"]}, {"type":"connected","path":{type,local,remote}},
 *      {"type":"path","path":…} on every later path change, {"type":"mdns","resolutions":[…]} once every remote
 *      .local name has resolved or timed out, {"type":"recv","hex"}, {"type":"failed","error"},
 *      {"type":"closed","attempts":[…],"remote":[…]} at the end.
 * In:  {"type":"remote","ufrag","pwd","candidates":["candidate:…"]}, {"type":"send","hex"}, {"type":"close"}.
 */
import { createInterface } from 'node:readline'
import { Agent, candidateFromSdp, candidateToSdp, isMdnsName, type Candidate, type PathInfo } from '../../../src/traversal/index.js'

interface Spec { role: 'controlling' | 'controlled', bindAddress: string, stunServers?: string[], mdnsTimeoutMs?: number, mdnsHostCandidates?: boolean }

const spec = JSON.parse(process.argv[2] ?? '{}') as Spec
const out = (doc: object): void => { process.stdout.write(JSON.stringify(doc) + '\n') }
const brief = (c: Candidate): object => ({ type: c.type, address: c.address, port: c.port })
const pathDoc = (p: PathInfo): object => ({ type: p.type, local: brief(p.local), remote: brief(p.remote) })

const agent = await Agent.create({ bindAddress: spec.bindAddress, role: spec.role, stunServers: spec.stunServers ?? [], gatherTimeoutMs: 2000, mdnsTimeoutMs: spec.mdnsTimeoutMs, mdnsHostCandidates: spec.mdnsHostCandidates })
let announced = false
agent.on('path', (p) => { out({ type: announced ? 'path' : 'connected', path: pathDoc(p) }); announced = true })
agent.on('message', (d) => { out({ type: 'recv', hex: d.toString('hex') }) })
const local = await agent.gather()
out({ type: 'local', ufrag: agent.ufrag, pwd: agent.pwd, candidates: local.map(candidateToSdp) })

// Bounded: the test closes us, and a peer that never does is cut off after 60 s.
const lifetime = setTimeout(() => { void finish() }, 60_000)
let finished = false
async function finish (): Promise<void> {
  if (finished) return
  finished = true
  clearTimeout(lifetime)
  const attempts = agent.attempts().map(p => ({ local: brief(p.local), remote: brief(p.remote), state: p.state, outcome: p.outcome ?? null, nominated: p.nominated }))
  const remote = agent.remote.map(brief)
  await agent.close()
  out({ type: 'closed', attempts, remote })
  process.exit(0)
}

const lines = createInterface({ input: process.stdin })
lines.on('line', (line) => {
  let msg: { type: string, ufrag?: string, pwd?: string, candidates?: string[], hex?: string }
  try { msg = JSON.parse(line) } catch { out({ type: 'failed', error: `bad line ${line}` }); return }
  if (msg.type === 'remote') {
    agent.setRemoteCredentials(msg.ufrag ?? '', msg.pwd ?? '')
    const candidates = (msg.candidates ?? []).map(c => candidateFromSdp(c))
    agent.addRemoteCandidates(candidates)
    agent.setRemoteGatheringComplete()
    agent.start()
    // Report the mDNS resolutions once every .local name has resolved or timed out (bounded by the agent's timeout).
    const named = candidates.filter(c => isMdnsName(c.address)).length
    if (named > 0) {
      const poll = setInterval(() => {
        if (agent.mdnsResolutions.length < named) return
        clearInterval(poll)
        out({ type: 'mdns', resolutions: agent.mdnsResolutions })
      }, 10)
      poll.unref()
    }
  } else if (msg.type === 'send') {
    if (!agent.send(Buffer.from(msg.hex ?? '', 'hex'))) out({ type: 'failed', error: 'send before a path works' })
  } else if (msg.type === 'close') {
    void finish()
  }
})
lines.on('close', () => { void finish() })
