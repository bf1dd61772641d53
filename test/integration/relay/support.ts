import { spawn, type ChildProcess } from 'node:child_process'
import { createSocket, type Socket } from 'node:dgram'
import { createServer } from 'node:net'
import type { Endpoint } from '../../../src/net/endpoint.js'
import { UdpSocket } from '../../../src/net/udp.js'
import { expect } from 'chai'
import {
  ChannelNumber, MessageBuilder, MessageClass, Method, Nonce, Realm, RequestedTransport, StunMessage, TransportProtocol, Username,
  XorPeerAddress, XorRelayedAddress, longTermKey
} from '../../../src/stun/index.js'
import type { TurnClient } from '../../../src/relay/turn-client.js'

/** Child processes started by a test, killed by PID in after hooks. */
export class Processes {
  private readonly children = new Set<ChildProcess>()

  /** Run a command to completion (or kill it after `timeoutMs`), collecting stdout+stderr. */
  run (cmd: string, args: string[], timeoutMs: number): Promise<{ code: number | null, output: string }> {
    return new Promise((resolve) => {
      const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] })
      this.children.add(child)
      let output = ''
      child.stdout?.on('data', (d: Buffer) => { output += d.toString() })
      child.stderr?.on('data', (d: Buffer) => { output += d.toString() })
      const timer = setTimeout(() => { child.kill('SIGKILL') }, timeoutMs)
      child.on('close', (code) => {
        clearTimeout(timer)
        this.children.delete(child)
        resolve({ code, output })
      })
      child.on('error', () => { /* reported through close */ })
    })
  }

  /** Start a long-running process (killed by killAll). */
  start (cmd: string, args: string[]): ChildProcess {
    const child = spawn(cmd, args, { stdio: 'ignore' })
    child.on('error', () => {})
    this.children.add(child)
    child.on('close', () => { this.children.delete(child) })
    return child
  }

  /** Kill every child by its PID and wait (bounded) for them to exit. */
  async killAll (): Promise<void> {
    const waits = [...this.children].map((c) => new Promise<void>((resolve) => {
      if (c.exitCode !== null || c.pid === undefined) { resolve(); return }
      const t = setTimeout(resolve, 2000)
      c.once('close', () => { clearTimeout(t); resolve() })
      try { process.kill(c.pid, 'SIGKILL') } catch { resolve() }
    }))
    await Promise.all(waits)
    this.children.clear()
  }
}

/** A port free on 127.0.0.1 for both UDP and TCP (best effort). */
export async function freePort (): Promise<number> {
  for (let i = 0; i < 20; i++) {
    const port = await new Promise<number>((resolve, reject) => {
      const s = createSocket('udp4')
      s.once('error', reject)
      s.bind(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => { resolve(p) }) })
    })
    const tcpOk = await new Promise<boolean>((resolve) => {
      const srv = createServer()
      srv.once('error', () => { resolve(false) })
      srv.listen(port, '127.0.0.1', () => { srv.close(() => { resolve(true) }) })
    })
    if (tcpOk) return port
  }
  throw new Error('no free port')
}

/** uclient's final totals: `tot_send_msgs=N, tot_recv_msgs=M` and lost packets. */
export function parseUclient (output: string): { sent: number, received: number, lost: number } | undefined {
  const totals = [...output.matchAll(/start_mclient: tot_send_msgs=(\d+), tot_recv_msgs=(\d+)/g)].pop()
  const lost = /Total lost packets (\d+)/.exec(output)
  if (totals === undefined) return undefined
  return { sent: Number(totals[1]), received: Number(totals[2]), lost: lost === null ? -1 : Number(lost[1]) }
}

/** Send one STUN request over UDP from a fresh socket and wait (bounded) for the answer. */
export async function udpRequest (server: Endpoint, data: Uint8Array, socket?: UdpSocket, timeoutMs = 2000): Promise<StunMessage | undefined> {
  const s = socket ?? await UdpSocket.bind({ address: '127.0.0.1', port: 0 })
  try {
    return await new Promise<StunMessage | undefined>((resolve) => {
      const t = setTimeout(() => { resolve(undefined) }, timeoutMs)
      s.onMessage((d) => {
        try { const m = StunMessage.decode(d); clearTimeout(t); resolve(m) } catch { /* keep waiting */ }
      })
      s.send(data, server)
    })
  } finally {
    if (socket === undefined) await s.close()
  }
}

/** A UDP echo peer on 127.0.0.1. */
export async function echoPeer (): Promise<{ socket: Socket, endpoint: Endpoint, close: () => Promise<void> }> {
  const socket = createSocket('udp4')
  await new Promise<void>(resolve => socket.bind(0, '127.0.0.1', () => { resolve() }))
  socket.on('message', (msg, rinfo) => { socket.send(msg, rinfo.port, rinfo.address) })
  return { socket, endpoint: { address: '127.0.0.1', port: socket.address().port }, close: async () => { await new Promise<void>(resolve => socket.close(() => { resolve() })) } }
}

/** Send `count` numbered datagrams to the peer through the client and collect the echoes (bounded wait). */
export async function roundTrip (client: TurnClient, peer: Endpoint, count: number, size = 100): Promise<number> {
  const seen = new Set<number>()
  const onData = (data: Buffer, from: Endpoint): void => { if (from.port === peer.port && data.length === size) seen.add(data.readUInt32BE(0)) }
  client.on('data', onData)
  try {
    for (let i = 0; i < count; i++) {
      const b = Buffer.alloc(size, 0x61); b.writeUInt32BE(i, 0)
      client.send(b, peer)
      if (i % 20 === 19) await new Promise(resolve => setTimeout(resolve, 2))
    }
    const deadline = Date.now() + 3000
    while (seen.size < count && Date.now() < deadline) await new Promise(resolve => setTimeout(resolve, 20))
    return seen.size
  } finally {
    client.off('data', onData)
  }
}


/**
 * A TURN client that builds each request itself (for tests that need exact bytes): long-term credentials of
 * `user`/`pass` in `realm`, the nonce learnt from the first 401.
 */
export class MiniClient {
  nonce = ''
  protected constructor (readonly socket: UdpSocket, readonly server: Endpoint, readonly user: string, readonly pass: string, readonly realm: string) {}
  static async open (server: Endpoint, user = 'alice', pass = 'secret', realm = 'natkit.test'): Promise<MiniClient> {
    return new MiniClient(await UdpSocket.bind({ address: '127.0.0.1', port: 0 }), server, user, pass, realm)
  }

  async request (method: number, add: (b: MessageBuilder) => void): Promise<StunMessage | undefined> {
    if (this.nonce === '') {
      const challenge = await udpRequest(this.server, new MessageBuilder(method, MessageClass.Request).build(), this.socket)
      this.nonce = challenge?.get(Nonce) ?? ''
    }
    const b = new MessageBuilder(method, MessageClass.Request)
    add(b)
    b.add(Username, this.user).add(Realm, this.realm).add(Nonce, this.nonce).integrity(longTermKey(this.user, this.realm, this.pass))
    return await udpRequest(this.server, b.fingerprint().build(), this.socket)
  }

  close (): Promise<void> { return this.socket.close() }
}

/** A MiniClient (alice:secret, realm natkit.test) that, after its requests, collects what the server sends (ChannelData from the peer). */
export class RawClient extends MiniClient {
  static readonly CHANNEL = 0x4000
  readonly fromServer: Buffer[] = []
  static override async open (server: Endpoint): Promise<RawClient> {
    return new RawClient(await UdpSocket.bind({ address: '127.0.0.1', port: 0 }), server, 'alice', 'secret', 'natkit.test')
  }

  override async request (method: number, add: (b: MessageBuilder) => void): Promise<StunMessage | undefined> {
    const res = await super.request(method, add)
    // udpRequest replaced the handler: from here on, collect what the server sends (ChannelData from the peer).
    this.socket.onMessage((d) => { this.fromServer.push(Buffer.from(d)) })
    return res
  }

  /** Allocate and bind CHANNEL to `peer`; the relayed address. */
  async allocateAndBind (peer: Endpoint): Promise<Endpoint> {
    const alloc = await this.request(Method.Allocate, (b) => b.add(RequestedTransport, TransportProtocol.UDP))
    const relayed = alloc?.get(XorRelayedAddress)
    expect(relayed, 'relayed address').to.not.equal(undefined)
    const bound = await this.request(Method.ChannelBind, (b) => b.add(ChannelNumber, RawClient.CHANNEL).add(XorPeerAddress, peer))
    expect(bound?.cls, 'ChannelBind').to.equal(MessageClass.SuccessResponse)
    return relayed as Endpoint
  }

  /** Send `data` (text or bytes) as ChannelData on `channel`. */
  channelData (data: string | Uint8Array, channel = RawClient.CHANNEL): void {
    const payload = typeof data === 'string' ? Buffer.from(data) : data
    const cd = Buffer.alloc(4 + payload.length); cd.writeUInt16BE(channel, 0); cd.writeUInt16BE(payload.length, 2); cd.set(payload, 4)
    this.socket.send(cd, this.server)
  }
}
