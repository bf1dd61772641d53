import { expect } from 'chai'
import { Agent, isMdnsName, type MdnsPublisher } from '../../../src/traversal/index.js'
import { mdnsAnswers } from '../../../src/traversal/mdns-responder.js'
import { FakeSocket } from '../../support/fake-socket.js'

describe('mDNS host candidates of natkit\'s own (draft-ietf-mmusic-mdns-ice-candidates §3.1)', () => {
  describe('mdnsAnswers (RFC 6762 §6)', () => {
    const published = new Map([['0f8e5d3a-1111-4222-8333-944455556666.local', '192.0.2.10'], ['aaaa.local', '2001:db8::1']])
    const cases: Array<[string, Array<{ name: string, type: string }>, Array<[string, string, string]>]> = [
      ['an A question for a published IPv4 name', [{ name: '0f8e5d3a-1111-4222-8333-944455556666.local', type: 'A' }], [['0f8e5d3a-1111-4222-8333-944455556666.local', 'A', '192.0.2.10']]],
      ['any case and a root dot', [{ name: '0F8E5D3A-1111-4222-8333-944455556666.LOCAL.', type: 'A' }], [['0F8E5D3A-1111-4222-8333-944455556666.LOCAL', 'A', '192.0.2.10']]],
      ['AAAA for an IPv6 address, ANY too', [{ name: 'aaaa.local', type: 'AAAA' }, { name: 'aaaa.local', type: 'ANY' }], [['aaaa.local', 'AAAA', '2001:db8::1'], ['aaaa.local', 'AAAA', '2001:db8::1']]],
      ['no A record for an IPv6 name', [{ name: 'aaaa.local', type: 'A' }], []],
      ['a name not published', [{ name: 'other.local', type: 'A' }], []]
    ]
    for (const [what, questions, want] of cases) {
      it(what, () => {
        const got = mdnsAnswers(questions, published)
        expect(got.map(a => [a.name, a.type, a.data])).to.deep.equal(want)
        for (const a of got) expect([a.ttl, a.flush]).to.deep.equal([120, true])
      })
    }
  })

  it('the Agent signals its host candidate by a published name, keeps the address in `local`, and unpublishes on close', async () => {
    const published: Array<{ name: string, address: string, closed: boolean }> = []
    const publisher: MdnsPublisher = (name, address) => {
      const p = { name, address, closed: false }
      published.push(p)
      return { name, close: async () => { p.closed = true } }
    }
    const agent = await Agent.create({ socket: new FakeSocket({ address: '192.0.2.10', port: 5000 }), mdnsHostCandidates: true, mdnsPublisher: publisher })
    const signalled = await agent.gather()
    expect(signalled).to.have.length(1)
    expect(isMdnsName(signalled[0].address)).to.equal(true)
    expect(signalled[0]).to.include({ type: 'host', port: 5000 })
    expect(published.map(p => [p.name, p.address, p.closed])).to.deep.equal([[signalled[0].address, '192.0.2.10', false]])
    expect(agent.local.map(c => c.address)).to.deep.equal(['192.0.2.10'])
    await agent.close()
    expect(published.map(p => p.closed)).to.deep.equal([true])
  })

  it('is off by default: the host address is signalled as it is', async () => {
    const agent = await Agent.create({ socket: new FakeSocket({ address: '192.0.2.10', port: 5000 }) })
    try {
      expect((await agent.gather()).map(c => c.address)).to.deep.equal(['192.0.2.10'])
    } finally { await agent.close() }
  })
})
