import { expect } from 'chai'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { relayEnv, readRelayConfig, relayOptions } from '../../src/cli/relay.js'
import { serverConnectionOptions } from '../../src/cli/connection-limits.js'
import { InvalidArgumentError } from '../../src/errors.js'
import { natcheck } from '../support/cli.js'

describe('TCP/TLS connection-limit settings (natcheck relay, natcheck server)', function () {
  this.timeout(20_000)
  let dir = ''
  before(() => { dir = mkdtempSync(join(tmpdir(), 'natkit-conn-limits-')) })
  after(() => { rmSync(dir, { recursive: true, force: true }) })

  const base = { realm: 'r', user: ['a:b'] }

  it('turns seconds into ms and passes counts through, from flags, the config file and the environment', async () => {
    expect(relayOptions({ ...base, tcpFirstMessageTimeout: 1.5, tcpAuthTimeout: 20, tcpUnauthPerIp: 4, tcpMaxQueued: 65536 })).to.include({
      firstMessageTimeoutMs: 1500, authTimeoutMs: 20_000, maxUnauthenticatedPerIp: 4, maxQueuedBytes: 65536
    })
    const file = join(dir, 'relay.json')
    writeFileSync(file, JSON.stringify({ ...base, tcpAuthTimeout: 10, tcpUnauthPerIp: 3 }))
    expect(await readRelayConfig(file)).to.include({ tcpAuthTimeout: 10, tcpUnauthPerIp: 3 })
    expect(relayEnv({ NATKIT_RELAY_TCP_MAX_QUEUED: '1000', NATKIT_RELAY_TCP_FIRST_MESSAGE_TIMEOUT: '2' })).to.include({ tcpMaxQueued: 1000, tcpFirstMessageTimeout: 2 })
    expect(serverConnectionOptions({ tcpIdleTimeout: 3, tcpPerIp: 5 })).to.include({ idleTimeoutMs: 3000, maxConnectionsPerIp: 5 })
  })

  it('leaves the defaults to the servers when nothing is given', () => {
    const o = relayOptions(base)
    expect([o.firstMessageTimeoutMs, o.authTimeoutMs, o.maxUnauthenticatedPerIp, o.maxQueuedBytes]).to.deep.equal([undefined, undefined, undefined, undefined])
  })

  it('refuses a config value that is not a number', async () => {
    const file = join(dir, 'bad.json')
    writeFileSync(file, JSON.stringify({ ...base, tcpAuthTimeout: '10' }))
    let err: unknown
    try { await readRelayConfig(file) } catch (e) { err = e }
    expect(err).to.be.instanceOf(InvalidArgumentError)
  })

  const usage: Array<{ args: string[], says: RegExp }> = [
    { args: ['relay', '--realm', 'r', '--user', 'a:b', '--tcp-auth-timeout', '0'], says: /--tcp-auth-timeout must be a positive number of seconds/ },
    { args: ['relay', '--realm', 'r', '--user', 'a:b', '--tcp-first-message-timeout', 'soon'], says: /--tcp-first-message-timeout/ },
    { args: ['relay', '--realm', 'r', '--user', 'a:b', '--tcp-unauth-per-ip', '2.5'], says: /--tcp-unauth-per-ip must be a positive whole number/ },
    { args: ['server', '--listen', '127.0.0.1:0', '--tcp', '--tcp-max-queued', '-1'], says: /--tcp-max-queued must be a positive whole number/ },
    { args: ['server', '--listen', '127.0.0.1:0', '--tcp', '--tcp-idle-timeout', '0'], says: /--tcp-idle-timeout/ }
  ]
  for (const u of usage) {
    it(`exits 1 on ${u.args.slice(-2).join(' ')} (${u.args[0]})`, async () => {
      const r = await natcheck(u.args)
      expect(r.code, r.stderr).to.equal(1)
      expect(r.stdout).to.equal('')
      expect(r.stderr).to.match(u.says)
    })
  }
})
