import { relayPortBase } from '../../support/net.js'
import { expect } from 'chai'
import { execFileSync } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { hasCommand, requireOrSkip } from '../../support/env.js'
import { TurnServer } from '../../../src/relay/turn-server.js'
import { restApiUsername } from '../../../src/relay/credentials.js'
import { InMemoryRelayMetrics } from '../../../src/relay/metrics.js'
import { Processes, freePort, parseUclient } from './support.js'

const N = 20
const M = 2

describe('TurnServer × coturn turnutils_uclient (127.0.0.1)', function () {
  this.timeout(60_000)
  const procs = new Processes()
  let server: TurnServer | undefined
  let tlsServer: TurnServer | undefined
  let port = 0
  let tlsPort = 0
  let peerPort = 0
  let certDir: string | undefined

  before(async function () {
    requireOrSkip(this, hasCommand('turnutils_uclient') && hasCommand('turnutils_peer'), 'coturn utilities (turnutils_uclient, turnutils_peer) not installed')
    port = await freePort()
    peerPort = await freePort()
    const base = relayPortBase()
    server = await TurnServer.start({
      realm: 'natkit.test',
      users: { alice: 'secret' },
      authSecret: 'rest-secret',
      listen: [{ address: '127.0.0.1', port }],
      allowPeer: ['127.0.0.0/8'],
      portRange: [base, base + 999]
    })
    procs.start('turnutils_peer', ['-L', '127.0.0.1', '-p', String(peerPort)])
    await new Promise((resolve) => setTimeout(resolve, 300))
  })

  after(async () => {
    await procs.killAll()
    await server?.close()
    await tlsServer?.close()
    if (certDir !== undefined) rmSync(certDir, { recursive: true, force: true })
  })

  const cases: Array<{ name: string, flags: string[], expected: number }> = [
    { name: 'UDP with channels (default, RTP+RTCP pairs via EVEN-PORT/RESERVATION-TOKEN)', flags: [], expected: N * M },
    { name: 'UDP with Send indications (-s)', flags: ['-s'], expected: N * M },
    { name: 'UDP without RTCP (-c)', flags: ['-c'], expected: N * M },
    { name: 'UDP client-to-client through two relays (-y)', flags: ['-y'], expected: 2 * N * M },
    { name: 'TCP control connection with channels (-t)', flags: ['-t'], expected: N * M },
    { name: 'TCP control connection with Send indications (-t -s)', flags: ['-t', '-s'], expected: N * M },
    { name: 'RFC 6062 TCP relay (-T)', flags: ['-T'], expected: N * M }
  ]
  for (const c of cases) {
    it(`delivers every message: ${c.name}`, async () => {
      const args = [...c.flags, '-u', 'alice', '-w', 'secret', '-p', String(port), '-e', '127.0.0.1', '-r', String(peerPort), '-n', String(N), '-m', String(M), '-l', '120', '127.0.0.1']
      const { output } = await procs.run('turnutils_uclient', args, 40_000)
      const totals = parseUclient(output)
      expect(totals, output.slice(-2000)).to.not.equal(undefined)
      expect(totals?.sent).to.equal(c.expected)
      expect(totals?.received).to.equal(c.expected)
    })
  }

  it('accepts TURN REST API credentials (-W shared secret)', async () => {
    const user = restApiUsername(3600, Date.now(), 'rest-user')
    const args = ['-W', 'rest-secret', '-u', user, '-p', String(port), '-e', '127.0.0.1', '-r', String(peerPort), '-n', String(N), '-m', String(M), '127.0.0.1']
    const totals = parseUclient((await procs.run('turnutils_uclient', args, 40_000)).output)
    expect(totals?.received).to.equal(N * M)
    // The same REST username signed with another secret is refused.
    const wrong = parseUclient((await procs.run('turnutils_uclient', ['-W', 'not-the-secret', '-u', user, '-p', String(port), '-e', '127.0.0.1', '-r', String(peerPort), '-n', '3', '127.0.0.1'], 20_000)).output)
    expect(wrong?.received ?? 0).to.equal(0)
  })

  it('refuses a wrong password, and keeps serving', async () => {
    const bad = await procs.run('turnutils_uclient', ['-u', 'alice', '-w', 'wrong', '-p', String(port), '-e', '127.0.0.1', '-r', String(peerPort), '-n', '3', '127.0.0.1'], 20_000)
    expect(parseUclient(bad.output)?.received ?? 0).to.equal(0)
    // (uclient -W mints its own fresh REST username, so expired ones are tested in bad-input.test.ts.)
    const good = await procs.run('turnutils_uclient', ['-u', 'alice', '-w', 'secret', '-p', String(port), '-e', '127.0.0.1', '-r', String(peerPort), '-n', String(N), '127.0.0.1'], 40_000)
    const totals = parseUclient(good.output)
    expect(totals?.sent).to.be.greaterThan(0)
    expect(totals?.received).to.equal(totals?.sent)
    const metrics = server?.metrics as InMemoryRelayMetrics
    expect(metrics.total('natkit_relay_auth_failures_total')).to.be.greaterThan(0)
  })

  it('relays channels of several clients (-m 6) through the native fast path, every message delivered and counted', async function () {
    requireOrSkip(this, server?.fastPath.enabled === true, `fast path off: ${server?.fastPath.reason ?? ''}`)
    const base = relayPortBase()
    const fast = await TurnServer.start({
      realm: 'natkit.test', users: { alice: 'secret' }, listen: [{ address: '127.0.0.1', port: 0 }], tcp: false,
      allowPeer: ['127.0.0.0/8'], portRange: [base, base + 499], metrics: new InMemoryRelayMetrics()
    })
    try {
      const core = fast.core
      let coreCalls = 0
      const handle = core.handle.bind(core)
      const handlePeer = core.handlePeer.bind(core)
      core.handle = (...a) => { coreCalls++; return handle(...a) }
      core.handlePeer = (...a) => { coreCalls++; return handlePeer(...a) }
      const n = 100
      const clients = 6
      const args = ['-u', 'alice', '-w', 'secret', '-p', String(fast.addresses.udp[0].port), '-e', '127.0.0.1', '-r', String(peerPort), '-n', String(n), '-m', String(clients), '-l', '120', '127.0.0.1']
      const { output } = await procs.run('turnutils_uclient', args, 40_000)
      const totals = parseUclient(output)
      expect(totals, output.slice(-2000)).to.not.equal(undefined)
      expect(totals?.sent).to.equal(n * clients)
      expect(totals?.received).to.equal(n * clients)
      // Each message crosses the relay twice (client → peer, echoed peer → client): all counted in the metrics, while
      // the core saw only the control traffic and the first packets of each channel.
      const m = fast.metrics as InMemoryRelayMetrics
      expect(m.get('natkit_relay_packets_total', 'client-to-peer')).to.be.at.least(n * clients)
      expect(m.get('natkit_relay_packets_total', 'peer-to-client')).to.be.at.least(n * clients)
      expect(coreCalls, 'packets the core handled').to.be.below(n * clients)
    } finally { await fast.close() }
  })

  it('relays over TLS (-S -t) with a certificate loaded from files', async function () {
    requireOrSkip(this, hasCommand('openssl'), 'openssl not installed (needed to make a test certificate)')
    certDir = mkdtempSync(join(tmpdir(), 'natkit-relay-tls-'))
    const cert = join(certDir, 'cert.pem'); const key = join(certDir, 'key.pem')
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=127.0.0.1'], { stdio: 'ignore' })
    tlsPort = await freePort()
    tlsServer = await TurnServer.start({
      realm: 'natkit.test', users: { alice: 'secret' }, listen: [], udp: false, tcp: false, relayIp: '127.0.0.1',
      tls: { listen: [{ address: '127.0.0.1', port: tlsPort }], certFile: cert, keyFile: key },
      allowPeer: ['127.0.0.0/8']
    })
    const args = ['-S', '-t', '-u', 'alice', '-w', 'secret', '-p', String(tlsPort), '-e', '127.0.0.1', '-r', String(peerPort), '-n', String(N), '-m', String(M), '127.0.0.1']
    const { output } = await procs.run('turnutils_uclient', args, 40_000)
    expect(parseUclient(output)?.received, output.slice(-1500)).to.equal(N * M)
    // A reload re-reads the certificate and keeps the listener.
    await tlsServer.reload({ users: { alice: 'secret', bob: 'pw' } })
    const again = await procs.run('turnutils_uclient', ['-S', '-t', '-u', 'bob', '-w', 'pw', '-p', String(tlsPort), '-e', '127.0.0.1', '-r', String(peerPort), '-n', '5', '127.0.0.1'], 40_000)
    const t = parseUclient(again.output)
    expect(t?.sent).to.be.greaterThan(0)
    expect(t?.received).to.equal(t?.sent)
  })
})
