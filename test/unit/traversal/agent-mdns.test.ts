import { expect } from 'chai'
import { InvalidArgumentError } from '../../../src/errors.js'
import { Agent, isMdnsName, resolveMdns, type Candidate, type MdnsResolveOptions, type MdnsResolver } from '../../../src/traversal/index.js'

const NAME = 'c2a0d0e8-1234-4c1b-9a3f-0123456789ab.local'

/** Two agents on 127.0.0.1; B's host candidate reaches A as an mDNS name (as a browser would send it). */
async function pair (resolver: MdnsResolver, aRole: 'controlling' | 'controlled', mdnsTimeoutMs?: number): Promise<{ a: Agent, b: Agent, named: Candidate }> {
  const a = await Agent.create({ bindAddress: '127.0.0.1', role: aRole, mdnsResolver: resolver, mdnsTimeoutMs })
  const b = await Agent.create({ bindAddress: '127.0.0.1', role: aRole === 'controlling' ? 'controlled' : 'controlling' })
  const [aHost] = await a.gather()
  const [bHost] = await b.gather()
  const named = { ...bHost, address: NAME }
  a.setRemoteCredentials(b.ufrag, b.pwd)
  b.setRemoteCredentials(a.ufrag, a.pwd)
  a.addRemoteCandidates([named])
  b.addRemoteCandidates([aHost])
  a.start(); b.start()
  return { a, b, named }
}

async function until (cond: () => boolean, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms
  while (!cond() && Date.now() < deadline) await new Promise(resolve => setTimeout(resolve, 10))
}

describe('Agent and mDNS host candidates (draft-ietf-mmusic-mdns-ice-candidates)', function () {
  this.timeout(15_000)

  it('resolves a remote .local host candidate through the resolver and checks the address it resolved to', async () => {
    const asked: Array<[string, MdnsResolveOptions]> = []
    const { a, b } = await pair(async (name, options) => { asked.push([name, options]); return '127.0.0.1' }, 'controlling', 700)
    try {
      await until(() => a.path !== undefined && b.path !== undefined)
      expect(asked.map(([n, o]) => [n, o.timeoutMs])).to.deep.equal([[NAME, 700]])
      expect(a.path?.remote).to.include({ type: 'host', address: '127.0.0.1', port: b.path?.local.port })
      expect(a.mdnsResolutions).to.have.length(1)
      expect(a.mdnsResolutions[0]).to.include({ name: NAME, address: '127.0.0.1' })
      expect(a.remote.some(r => r.address === NAME), 'the name itself is never a remote address').to.equal(false)
      const got: string[] = []
      b.on('message', (d) => { got.push(d.toString()) })
      expect(a.send(Buffer.from('\x80hello'))).to.equal(true)
      await until(() => got.length > 0)
      expect(got).to.deep.equal(['\x80hello'])
    } finally { await a.close(); await b.close() }
  })

  for (const role of ['controlling', 'controlled'] as const) {
    it(`(${role}) a name that does not resolve is dropped, and the peer's checks make the pair peer-reflexive`, async () => {
      const { a, b } = await pair(async (_name, o) => await new Promise(resolve => setTimeout(() => { resolve(undefined) }, Math.min(o.timeoutMs, 100))), role)
      try {
        await until(() => a.path !== undefined && b.path !== undefined && a.mdnsResolutions.length > 0)
        expect(a.mdnsResolutions.map(r => [r.name, r.address])).to.deep.equal([[NAME, null]])
        expect(a.path?.remote).to.include({ type: 'prflx', address: '127.0.0.1', port: b.path?.local.port })
        expect(b.path?.remote.type).to.equal('host')
      } finally { await a.close(); await b.close() }
    })
  }

  it('a name that resolves after the peer\'s checks made the pair peer-reflexive turns that candidate into the host candidate it is', async () => {
    let answer: (address: string) => void = () => {}
    const { a, b } = await pair(async () => await new Promise<string>(resolve => { answer = resolve }), 'controlled')
    try {
      await until(() => a.path !== undefined && b.path !== undefined)
      expect(a.path?.remote.type).to.equal('prflx')
      answer('127.0.0.1')
      await until(() => a.mdnsResolutions.length > 0)
      expect(a.path?.remote).to.include({ type: 'host', address: '127.0.0.1', port: b.path?.local.port })
      expect(a.remote.filter(r => r.port === b.path?.local.port).map(r => r.type)).to.deep.equal(['host'])
    } finally { await a.close(); await b.close() }
  })

  it('a resolver that throws or answers garbage counts as unresolved and throws nothing out of the agent', async () => {
    for (const resolver of [async () => { throw new Error('boom') }, async () => 'not-an-address'] as MdnsResolver[]) {
      const { a, b } = await pair(resolver, 'controlled')
      try {
        await until(() => a.mdnsResolutions.length > 0 && a.path !== undefined)
        expect(a.mdnsResolutions.map(r => r.address)).to.deep.equal([null])
        expect(a.path?.remote.type).to.equal('prflx')
      } finally { await a.close(); await b.close() }
    }
  })

  it('asks once per name however many candidates carry it (a browser names its UDP and TCP host candidates alike)', async () => {
    const asked: string[] = []
    const a = await Agent.create({ bindAddress: '127.0.0.1', mdnsResolver: async (name) => { asked.push(name); return '127.0.0.1' } })
    try {
      const [host] = await a.gather()
      a.addRemoteCandidates([{ ...host, port: 9, address: NAME }, { ...host, port: 10, address: NAME.toUpperCase() }])
      await until(() => a.mdnsResolutions.length === 2)
      expect(asked).to.deep.equal([NAME])
      expect(a.remote.map(r => [r.address, r.port])).to.deep.equal([['127.0.0.1', 9], ['127.0.0.1', 10]])
    } finally { await a.close() }
  })

  it('closing the agent aborts a pending resolution', async () => {
    let signal: AbortSignal | undefined
    const a = await Agent.create({ bindAddress: '127.0.0.1', mdnsResolver: async (_n, o) => { signal = o.signal; return await new Promise(resolve => o.signal?.addEventListener('abort', () => { resolve(undefined) })) } })
    const [host] = await a.gather()
    a.addRemoteCandidates([{ ...host, port: host.port + 1, address: NAME }])
    expect(signal?.aborted).to.equal(false)
    await a.close()
    expect(signal?.aborted).to.equal(true)
  })
})

describe('resolveMdns / isMdnsName', () => {
  const names: Array<[string, boolean]> = [
    [NAME, true], ['Host-1.LOCAL', true], ['abc.local.', true], ['a.b.local', false], ['example.org', false], ['192.0.2.1', false], ['.local', false], ['', false]
  ]
  for (const [name, ok] of names) it(`isMdnsName(${JSON.stringify(name)}) is ${ok}`, () => { expect(isMdnsName(name)).to.equal(ok) })

  it('rejects a name that is not mDNS with InvalidArgumentError, before any socket exists', async () => {
    let caught: unknown
    try { await resolveMdns('host.example.org', { timeoutMs: 10 }) } catch (err) { caught = err }
    expect(caught).to.be.instanceOf(InvalidArgumentError)
  })

  it('returns undefined at once for an already aborted signal (no query sent)', async () => {
    expect(await resolveMdns(NAME, { timeoutMs: 5000, signal: AbortSignal.abort() })).to.equal(undefined)
  })
})
