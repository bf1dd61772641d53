import { relayPortBase } from '../support/net.js'
import { expect } from 'chai'
import { natcheckStart } from '../support/cli.js'
import { hasCommand, requireOrSkip } from '../support/env.js'
import { run, type Started } from '../support/process.js'
import { Processes, freePort, parseUclient } from '../integration/relay/support.js'
import { nativeUdpAvailable } from '../../src/net/native.js'
import { TurnClient } from '../../src/relay/turn-client.js'
import { StunErrorResponse } from '../../src/errors.js'
import { httpGet, sample } from './support/metrics.js'

describe('natcheck relay --workers (CLI)', function () {
  this.timeout(120_000)
  const procs = new Processes()
  const started: Started[] = []
  after(async () => {
    for (const s of started) await s.stop()
    await procs.killAll()
  })

  async function startRelay (args: string[], env?: NodeJS.ProcessEnv): Promise<{ s: Started, port: number, admin: number }> {
    const port = await freePort()
    const admin = await freePort()
    const base = relayPortBase()
    const argv = ['relay', '--listen', `127.0.0.1:${port}`, '--ports', `${base}-${base + 999}`, '--realm', 'natkit.test', '--user', 'u:p',
      '--allow-peer', '127.0.0.0/8', '--admin', `127.0.0.1:${admin}`, ...args]
    const saved = { ...process.env }
    if (env !== undefined) Object.assign(process.env, env)
    try {
      const s = await natcheckStart(argv, /admin http:/)
      started.push(s)
      return { s, port, admin }
    } finally {
      if (env !== undefined) { for (const k of Object.keys(env)) delete process.env[k]; Object.assign(process.env, saved) }
    }
  }

  it('with 2 workers relays many uclient clients over UDP and TCP, spread over both workers, with one aggregated /metrics', async function () {
    requireOrSkip(this, hasCommand('turnutils_uclient') && hasCommand('turnutils_peer'), 'coturn utilities (turnutils_uclient, turnutils_peer) not installed')
    requireOrSkip(this, nativeUdpAvailable(), 'native UDP addon not built (SO_REUSEPORT needs it)')
    const { s, port, admin } = await startRelay(['--workers', '2', '--log-format', 'json'])
    expect(s.output()).to.match(/"event":"workers".*"workers":2/)
    const peerPort = await freePort()
    procs.start('turnutils_peer', ['-L', '127.0.0.1', '-p', String(peerPort)])
    await new Promise((resolve) => setTimeout(resolve, 300))
    // Default uclient: RTP/RTCP pairs with EVEN-PORT R=1 and RESERVATION-TOKEN, whose second Allocate comes from
    // another client port and so may reach the other worker.
    const udp = parseUclient((await procs.run('turnutils_uclient', ['-u', 'u', '-w', 'p', '-p', String(port), '-e', '127.0.0.1', '-r', String(peerPort), '-n', '5', '-m', '20', '127.0.0.1'], 60_000)).output)
    expect(udp?.sent).to.equal(100)
    expect(udp?.received).to.equal(100)
    const tcp = parseUclient((await procs.run('turnutils_uclient', ['-t', '-u', 'u', '-w', 'p', '-p', String(port), '-e', '127.0.0.1', '-r', String(peerPort), '-n', '5', '-m', '10', '127.0.0.1'], 60_000)).output)
    expect(tcp?.sent).to.equal(50)
    expect(tcp?.received).to.equal(50)

    const body = await httpGet(admin, '/metrics')
    const allocations = s.output().split('\n').filter(l => l.startsWith('{')).map(l => JSON.parse(l) as Record<string, unknown>).filter(e => e.event === 'allocation')
    const logged = allocations.length
    expect(logged).to.be.at.least(30)
    // One /metrics for the whole relay: the sum over workers equals what the workers logged.
    expect(sample(body, 'natkit_relay_allocations_total{transport="udp"}')).to.equal(logged)
    expect(sample(body, 'natkit_relay_packets_total{direction="client-to-peer"}')).to.be.at.least(150)
    expect(sample(body, 'natkit_relay_packets_total{direction="peer-to-client"}')).to.be.at.least(150)
    // Both workers took part (30+ client ports hashed over 2 sockets: all on one has odds below 1e-8), and each
    // reports its own load.
    expect([...new Set(allocations.map(e => e.worker))].sort()).to.deep.equal([0, 1])
    expect(body).to.match(/^natkit_relay_worker_cpu_seconds_total\{worker="0"\} /m)
    expect(body).to.match(/^natkit_relay_worker_cpu_seconds_total\{worker="1"\} /m)
  })

  it('holds the per-user quota across workers: 10 of 16 allocations, spread over both', async function () {
    requireOrSkip(this, nativeUdpAvailable(), 'native UDP addon not built (SO_REUSEPORT needs it)')
    const { s, port, admin } = await startRelay(['--workers', '2', '--user-quota', '10', '--log-format', 'json'])
    const clients: TurnClient[] = []
    const codes: number[] = []
    try {
      for (let i = 0; i < 16; i++) {
        try {
          clients.push(await TurnClient.allocate({ server: `127.0.0.1:${port}`, credentials: { username: 'u', password: 'p' } }))
          codes.push(200)
        } catch (err) {
          codes.push(err instanceof StunErrorResponse ? err.errorCode : -1)
        }
        // Counts travel between workers over IPC: let each arrive (sub-millisecond; 30 ms is ample).
        await new Promise((resolve) => setTimeout(resolve, 30))
      }
      expect(codes.filter(c => c === 200)).to.have.length(10)
      expect(codes.filter(c => c === 486)).to.have.length(6)
      const events = s.output().split('\n').filter(l => l.startsWith('{')).map(l => JSON.parse(l) as Record<string, unknown>)
      const byWorker = new Set(events.filter(e => e.event === 'allocation').map(e => e.worker))
      expect([...byWorker].sort()).to.deep.equal([0, 1])
      expect(events.filter(e => e.event === 'quota-refused').every(e => e.quota === 'user' && e.limit === 10)).to.equal(true)
      const body = await httpGet(admin, '/metrics')
      expect(sample(body, 'natkit_relay_allocations')).to.equal(10)
      expect(sample(body, 'natkit_relay_quota_refusals_total{quota="user"}')).to.equal(6)
    } finally {
      await Promise.all(clients.map(async c => { await c.close() }))
    }
  })

  it('does not leave its workers behind when the primary is killed with SIGKILL', async function () {
    requireOrSkip(this, nativeUdpAvailable(), 'native UDP addon not built (SO_REUSEPORT needs it)')
    const { s } = await startRelay(['--workers', '2'])
    const pid = s.child.pid as number
    const children = (await run('pgrep', ['-P', String(pid)], { timeoutMs: 5000 })).stdout.split('\n').filter(l => l !== '').map(Number)
    expect(children).to.have.length(2)
    process.kill(pid, 'SIGKILL')
    const alive = (): number[] => children.filter(c => { try { process.kill(c, 0); return true } catch { return false } })
    const end = Date.now() + 15_000
    while (alive().length > 0 && Date.now() < end) await new Promise((resolve) => setTimeout(resolve, 100))
    const left = alive()
    for (const c of left) process.kill(c, 'SIGKILL') // never leave them, even when the test fails
    expect(left).to.deep.equal([])
  })

  it('falls back to one process, and says so, without native UDP I/O', async () => {
    const { s } = await startRelay(['--workers', '2'], { NATKIT_NATIVE: '0' })
    expect(s.output()).to.match(/workers 1, not 2: SO_REUSEPORT needs native UDP I\/O: NATKIT_NATIVE=0/)
    expect(s.output()).to.not.match(/workers 2 \(/)
  })
})
