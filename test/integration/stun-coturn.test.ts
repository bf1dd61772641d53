import { expect } from 'chai'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { StunServer, stunBinding, StunClient } from '../../src/stun/index.js'
import { StunErrorResponse } from '../../src/errors.js'
import { expectRejection } from '../support/assert.js'
import { hasCommand, requireOrSkip } from '../support/env.js'
import { freePort } from '../support/net.js'
import { run, start, type Started } from '../support/process.js'

/**
 * Interop with coturn's real programs, both ways, on loopback (127.0.0.1 and 127.0.0.2).
 */
describe('interop: coturn clients against natkit\'s STUN server', function () {
  this.timeout(30_000)
  let server: StunServer
  let p1: number
  let p2: number

  before(async function () {
    requireOrSkip(this, hasCommand('turnutils_stunclient') && hasCommand('turnutils_natdiscovery'), 'coturn is not installed (apt-get install coturn)')
    server = await StunServer.start({ listen: { address: '127.0.0.1', port: 0 }, alternate: { address: '127.0.0.2', port: 0 }, tcp: true })
    const [a, , , d] = server.addresses().udp
    p1 = a.port; p2 = d.port
  })
  after(async () => { await server?.close() })

  it('turnutils_stunclient gets its reflexive address', async () => {
    const r = await run('turnutils_stunclient', ['-p', String(p1), '127.0.0.1'], { timeoutMs: 10_000 })
    expect(r.code, r.stdout + r.stderr).to.equal(0)
    expect(r.stdout).to.match(/UDP reflexive addr: 127\.0\.0\.1:\d+/)
  })

  it('turnutils_stunclient -f (RFC 5780 forced) gets all three responses with the right origins', async () => {
    const r = await run('turnutils_stunclient', ['-f', '-p', String(p1), '127.0.0.1'], { timeoutMs: 10_000 })
    expect(r.code, r.stdout + r.stderr).to.equal(0)
    for (const n of [1, 2, 3]) expect(r.stdout).to.include(`RFC 5780 response ${n}`)
    expect(r.stdout).to.include(`Other addr: : 127.0.0.2:${p2}`)
    expect(r.stdout).to.include(`Response origin: : 127.0.0.2:${p2}`) // the change-IP-and-port answer came from (IP2,P2)
  })

  it('turnutils_natdiscovery -m -f reaches a verdict: endpoint-independent mapping and filtering on loopback', async () => {
    const r = await run('turnutils_natdiscovery', ['-m', '-f', '-p', String(p1), '127.0.0.1'], { timeoutMs: 25_000 })
    expect(r.stdout).to.include('NAT with Endpoint Independent Mapping!')
    expect(r.stdout).to.include('NAT with Endpoint Independent Filtering!')
  })
})

describe('interop: natkit\'s client against coturn\'s turnserver --stun-only', function () {
  this.timeout(30_000)
  let turnserver: Started | undefined
  let port: number
  let dir: string

  before(async function () {
    requireOrSkip(this, hasCommand('turnserver'), 'coturn is not installed (apt-get install coturn)')
    port = await freePort()
    dir = mkdtempSync(join(tmpdir(), 'natkit-coturn-'))
    turnserver = await start('turnserver', [
      '-c', '/dev/null', '--stun-only', '-n', '--no-cli', '--listening-ip', '127.0.0.1', '--listening-port', String(port),
      '--simple-log', '--log-file', 'stdout', '--pidfile', join(dir, 'turnserver.pid'), '--no-tls', '--no-dtls'
    ], { ready: /listener opened on : 127\.0\.0\.1|Total (UDP|General) servers|IPv4. UDP listener opened/, timeoutMs: 10_000 })
  })
  after(async () => {
    await turnserver?.stop()
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true })
  })

  it('gets the mapped address over UDP', async () => {
    const r = await stunBinding(`127.0.0.1:${port}`, { timeoutMs: 5000 })
    expect(r.mapped.address).to.equal('127.0.0.1')
    expect(r.mapped.port).to.equal(r.local.port)
    expect(r.software).to.match(/Coturn/i)
  })

  it('gets the mapped address over TCP', async () => {
    const r = await stunBinding(`127.0.0.1:${port}`, { transport: 'tcp', timeoutMs: 5000 })
    expect(r.mapped).to.deep.equal(r.local)
  })

  it('gets 420 (no alternate address) for a CHANGE-REQUEST, not a hang', async () => {
    const client = await StunClient.create({ localAddress: '127.0.0.1' })
    try {
      const err = await expectRejection(client.binding({ address: '127.0.0.1', port }, { changeRequest: { ip: true, port: true }, rtoMs: 100, rc: 3 }), StunErrorResponse)
      expect(err.errorCode).to.equal(420)
    } finally {
      await client.close()
    }
  })
})
