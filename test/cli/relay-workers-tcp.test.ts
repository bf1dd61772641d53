import { expect } from 'chai'
import { connect, createServer, type Server, type Socket } from 'node:net'
import { natcheckStart } from '../support/cli.js'
import { hasCommand, requireOrSkip } from '../support/env.js'
import { relayPortBase } from '../support/net.js'
import type { Started } from '../support/process.js'
import { Processes, echoPeer, freePort, parseUclient, roundTrip } from '../integration/relay/support.js'
import { makeTestCert } from '../support/tls.js'
import { nativeUdpAvailable } from '../../src/net/native.js'
import { TurnClient } from '../../src/relay/turn-client.js'
import { MessageBuilder, MessageClass, Method, StunMessage } from '../../src/stun/index.js'
import { httpGet, sample } from './support/metrics.js'

const sleep = async (ms: number): Promise<void> => { await new Promise(resolve => setTimeout(resolve, ms)) }

/** The JSON log events of a relay started with --log-format json. */
function events (s: Started): Array<Record<string, unknown>> {
  return s.output().split('\n').filter(l => l.startsWith('{')).map(l => JSON.parse(l) as Record<string, unknown>)
}

/** A TCP echo server on 127.0.0.1 (the RFC 6062 peer). */
async function echoServer (): Promise<{ server: Server, port: number }> {
  const server = createServer(sock => { sock.on('error', () => {}); sock.pipe(sock) })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', () => { resolve() }))
  const a = server.address()
  return { server, port: typeof a === 'object' && a !== null ? a.port : 0 }
}

/** Write `text` on a data connection and read the same number of bytes back (bounded). */
async function echoOver (sock: Socket, text: string): Promise<string> {
  sock.on('error', () => {})
  return await new Promise<string>((resolve, reject) => {
    let got = ''
    const timer = setTimeout(() => { reject(new Error(`no echo of ${JSON.stringify(text)} within 10 s (got ${JSON.stringify(got)})`)) }, 10_000)
    sock.on('data', (d: Buffer) => { got += d.toString(); if (got.length >= text.length) { clearTimeout(timer); resolve(got) } })
    sock.resume()
    sock.write(text)
  })
}

/**
 * A raw TCP connection from `localAddress` that sends a Binding request (a valid, unauthenticated first message) and
 * waits for the answer: 'answered' (the connection stays open), or 'closed' when the relay closes it first.
 */
async function bindingConnection (port: number, localAddress: string): Promise<{ sock: Socket, outcome: 'answered' | 'closed' }> {
  const sock = connect({ host: '127.0.0.1', port, localAddress })
  sock.on('error', () => {})
  const outcome = await new Promise<'answered' | 'closed'>((resolve) => {
    const timer = setTimeout(() => { resolve('closed') }, 10_000)
    sock.once('connect', () => { sock.write(new MessageBuilder(Method.Binding, MessageClass.Request).build()) })
    sock.once('data', (d: Buffer) => {
      clearTimeout(timer)
      const m = StunMessage.decode(d.subarray(0, 20 + d.readUInt16BE(2)))
      resolve(m.method === Method.Binding && m.cls === MessageClass.SuccessResponse ? 'answered' : 'closed')
    })
    sock.once('close', () => { clearTimeout(timer); resolve('closed') })
  })
  return { sock, outcome }
}

/** An idle TCP connection from `localAddress`: whether the relay closed it within `ms` of its connect. */
async function idleConnection (port: number, localAddress: string, ms: number): Promise<{ sock: Socket, closedWithin: boolean }> {
  const sock = connect({ host: '127.0.0.1', port, localAddress })
  sock.on('error', () => {})
  const closedWithin = await new Promise<boolean>((resolve) => {
    let timer: NodeJS.Timeout | undefined
    sock.once('connect', () => { timer = setTimeout(() => { resolve(false) }, ms) })
    sock.once('close', () => { if (timer !== undefined) clearTimeout(timer); resolve(true) })
  })
  return { sock, closedWithin }
}

describe('natcheck relay --workers 2: TCP connections spread over workers (CLI)', function () {
  this.timeout(180_000)
  const procs = new Processes()
  const started: Started[] = []
  afterEach(async () => {
    for (const s of started.splice(0)) await s.stop()
    await procs.killAll()
  })

  async function startRelay (args: string[]): Promise<{ s: Started, port: number, admin: number }> {
    const port = await freePort()
    const admin = await freePort()
    const base = relayPortBase()
    const s = await natcheckStart(['relay', '--listen', `127.0.0.1:${port}`, '--ports', `${base}-${base + 499}`, '--realm', 'natkit.test', '--user', 'u:p',
      '--allow-peer', '127.0.0.0/8', '--admin', `127.0.0.1:${admin}`, '--workers', '2', '--log-format', 'json', ...args], /admin http:/)
    started.push(s)
    expect(s.output()).to.match(/"event":"workers".*"workers":2/)
    return { s, port, admin }
  }

  beforeEach(function () {
    requireOrSkip(this, nativeUdpAvailable(), 'native UDP addon not built (SO_REUSEPORT needs it, else the relay runs one process)')
  })

  it('puts many TCP clients\' allocations on both workers (natkit_relay_worker_* per worker)', async () => {
    const { port, admin } = await startRelay([])
    const clients: TurnClient[] = []
    try {
      // At once: hand-overs queue in node's IPC (one handle in flight per worker), and no byte may be lost meanwhile.
      const settled = await Promise.allSettled(Array.from({ length: 12 }, async () => await TurnClient.allocate({ server: `127.0.0.1:${port}`, transport: 'tcp', credentials: { username: 'u', password: 'p' } })))
      for (const r of settled) if (r.status === 'fulfilled') clients.push(r.value)
      expect(settled.filter(r => r.status === 'rejected').map(r => String((r as PromiseRejectedResult).reason))).to.deep.equal([])
      const body = await httpGet(admin, '/metrics')
      const a0 = sample(body, 'natkit_relay_worker_allocations{worker="0"}')
      const a1 = sample(body, 'natkit_relay_worker_allocations{worker="1"}')
      expect(a0 + a1).to.equal(12)
      // Least-loaded over idle workers alternates: 6 and 6 (a worker busy with nothing else gets no fewer than 4).
      expect(a0).to.be.at.least(4)
      expect(a1).to.be.at.least(4)
      expect(sample(body, 'natkit_relay_worker_client_connections{worker="0"}')).to.equal(a0)
      expect(sample(body, 'natkit_relay_worker_client_connections{worker="1"}')).to.equal(a1)
    } finally {
      await Promise.all(clients.map(async c => { await c.close() }))
    }
  })

  it('loses no byte sent behind the first frame while the primary reads it and hands the connection over', async () => {
    const { port } = await startRelay([])
    // Each client splits its first request, sends the second in the same write as the first's tail, and the rest in
    // writes of their own at 0-40 ms: bytes reach the primary before, during and after its first-frame read and
    // while the hand-over waits in node's IPC queue (one handle in flight per worker; 24 clients at once), and the
    // worker must read every one of them.
    const PER_CONNECTION = 8
    const client = async (): Promise<number> => {
      const reqs = Array.from({ length: PER_CONNECTION }, () => new MessageBuilder(Method.Binding, MessageClass.Request).build())
      const pending = new Set(reqs.map(r => r.subarray(8, 20).toString('hex')))
      const sock = connect({ host: '127.0.0.1', port })
      sock.on('error', () => {})
      return await new Promise<number>((resolve) => {
        let buf = Buffer.alloc(0)
        const finish = (): void => { clearTimeout(timer); sock.destroy(); resolve(PER_CONNECTION - pending.size) }
        const timer = setTimeout(finish, 10_000)
        sock.on('data', (d: Buffer) => {
          buf = Buffer.concat([buf, d])
          while (buf.length >= 20 && buf.length >= 20 + buf.readUInt16BE(2)) {
            const m = StunMessage.decode(buf.subarray(0, 20 + buf.readUInt16BE(2)))
            buf = buf.subarray(20 + buf.readUInt16BE(2))
            if (m.method === Method.Binding && m.cls === MessageClass.SuccessResponse) pending.delete(Buffer.from(m.transactionId).toString('hex'))
          }
          if (pending.size === 0) finish()
        })
        sock.once('close', finish)
        sock.once('connect', () => {
          sock.write(reqs[0].subarray(0, 7))
          setImmediate(() => {
            sock.write(Buffer.concat([reqs[0].subarray(7), reqs[1]]))
            reqs.slice(2).forEach((r, i) => { setTimeout(() => { if (!sock.destroyed) sock.write(r) }, [0, 2, 5, 10, 20, 40][i]) })
          })
        })
      })
    }
    for (let round = 0; round < 3; round++) {
      // 24 at once: under the per-source limit of unauthenticated connections (32), spread over both workers.
      const answered = await Promise.all(Array.from({ length: 24 }, client))
      expect(answered, `round ${round}`).to.deep.equal(Array.from({ length: 24 }, () => PER_CONNECTION))
      // Let the closed connections leave the per-source count before the next round.
      await sleep(300)
    }
  })

  it('RFC 6062: Connect + ConnectionBind and ConnectionAttempt work wherever the data connection is accepted, over several runs', async () => {
    const { s, port } = await startRelay([])
    const echo = await echoServer()
    try {
      for (let run = 0; run < 6; run++) {
        const client = await TurnClient.allocate({ server: `127.0.0.1:${port}`, transport: 'tcp', relayTransport: 'tcp', credentials: { username: 'u', password: 'p' } })
        try {
          // Outbound (§4.3): Connect on the control connection, ConnectionBind on a new one.
          const data = await client.connectTcp({ address: '127.0.0.1', port: echo.port })
          expect(await echoOver(data, `run ${run} outbound`)).to.equal(`run ${run} outbound`)
          data.destroy()
          // Inbound (§4.5): a peer connects to the relayed address; ConnectionAttempt, then ConnectionBind.
          await client.createPermission({ address: '127.0.0.1', port: 0 })
          const attempt = new Promise<Socket>((resolve, reject) => {
            const timer = setTimeout(() => { reject(new Error('no ConnectionAttempt within 10 s')) }, 10_000)
            client.once('tcp-connection', (sock: Socket) => { clearTimeout(timer); resolve(sock) })
          })
          const peer = connect({ host: client.allocation.relayed.address, port: client.allocation.relayed.port })
          peer.on('error', () => {})
          const inbound = await attempt
          inbound.on('error', () => {})
          peer.write(`run ${run} inbound`)
          const got = await new Promise<string>((resolve) => { let t = ''; inbound.on('data', (d: Buffer) => { t += d.toString(); if (t.length >= `run ${run} inbound`.length) resolve(t) }); inbound.resume() })
          expect(got).to.equal(`run ${run} inbound`)
          peer.destroy(); inbound.destroy()
        } finally {
          await client.close()
        }
      }
      // The control connections went to both workers, so data connections were routed to either one.
      const workers = new Set(events(s).filter(e => e.event === 'allocation' && e.protocol === 'tcp').map(e => e.worker))
      expect([...workers].sort()).to.deep.equal([0, 1])
    } finally {
      await new Promise<void>(resolve => echo.server.close(() => { resolve() }))
    }
  })

  it('relays coturn turnutils_uclient -t (TCP) and -T (RFC 6062 TCP relays) clients, spread over both workers', async function () {
    requireOrSkip(this, hasCommand('turnutils_uclient') && hasCommand('turnutils_peer'), 'coturn utilities (turnutils_uclient, turnutils_peer) not installed')
    const { s, port, admin } = await startRelay([])
    const peerPort = await freePort()
    procs.start('turnutils_peer', ['-L', '127.0.0.1', '-p', String(peerPort)])
    await sleep(300)
    const tcp = parseUclient((await procs.run('turnutils_uclient', ['-t', '-u', 'u', '-w', 'p', '-p', String(port), '-e', '127.0.0.1', '-r', String(peerPort), '-n', '5', '-m', '10', '127.0.0.1'], 60_000)).output)
    expect(tcp?.sent).to.equal(50)
    expect(tcp?.received).to.equal(50)
    const workers = new Set(events(s).filter(e => e.event === 'allocation' && e.protocol === 'tcp').map(e => e.worker))
    expect([...workers].sort()).to.deep.equal([0, 1])
    // -T: TCP allocations; uclient's data goes over RFC 6062 peer connections (Connect, ConnectionBind on a new
    // connection that the primary routes by its CONNECTION-ID).
    const before = events(s).filter(e => e.event === 'allocation' && e.transport === 'tcp').length
    const relayed = parseUclient((await procs.run('turnutils_uclient', ['-T', '-u', 'u', '-w', 'p', '-p', String(port), '-e', '127.0.0.1', '-r', String(peerPort), '-n', '5', '-m', '10', '127.0.0.1'], 60_000)).output)
    expect(relayed?.sent).to.equal(50)
    expect(relayed?.received).to.equal(50)
    const tcpAllocations = events(s).filter(e => e.event === 'allocation' && e.transport === 'tcp')
    expect(tcpAllocations.length - before).to.be.at.least(10)
    expect([...new Set(tcpAllocations.map(e => e.worker))].sort()).to.deep.equal([0, 1])
    const body = await httpGet(admin, '/metrics')
    expect(sample(body, 'natkit_relay_tcp_connections_total{kind="outbound"}')).to.be.at.least(10)
    expect(sample(body, 'natkit_relay_bytes_total{direction="client-to-peer"}')).to.be.at.least(5000)
  })

  it('holds the per-IP limit on unauthenticated connections across workers, while a legitimate TCP client is served', async () => {
    const { port, admin } = await startRelay(['--tcp-unauth-per-ip', '8', '--tcp-first-message-timeout', '4'])
    const attacker = '127.0.0.2'
    const held: Socket[] = []
    const clients: TurnClient[] = []
    try {
      // Unauthenticated connections that sent a Binding request: handed over to the workers (both, least-loaded).
      for (let i = 0; i < 4; i++) {
        const c = await bindingConnection(port, attacker)
        held.push(c.sock)
        expect(c.outcome, `binding connection ${i}`).to.equal('answered')
      }
      let body = await httpGet(admin, '/metrics')
      expect(sample(body, 'natkit_relay_worker_client_connections{worker="0"}')).to.equal(2)
      expect(sample(body, 'natkit_relay_worker_client_connections{worker="1"}')).to.equal(2)
      // Idle ones: 4 more fit under the limit of 8 for the source (counted over both workers and the primary)…
      const idle = await Promise.all(Array.from({ length: 4 }, async () => await idleConnection(port, attacker, 1500)))
      held.push(...idle.map(c => c.sock))
      expect(idle.map(c => c.closedWithin)).to.deep.equal([false, false, false, false])
      // …and beyond it every new one is refused at once, whether idle or not.
      const refused = await Promise.all(Array.from({ length: 6 }, async () => await idleConnection(port, attacker, 1500)))
      held.push(...refused.map(c => c.sock))
      expect(refused.map(c => c.closedWithin)).to.deep.equal([true, true, true, true, true, true])
      const late = await bindingConnection(port, attacker)
      held.push(late.sock)
      expect(late.outcome).to.equal('closed')
      // The gauge is the primary's count for the whole relay: 4 in the workers, 4 still in the primary.
      expect(sample(await httpGet(admin, '/metrics'), 'natkit_relay_unauthenticated_connections')).to.equal(8)

      // Meanwhile a legitimate client from another address: 10 TCP allocations (more than the limit: each
      // authenticates, and stops counting), relaying.
      for (let i = 0; i < 10; i++) clients.push(await TurnClient.allocate({ server: `127.0.0.1:${port}`, transport: 'tcp', credentials: { username: 'u', password: 'p' } }))
      const udpPeer = await echoPeer()
      try {
        for (const c of clients.slice(0, 3)) {
          await c.createPermission(udpPeer.endpoint)
          expect(await roundTrip(c, udpPeer.endpoint, 10)).to.equal(10)
        }
      } finally { await udpPeer.close() }

      body = await httpGet(admin, '/metrics')
      expect(sample(body, 'natkit_relay_connections_closed_total{reason="per-ip-limit"}')).to.equal(7)
      expect(sample(body, 'natkit_relay_worker_allocations{worker="0"}') + sample(body, 'natkit_relay_worker_allocations{worker="1"}')).to.equal(10)

      // The attacker's connections close (the idle ones at the first-message deadline; we close the others): its
      // source is counted down in the primary, and a new connection from it is served again.
      for (const h of held) h.destroy()
      await sleep(1000)
      const again = await bindingConnection(port, attacker)
      held.push(again.sock)
      expect(again.outcome).to.equal('answered')
    } finally {
      for (const h of held) h.destroy()
      await Promise.all(clients.map(async c => { await c.close() }))
    }
  })

  it('TLS: each source address\'s connections go to one worker, so RFC 6062 over TLS binds at the allocation\'s worker; sources spread over both', async () => {
    const cert = await makeTestCert()
    const echo = await echoServer()
    try {
      const tlsPort = await freePort()
      const { s, admin } = await startRelay(['--tls-listen', `127.0.0.1:${tlsPort}`, '--tls-cert', cert.certFile, '--tls-key', cert.keyFile])
      expect(s.output()).to.match(new RegExp(`listening tls 127\\.0\\.0\\.1:${tlsPort}`))
      for (let i = 1; i <= 8; i++) {
        const localAddress = `127.0.0.${i}`
        const client = await TurnClient.allocate({ server: `127.0.0.1:${tlsPort}`, transport: 'tls', relayTransport: 'tcp', localAddress, tls: { ca: cert.cert }, credentials: { username: 'u', password: 'p' } })
        try {
          const data = await client.connectTcp({ address: '127.0.0.1', port: echo.port })
          expect(await echoOver(data, `from ${localAddress}`)).to.equal(`from ${localAddress}`)
          data.destroy()
        } finally {
          await client.close()
        }
      }
      const tls = events(s).filter(e => e.event === 'allocation' && e.protocol === 'tls')
      expect(tls).to.have.length(8)
      expect([...new Set(tls.map(e => e.worker))].sort()).to.deep.equal([0, 1])
      const body = await httpGet(admin, '/metrics')
      expect(sample(body, 'natkit_relay_malformed_total{reason="tls-handshake"}')).to.equal(0)
    } finally {
      cert.remove()
      await new Promise<void>(resolve => echo.server.close(() => { resolve() }))
    }
  })
})
