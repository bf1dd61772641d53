/**
 * Connection-level attacks on a TCP STUN/TURN listener, measured against a real server process (natkit's relay, its
 * STUN server, or coturn's turnserver), for docs/security.md. Not a benchmark of speed: it prints what the server
 * did with each attack, and its resident memory.
 *
 *   node dist/bench/stream-attacks.js --target relay|stun|coturn [--seconds 10] [--cli dist/src/cli.js] [-- extra server args]
 *
 * - never-reader: one TCP connection pumps requests (Allocate without credentials for a TURN server, Binding for the
 *   STUN server) and never reads; reports the server's RSS growth and whether/when the server closed the connection.
 * - idle: 200 TCP connections that send nothing; reports how many are still open after each second.
 * - per-ip: 100 idle connections from 127.0.0.1 at once; reports how many the server closed within 1 s.
 * Only loopback; every process started is stopped by PID, also on failure.
 */
import { spawn } from 'node:child_process'
import { connect, type Socket } from 'node:net'
import { resolve } from 'node:path'
import { MessageBuilder, MessageClass, Method, RequestedTransport, Software } from '../src/stun/index.js'
import { CLI, freeUdpPort, killAll, procStat, stopChild, track } from './support.js'

interface Args { target: 'relay' | 'stun' | 'coturn', seconds: number, cli: string, extra: string[] }

function parseArgs (argv: string[]): Args {
  const dash = argv.indexOf('--')
  const own = dash >= 0 ? argv.slice(0, dash) : argv
  const extra = dash >= 0 ? argv.slice(dash + 1) : []
  const get = (name: string): string | undefined => { const i = own.indexOf(name); return i >= 0 ? own[i + 1] : undefined }
  const target = get('--target') ?? 'relay'
  if (target !== 'relay' && target !== 'stun' && target !== 'coturn') throw new Error('--target relay|stun|coturn')
  return { target, seconds: Number(get('--seconds') ?? 10), cli: resolve(get('--cli') ?? CLI), extra }
}

const sleep = async (ms: number): Promise<void> => { await new Promise(resolve => setTimeout(resolve, ms)) }

async function tcpOpen (port: number, localAddress = '127.0.0.1', timeoutMs = 2000): Promise<Socket | undefined> {
  return await new Promise((resolve) => {
    const s = connect({ host: '127.0.0.1', port, localAddress })
    const t = setTimeout(() => { s.destroy(); resolve(undefined) }, timeoutMs)
    s.once('connect', () => { clearTimeout(t); resolve(s) })
    s.once('error', () => { clearTimeout(t); resolve(undefined) })
  })
}

/** Open idle connections; each records when it was closed by the server. */
async function openIdle (port: number, n: number): Promise<Array<{ socket: Socket | undefined, closedAt?: number }>> {
  const out: Array<{ socket: Socket | undefined, closedAt?: number }> = []
  for (let i = 0; i < n; i++) {
    const socket = await tcpOpen(port)
    const entry: { socket: Socket | undefined, closedAt?: number } = { socket }
    if (socket === undefined) entry.closedAt = Date.now()
    socket?.on('error', () => {})
    socket?.on('close', () => { entry.closedAt = Date.now() })
    socket?.resume()
    out.push(entry)
  }
  return out
}

async function neverReader (port: number, pid: number, seconds: number, request: Uint8Array): Promise<Record<string, unknown>> {
  const base = procStat(pid).rssBytes
  const socket = await tcpOpen(port)
  if (socket === undefined) return { error: 'could not connect' }
  socket.pause() // never read: the kernel receive buffer fills, then the server's send queue grows
  const started = Date.now()
  let closedAfterMs: number | undefined
  let written = 0
  socket.on('error', () => {})
  socket.on('close', () => { closedAfterMs = Date.now() - started })
  // Batches of 50 requests, paced by the event loop (a server that reads at most so many messages per read would
  // otherwise see only its own per-read limit at work).
  const batch = Buffer.concat(Array.from({ length: 50 }, () => request))
  let maxRss = base
  const end = started + seconds * 1000
  let nextSample = Date.now()
  while (Date.now() < end && closedAfterMs === undefined) {
    if (socket.writableLength < 1 << 20) { socket.write(batch); written += batch.length }
    if (Date.now() >= nextSample) {
      maxRss = Math.max(maxRss, procStat(pid).rssBytes)
      nextSample = Date.now() + 250
    }
    await sleep(socket.writableLength < 1 << 20 ? 1 : 20)
  }
  maxRss = Math.max(maxRss, procStat(pid).rssBytes)
  socket.destroy()
  return {
    closedByServerAfterMs: closedAfterMs ?? null,
    requestBytesAccepted: written - socket.writableLength,
    rssBaseMiB: +(base / 2 ** 20).toFixed(1),
    rssGrowthMiB: +((maxRss - base) / 2 ** 20).toFixed(1)
  }
}

async function idle (port: number, seconds: number): Promise<Record<string, unknown>> {
  const started = Date.now()
  const conns = await openIdle(port, 200)
  const openAfter: Record<string, number> = {}
  for (let s = 1; s <= seconds; s++) {
    await sleep(started + s * 1000 - Date.now())
    openAfter[`${s}s`] = conns.filter(c => c.closedAt === undefined).length
  }
  const closed = conns.filter(c => c.closedAt !== undefined).map(c => (c.closedAt as number) - started)
  for (const c of conns) c.socket?.destroy()
  return { opened: conns.filter(c => c.socket !== undefined).length, openAfter, lastClosedAtMs: closed.length === 200 ? Math.max(...closed) : null }
}

async function perIp (port: number): Promise<Record<string, unknown>> {
  const started = Date.now()
  const conns = await openIdle(port, 100)
  await sleep(Math.max(0, started + 1000 - Date.now()))
  const closed = conns.filter(c => c.closedAt !== undefined).length
  for (const c of conns) c.socket?.destroy()
  return { opened: 100, closedWithin1s: closed }
}

async function main (): Promise<void> {
  const args = parseArgs(process.argv.slice(2))
  const port = await freeUdpPort()
  const base = 30000 + Math.floor(Math.random() * 20000)
  let cmd: string; let cmdArgs: string[]
  if (args.target === 'relay') {
    cmd = process.execPath
    cmdArgs = [args.cli, 'relay', '--listen', `127.0.0.1:${port}`, '--realm', 'natkit.test', '--user', 'u:p', '--ports', `${base}-${base + 99}`, ...args.extra]
  } else if (args.target === 'stun') {
    cmd = process.execPath
    cmdArgs = [args.cli, 'server', '--listen', `127.0.0.1:${port}`, '--tcp', ...args.extra]
  } else {
    cmd = 'turnserver'
    cmdArgs = ['-c', '/dev/null', '-n', '--no-cli', '--listening-ip', '127.0.0.1', '--listening-port', String(port), '--relay-ip', '127.0.0.1',
      '--realm', 'natkit.test', '--lt-cred-mech', '--user', 'u:p', '--no-tls', '--no-dtls', '--log-file', 'stdout', '--simple-log',
      '--min-port', String(base), '--max-port', String(base + 99), ...args.extra]
  }
  const child = track(spawn(cmd, cmdArgs, { stdio: ['ignore', 'ignore', 'ignore'] }))
  try {
    let up = false
    for (let i = 0; i < 100 && !up; i++) {
      const s = await tcpOpen(port, '127.0.0.1', 200)
      if (s !== undefined) { up = true; s.destroy() } else await sleep(100)
    }
    if (!up || child.pid === undefined) throw new Error(`${cmd} did not start listening on 127.0.0.1:${port}`)
    const request = args.target === 'stun'
      // 72 bytes: natkit's STUN server handles at most 1000 messages per read, and closes a connection whose unread
      // remainder passes 64 KiB, so 20-byte requests would measure that limit instead of the response queue.
      ? new MessageBuilder(Method.Binding, MessageClass.Request).add(Software, 'x'.repeat(48)).build()
      : new MessageBuilder(Method.Allocate, MessageClass.Request).add(RequestedTransport, 17).build()
    const result = {
      target: args.target,
      server: [cmd === process.execPath ? 'node' : cmd, ...cmdArgs].join(' '),
      neverReader: await neverReader(port, child.pid, args.seconds, request),
      idle: await idle(port, args.seconds),
      perIp: await perIp(port)
    }
    console.log(JSON.stringify(result, null, 2))
  } finally {
    await stopChild(child)
    killAll()
  }
}

main().catch((err) => { console.error(err); killAll(); process.exitCode = 1 })
