import { connect, createServer, type Server, type Socket } from 'node:net'
import { WebSocket } from 'ws'
import type { Endpoint } from '../../../src/net/endpoint.js'

/**
 * A TCP proxy on 127.0.0.1 in front of a server, to cut connections abruptly (both ends see a reset, as when a NAT
 * mapping or Wi-Fi goes away) and to refuse new ones for a while. `target` can be changed: new connections then go
 * to another server, as behind a load balancer in front of several nodes.
 */
export class TcpProxy {
  private readonly pairs = new Set<[Socket, Socket]>()
  /** Server sides left open by cutClientsOnly, closed by close(). */
  private readonly orphans = new Set<Socket>()
  blocked = false
  private constructor (private readonly server: Server, readonly port: number, public target: Endpoint) {}

  static async start (target: Endpoint): Promise<TcpProxy> {
    let proxy: TcpProxy | undefined
    const server = createServer((client) => {
      if (proxy === undefined || proxy.blocked) { client.destroy(); return }
      const upstream = connect(proxy.target.port, proxy.target.address)
      const pair: [Socket, Socket] = [client, upstream]
      proxy.pairs.add(pair)
      const drop = (): void => { client.destroy(); upstream.destroy(); proxy?.pairs.delete(pair) }
      client.on('error', drop); upstream.on('error', drop)
      client.on('close', drop); upstream.on('close', drop)
      client.pipe(upstream); upstream.pipe(client)
    })
    await new Promise<void>((resolve) => { server.listen(0, '127.0.0.1', resolve) })
    const address = server.address()
    if (address === null || typeof address === 'string') throw new Error('proxy did not bind')
    proxy = new TcpProxy(server, address.port, target)
    return proxy
  }

  get url (): string { return `ws://127.0.0.1:${this.port}/` }

  /** Reset every proxied connection at once. */
  cut (): void {
    for (const [a, b] of this.pairs) { a.resetAndDestroy(); b.resetAndDestroy() }
    this.pairs.clear()
  }

  /**
   * Reset the client side of every proxied connection and leave the server side open, read and thrown away: the
   * client notices at once, the server does not (what it sends is lost, as into a NAT mapping that has gone).
   */
  cutClientsOnly (): void {
    for (const [client, upstream] of this.pairs) {
      upstream.unpipe(client)
      client.unpipe(upstream)
      for (const s of [client, upstream]) {
        s.removeAllListeners('close')
        s.removeAllListeners('error')
        s.on('error', () => {})
      }
      upstream.on('data', () => {})
      this.orphans.add(upstream)
      client.resetAndDestroy()
    }
    this.pairs.clear()
  }

  async close (): Promise<void> {
    this.cut()
    for (const s of this.orphans) s.destroy()
    this.orphans.clear()
    await new Promise<void>((resolve) => { this.server.close(() => { resolve() }) })
  }
}

/** A bare WebSocket for speaking the protocol by hand; collects the frames it receives. */
export class RawPeer {
  readonly frames: any[] = []
  closeCode: number | undefined
  private readonly waiters = new Set<() => void>()
  private constructor (readonly ws: WebSocket) {
    ws.on('message', (data, isBinary) => {
      if (!isBinary) this.frames.push(JSON.parse(data.toString()))
      for (const w of this.waiters) w()
    })
    ws.on('close', (code) => { this.closeCode = code; for (const w of this.waiters) w() })
    ws.on('error', () => {})
  }

  static async open (url: string, localAddress?: string): Promise<RawPeer> {
    const ws = new WebSocket(url, { perMessageDeflate: false, ...(localAddress === undefined ? {} : { localAddress }) })
    await new Promise<void>((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject) })
    return new RawPeer(ws)
  }

  send (frame: unknown): void { this.ws.send(typeof frame === 'string' || Buffer.isBuffer(frame) ? frame : JSON.stringify(frame)) }

  /** Wait until `cond` holds (re-checked on every frame and on close), at most `ms`. */
  async until (cond: () => boolean, ms = 5000): Promise<void> {
    if (cond()) return
    await new Promise<void>((resolve, reject) => {
      const check = (): void => { if (cond()) { done(); resolve() } }
      const timer = setTimeout(() => { done(); reject(new Error(`condition not met within ${ms} ms; frames: ${JSON.stringify(this.frames).slice(0, 500)}, close ${String(this.closeCode)}`)) }, ms)
      const done = (): void => { clearTimeout(timer); this.waiters.delete(check) }
      this.waiters.add(check)
    })
  }

  async closed (ms = 5000): Promise<number | undefined> {
    await this.until(() => this.closeCode !== undefined, ms)
    return this.closeCode
  }

  close (): void { this.ws.terminate() }
}

/** Resolve when `emitter` emits `event` (with a time limit). */
export async function once<T extends unknown[]> (emitter: any, event: string, ms = 5000): Promise<T> {
  return await new Promise<T>((resolve, reject) => {
    const listener = (...args: any[]): void => { clearTimeout(timer); resolve(args as T) }
    const timer = setTimeout(() => { emitter.off(event, listener); reject(new Error(`no ${event} within ${ms} ms`)) }, ms)
    emitter.once(event, listener)
  })
}
