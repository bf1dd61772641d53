import { expect } from 'chai'
import { ResolveError } from '../../../src/errors.js'
import { resolveServer } from '../../../src/net/resolve.js'
import { expectRejection } from '../../support/assert.js'

/** A recorded DNS: SRV and address records by name; every query is logged. */
function fakeDns (srv: Record<string, Array<{ name: string, port: number, priority: number, weight: number }>>, hosts: Record<string, string[]>) {
  const queries: string[] = []
  return {
    queries,
    resolveSrv: async (name: string) => {
      queries.push(`SRV ${name}`)
      const r = srv[name]
      if (r === undefined) throw Object.assign(new Error(`queryNoData ${name}`), { code: 'ENODATA' })
      return r
    },
    lookup: async (host: string) => {
      queries.push(`A/AAAA ${host}`)
      const r = hosts[host]
      if (r === undefined) throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${host}`), { code: 'ENOTFOUND' })
      return r.map(address => ({ address }))
    }
  }
}

describe('resolveServer (RFC 8489 §8)', () => {
  it('uses an IP literal as is, with the default port per transport', async () => {
    expect(await resolveServer('192.0.2.1')).to.deep.equal([{ host: '192.0.2.1', address: '192.0.2.1', port: 3478 }])
    expect(await resolveServer('192.0.2.1', { transport: 'tls' })).to.deep.equal([{ host: '192.0.2.1', address: '192.0.2.1', port: 5349 }])
    expect(await resolveServer('[2001:db8::1]:1')).to.deep.equal([{ host: '2001:db8::1', address: '2001:db8::1', port: 1 }])
  })

  it('follows SRV records in priority order when no port is given', async () => {
    const dns = fakeDns({
      '_stun._udp.example.test': [{ name: 'b.example.test', port: 3479, priority: 20, weight: 0 }, { name: 'a.example.test', port: 3480, priority: 10, weight: 0 }]
    }, { 'a.example.test': ['192.0.2.10'], 'b.example.test': ['192.0.2.20'] })
    const r = await resolveServer('example.test', { dns })
    expect(r).to.deep.equal([
      { host: 'example.test', address: '192.0.2.10', port: 3480 },
      { host: 'example.test', address: '192.0.2.20', port: 3479 }
    ])
  })

  it('asks _stuns._tcp for TLS and _stun._tcp for TCP', async () => {
    for (const [transport, name] of [['tls', '_stuns._tcp.example.test'], ['tcp', '_stun._tcp.example.test']] as const) {
      const dns = fakeDns({}, { 'example.test': ['192.0.2.1'] })
      await resolveServer('example.test', { transport, dns })
      expect(dns.queries[0]).to.equal(`SRV ${name}`)
    }
  })

  it('falls back to A/AAAA on the default port without SRV records, and skips SRV when a port is given', async () => {
    const dns = fakeDns({}, { 'example.test': ['192.0.2.1', '2001:db8::1'] })
    expect(await resolveServer('example.test', { dns })).to.deep.equal([
      { host: 'example.test', address: '192.0.2.1', port: 3478 },
      { host: 'example.test', address: '2001:db8::1', port: 3478 }
    ])
    const dns2 = fakeDns({}, { 'example.test': ['192.0.2.1'] })
    await resolveServer('example.test:9999', { dns: dns2 })
    expect(dns2.queries).to.deep.equal(['A/AAAA example.test'])
  })

  it('rejects with ResolveError when nothing resolves', async () => {
    const err = await expectRejection(resolveServer('nowhere.test', { dns: fakeDns({}, {}) }), ResolveError)
    expect(err.host).to.equal('nowhere.test')
  })
})
