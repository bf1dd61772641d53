/**
 * `natcheck connect --birthday-spray` on loopback: two peers through a loopback rendezvous, each measuring its mapping
 * through an RFC 5780 STUN server on 127.0.0.1/127.0.0.2. Loopback maps nothing, so both announce an
 * endpoint-independent mapping and the report says the spray is not applicable, and why (the spraying case needs real
 * NATs: test/lab/birthday-spray). Usage errors exit 1.
 */
import { expect } from 'chai'
import { RendezvousServer } from '../../src/rendezvous/server.js'
import { StunServer } from '../../src/stun/server.js'
import { natcheck } from '../support/cli.js'

interface Doc {
  path: { type: string } | null
  delivered: number
  gathering: Array<{ kind: string, ok: boolean, detail: string, reason?: string, probability?: number }>
}

describe('natcheck connect --birthday-spray', function () {
  this.timeout(30_000)
  let rendezvous: RendezvousServer
  let stun: StunServer
  before(async () => {
    rendezvous = await RendezvousServer.start({ listen: { address: '127.0.0.1', port: 0 }, authSecret: 'spray-test' })
    stun = await StunServer.start({ listen: { address: '127.0.0.1', port: 0 }, alternate: { address: '127.0.0.2', port: 0 } })
  })
  after(async () => {
    await rendezvous.close()
    await stun.close()
  })

  it('announces through the rendezvous and reports spray-not-applicable for two endpoint-independent mappings', async () => {
    const args = (me: string, peer: string): string[] => [
      'connect', '--rendezvous', rendezvous.url ?? '', '--id', me, '--peer', peer, '--auth-secret', 'spray-test', '--local-address', '127.0.0.1',
      '--stun', `127.0.0.1:${stun.addresses().udp[0].port}`, '--count', '3', '--timeout', '10000', '--birthday-spray', '16:64', '--spray-rate', '500', '--json'
    ]
    // bob prints the human report.
    const [a, b] = await Promise.all([natcheck(args('alice', 'bob')), natcheck(args('bob', 'alice').filter(x => x !== '--json'))])
    expect(a.code, a.stderr).to.equal(0)
    expect(b.code, b.stderr).to.equal(0)
    expect(b.stdout).to.match(/^birthday spray: spray-not-applicable: both mappings are endpoint-independent: ordinary hole punching opens this pair$/m)
    expect(b.stdout).to.match(/^path: direct, /m)
    for (const r of [a]) {
      const doc = JSON.parse(r.stdout) as Doc
      expect(doc.path?.type).to.equal('direct')
      expect(doc.delivered).to.equal(3)
      const spray = doc.gathering.find(g => g.kind === 'spray')
      expect(spray?.reason, JSON.stringify(doc.gathering)).to.equal('spray-not-applicable')
      expect(spray?.detail).to.match(/both mappings are endpoint-independent/)
      expect(spray?.ok).to.equal(false)
    }
  })

  for (const [args, message] of [
    [['--manual', '--birthday-spray'], /--birthday-spray needs --rendezvous/],
    [['--manual', '--birthday-spray', '256'], /--birthday-spray takes N:M/],
    [['--manual', '--birthday-spray', '0:100'], /--birthday-spray: sockets must be a whole number from 1 to 1024/],
    [['--manual', '--birthday-spray', '256:99999'], /--birthday-spray: probes must be a whole number from 1 to 8192/],
    [['--manual', '--spray-rate', '100'], /--spray-rate goes with --birthday-spray/],
    [['--manual', '--birthday-spray', '--spray-rate', 'fast'], /--spray-rate takes packets per second/]
  ] as const) {
    it(`rejects ${args.slice(1).join(' ')} (exit 1)`, async () => {
      const r = await natcheck(['connect', '--local-address', '127.0.0.1', ...args])
      expect(r.code, r.stderr).to.equal(1)
      expect(r.stderr).to.match(message)
    })
  }
})
