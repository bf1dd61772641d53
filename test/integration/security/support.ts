import { readFileSync } from 'node:fs'
import { get } from 'node:http'
import { connect, type Socket } from 'node:net'
import { connect as tlsConnect } from 'node:tls'
import { MessageBuilder, MessageClass, Method, StunMessage, readStreamFrame } from '../../../src/stun/index.js'

/** Helpers of the connection-level attack tests (loopback only; every socket is destroyed by `closeAll`). */

export const sleep = async (ms: number): Promise<void> => { await new Promise(resolve => setTimeout(resolve, ms)) }

/** Wait (bounded) until `cond()` holds; whether it did. */
export async function waitUntil (cond: () => boolean, timeoutMs: number, stepMs = 25): Promise<boolean> {
  const end = Date.now() + timeoutMs
  while (Date.now() < end) {
    if (cond()) return true
    await sleep(stepMs)
  }
  return cond()
}

/** A client TCP connection and when the server closed it. */
export interface Conn {
  readonly socket: Socket
  readonly openedAt: number
  closedAt: number | undefined
  /** Bytes the server sent. */
  received: number
}

/** Every connection a test opened, to destroy in `after`. */
export class Conns {
  readonly all: Conn[] = []

  /** Open one TCP connection (bounded wait); undefined when it could not connect at all. */
  async open (port: number, localAddress = '127.0.0.1', host = '127.0.0.1'): Promise<Conn | undefined> {
    return await new Promise((resolve) => {
      const socket = connect({ host, port, localAddress })
      const conn: Conn = { socket, openedAt: Date.now(), closedAt: undefined, received: 0 }
      const t = setTimeout(() => { socket.destroy(); resolve(undefined) }, 3000)
      socket.on('error', () => {})
      socket.on('close', () => { conn.closedAt ??= Date.now() })
      socket.on('data', (d: Buffer) => { conn.received += d.length })
      socket.once('connect', () => { clearTimeout(t); this.all.push(conn); resolve(conn) })
      socket.once('close', () => { clearTimeout(t); resolve(undefined) })
    })
  }

  /** Open `n` idle connections (they send nothing). */
  async openIdle (port: number, n: number, localAddress = '127.0.0.1'): Promise<Conn[]> {
    const out: Conn[] = []
    for (let i = 0; i < n; i++) {
      const c = await this.open(port, localAddress)
      if (c === undefined) throw new Error(`connection ${i} to port ${port} failed`)
      out.push(c)
    }
    return out
  }

  closeAll (): void {
    for (const c of this.all) c.socket.destroy()
    this.all.length = 0
  }
}

/** A TCP connection that completes nothing but the TLS handshake (then sends nothing). */
export async function tlsIdle (port: number, ca: Buffer): Promise<Conn> {
  return await new Promise((resolve, reject) => {
    const socket = tlsConnect({ host: '127.0.0.1', port, ca, servername: 'localhost' })
    const conn: Conn = { socket, openedAt: Date.now(), closedAt: undefined, received: 0 }
    socket.on('close', () => { conn.closedAt ??= Date.now() })
    socket.once('secureConnect', () => { resolve(conn) })
    socket.once('error', reject)
  })
}

/** A Binding request over TCP on `socket`: resolves with the response, or undefined after `timeoutMs`. */
export async function tcpBinding (socket: Socket, timeoutMs = 2000): Promise<StunMessage | undefined> {
  return await tcpRequest(socket, new MessageBuilder(Method.Binding, MessageClass.Request).build(), timeoutMs)
}

/** A STUN request over TCP on `socket`: resolves with the response, or undefined after `timeoutMs` or a close. */
export async function tcpRequest (socket: Socket, req: Buffer, timeoutMs = 2000): Promise<StunMessage | undefined> {
  return await new Promise((resolve) => {
    let buffer = Buffer.alloc(0)
    const done = (m: StunMessage | undefined): void => { clearTimeout(t); socket.off('data', onData); socket.off('close', onClose); resolve(m) }
    const onData = (d: Buffer): void => {
      buffer = Buffer.concat([buffer, d])
      for (;;) {
        const f = readStreamFrame(buffer)
        if (f.kind !== 'stun') return
        buffer = buffer.subarray(f.length)
        const m = StunMessage.decode(f.frame)
        if (Buffer.from(m.transactionId).equals(Buffer.from(req.subarray(8, 20)))) { done(m); return }
      }
    }
    const onClose = (): void => { done(undefined) }
    const t = setTimeout(() => { done(undefined) }, timeoutMs)
    socket.on('data', onData)
    socket.once('close', onClose)
    socket.write(req)
  })
}

/** Resident memory of a process in bytes (/proc/PID/status VmRSS). */
export function rssBytes (pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
  if (m === null) throw new Error(`no VmRSS for ${pid}`)
  return Number(m[1]) * 1024
}

/**
 * Pump requests down a connection that never reads, until the server closes it or `timeoutMs` passes. Returns
 * whether it was closed, the request bytes written, and the server's largest RSS growth seen meanwhile.
 */
export async function pumpNeverReading (conn: Conn, request: Uint8Array, serverPid: number, timeoutMs: number): Promise<{ closed: boolean, written: number, rssGrowth: number }> {
  conn.socket.pause()
  conn.socket.removeAllListeners('data')
  const base = rssBytes(serverPid)
  let peak = base
  let written = 0
  const batch = Buffer.concat(Array.from({ length: 50 }, () => request))
  const end = Date.now() + timeoutMs
  let sample = 0
  while (conn.closedAt === undefined && Date.now() < end) {
    if (conn.socket.writableLength < 1 << 20) { conn.socket.write(batch); written += batch.length }
    if (++sample % 20 === 0) peak = Math.max(peak, rssBytes(serverPid))
    await sleep(conn.socket.writableLength < 1 << 20 ? 1 : 20)
  }
  peak = Math.max(peak, rssBytes(serverPid))
  return { closed: conn.closedAt !== undefined, written, rssGrowth: peak - base }
}

/** GET a Prometheus text page and read one sample (0 when absent). */
export async function metric (port: number, name: string, labels = ''): Promise<number> {
  const body = await new Promise<string>((resolve, reject) => {
    const req = get({ host: '127.0.0.1', port, path: '/metrics', timeout: 5000 }, (res) => {
      let b = ''
      res.on('data', (d: Buffer) => { b += d.toString() })
      res.on('end', () => { resolve(b) })
    })
    req.on('timeout', () => { req.destroy(new Error('timeout')) })
    req.on('error', reject)
  })
  const line = body.split('\n').find(l => l.startsWith(`${name}${labels} `))
  return line === undefined ? 0 : Number(line.split(' ')[1])
}
