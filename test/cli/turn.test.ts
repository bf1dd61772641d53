import { expect } from 'chai'
import { TurnServer } from '../../src/relay/turn-server.js'
import { natcheck } from '../support/cli.js'

describe('natcheck turn', function () {
  this.timeout(30_000)
  let open: TurnServer
  let strict: TurnServer
  let misadvertised: TurnServer

  before(async () => {
    const base = { realm: 'natkit.test', users: { alice: 'wonderland' }, authSecret: 'rest-secret' }
    open = await TurnServer.start({ ...base, listen: [{ address: '127.0.0.1', port: 0 }], allowPeer: ['127.0.0.0/8'] })
    // Default peer policy: loopback peers are denied, as on a real deployment.
    strict = await TurnServer.start({ ...base, listen: [{ address: '127.0.0.1', port: 0 }] })
    // Advertises a relayed address nobody listens on: allocation works, relayed traffic never arrives.
    misadvertised = await TurnServer.start({ ...base, listen: [{ address: '127.0.0.1', port: 0 }], allowPeer: ['127.0.0.0/8'], externalIp: '127.0.0.9' })
  })
  after(async () => { await open?.close(); await strict?.close(); await misadvertised?.close() })

  const at = (s: TurnServer): string => `127.0.0.1:${s.addresses.udp[0].port}`

  for (const transport of ['udp', 'tcp'] as const) {
    it(`reports relayed address, RTT, loss and throughput over ${transport.toUpperCase()} (JSON)`, async () => {
      const r = await natcheck(['turn', at(open), '--user', 'alice:wonderland', '--transport', transport, '--json', '--count', '20'])
      expect(r.code, r.stderr + r.stdout).to.equal(0)
      const doc = JSON.parse(r.stdout)
      expect(doc).to.include({ schemaVersion: 1, ok: true, transport, failure: null })
      expect(doc.allocation.relayed.address).to.equal('127.0.0.1')
      expect(doc.rttMs).to.be.a('number')
      expect(doc.loss).to.be.within(0, 1)
      expect(doc.throughputMbps).to.be.above(0)
      expect(doc.steps.map((s: { step: string }) => s.step)).to.deep.equal(['resolve', 'reach', 'allocate', 'permission', 'relay-send', 'relay-channel', 'refresh', 'release'])
    })
  }

  it('works with the REST shared secret', async () => {
    const r = await natcheck(['turn', at(open), '--auth-secret', 'rest-secret', '--json', '--count', '10'])
    expect(r.code, r.stderr).to.equal(0)
    expect(JSON.parse(r.stdout).ok).to.equal(true)
  })

  const failures = [
    { name: 'wrong password', server: () => at(open), args: ['--user', 'alice:wrong'], step: 'allocate', fix: /Wrong credentials/ },
    { name: 'wrong REST secret', server: () => at(open), args: ['--auth-secret', 'nope'], step: 'allocate', fix: /auth secret differs/ },
    { name: 'peer denied by the server\'s policy', server: () => at(strict), args: ['--user', 'alice:wonderland'], step: 'permission', fix: /--allow-peer/ },
    { name: 'relayed traffic never arrives', server: () => at(misadvertised), args: ['--user', 'alice:wonderland'], step: 'relay-send', fix: /relay port range .* blocked|external-ip/ }
  ]
  for (const f of failures) {
    it(`names the failing step and the fix: ${f.name}`, async () => {
      const r = await natcheck(['turn', f.server(), ...f.args, '--json', '--count', '5', '--timeout', '2000'])
      expect(r.code).to.equal(2)
      const doc = JSON.parse(r.stdout)
      expect(doc.ok).to.equal(false)
      expect(doc.failure.step).to.equal(f.step)
      expect(doc.failure.fix).to.match(f.fix)
    })
  }

  it('says the server is unreachable when nothing answers', async () => {
    const r = await natcheck(['turn', '127.0.0.1:9', '--user', 'a:b', '--timeout', '800'])
    expect(r.code).to.equal(2)
    expect(r.stdout).to.match(/failed at "reach"/)
    expect(r.stdout).to.match(/Nothing answered over UDP/)
  })

  it('exits 1 without credentials', async () => {
    const r = await natcheck(['turn', '127.0.0.1'])
    expect(r.code).to.equal(1)
    expect(r.stderr).to.match(/--user NAME:PASS or --auth-secret/)
  })
})
