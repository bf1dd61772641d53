import { expect } from 'chai'
import { TurnServer } from '../../src/relay/turn-server.js'
import { Agent, buildIceSdp, parseIceSdp, type AgentOptions } from '../../src/traversal/index.js'
import { requireOrSkip } from '../support/env.js'
import { JsonPeer, PAYLOADS, PYTHON, aioiceAvailable, collect } from './support/json-peer.js'

type AioicePeer = JsonPeer

async function run (role: 'controlling' | 'controlled', extra: AgentOptions = {}): Promise<{ agent: Agent, peer: AioicePeer }> {
  const agent = await Agent.create({ bindAddress: '127.0.0.1', role, ...extra })
  const peer = JsonPeer.aioice(role === 'controlling' ? 'controlled' : 'controlling')
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

  for (const role of ['controlling', 'controlled'] as const) it(`ICE restart (RFC 8445 §9), natkit ${role}: new ufrag/pwd, data keeps flowing on the old path, then moves to the new one`, async () => {
    const { agent, peer } = await run(role)
    try {
      const before = agent.path
      const oldUfrag = agent.ufrag
      // aioice 0.8 has no restart: its side of the restart is a new aioice Connection (new credentials and sockets).
      peer.write({ type: 'restart' })
      const fresh = await peer.next('local')
      expect(fresh.gen).to.equal(2)
      const creds = agent.restart()
      expect(creds.ufrag).to.not.equal(oldUfrag)
      expect(agent.restarting).to.equal(true)
      // While the restart runs, the old path carries data both ways (to and from the first aioice Connection).
      expect(agent.send(Buffer.from(PAYLOADS[0], 'hex'))).to.equal(true)
      const during = await collect(() => peer.receivedDocs(), 1)
      expect(during.map(d => [d.gen, d.hex])).to.deep.equal([[1, PAYLOADS[0]]])
      const back: string[] = []
      agent.on('message', (d) => { back.push(d.toString('hex')) })
      peer.write({ type: 'send', hex: PAYLOADS[1] })
      expect(await collect(() => back.splice(0), 1)).to.deep.equal([PAYLOADS[1]])
      // Both sides learn each other's new credentials; the new generation checks and natkit nominates a new pair.
      const remote = parseIceSdp([`a=ice-ufrag:${fresh.ufrag}`, `a=ice-pwd:${fresh.pwd}`, ...fresh.candidates.map(c => `a=${c}`)].join('\r\n'))
      agent.setRemoteCredentials(remote.ufrag as string, remote.pwd as string)
      agent.addRemoteCandidates(remote.candidates)
      peer.write({ type: 'remote', ufrag: creds.ufrag, pwd: creds.pwd, candidates: buildIceSdp({ ufrag: agent.ufrag, pwd: agent.pwd, candidates: agent.local.filter(c => c.type === 'host') }).filter(l => l.startsWith('a=candidate:')) })
      const connected = await peer.next('connected', 20_000)
      expect(connected.gen).to.equal(2)
      const newPort = remote.candidates[0].port
      const deadline = Date.now() + 5000
      while ((agent.restarting || agent.path?.remote.port !== newPort) && Date.now() < deadline) await new Promise(resolve => setTimeout(resolve, 10))
      expect(agent.restarting, 'restart completed').to.equal(false)
      expect(agent.path?.remote.port, 'the path moved to the new aioice connection').to.equal(newPort)
      expect(agent.path?.remote.port).to.not.equal(before?.remote.port)
      // The old aioice connection is closed: everything now goes over the new path, both ways.
      peer.write({ type: 'drop-old' })
      for (const hex of PAYLOADS) expect(agent.send(Buffer.from(hex, 'hex'))).to.equal(true)
      const got = await collect(() => peer.receivedDocs(), PAYLOADS.length)
      expect(got.map(d => d.gen)).to.deep.equal(PAYLOADS.map(() => 2))
      expect(got.map(d => d.hex).sort()).to.deep.equal([...PAYLOADS].sort())
      for (const hex of PAYLOADS) peer.write({ type: 'send', hex })
      expect((await collect(() => back.splice(0), PAYLOADS.length)).sort()).to.deep.equal([...PAYLOADS].sort())
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
