/**
 * A PCP + NAT-PMP gateway on loopback for client tests: keeps a mapping table with expiry, answers MAP (echoing the
 * nonce), NAT-PMP external-address and mapping requests, and can "restart" (table lost, epoch back to 0), as a
 * rebooted router does. With `lastWriterOwns` it keeps one table for both protocols as miniupnpd does: a protocol that
 * maps an entry another one holds takes it over, and only the owner may renew or delete it (others get NOT_AUTHORIZED
 * / "refused"). Run standalone (`node fake-gateway.js`) it prints its port and, on each table change, the
 * table as a JSON line.
 */
import { createSocket, type Socket } from 'node:dgram'

export interface FakeMapping { protocol: 'pcp' | 'nat-pmp', transport: number, internalIp: string, internalPort: number, externalPort: number, expiresAt: number }

export class FakeGateway {
  readonly table = new Map<string, FakeMapping>()
  readonly requests: Array<{ protocol: 'pcp' | 'nat-pmp', lifetimeS: number, internalPort: number }> = []
  epochStart = Date.now()
  nextPort = 61000
  onChange: (() => void) | undefined
  lastWriterOwns = false
  private constructor (readonly socket: Socket, readonly externalIp: string) {}

  static async start (externalIp = '198.51.100.1', bind: { address: string, port: number } = { address: '127.0.0.1', port: 0 }): Promise<FakeGateway> {
    const s = createSocket('udp4')
    await new Promise<void>((resolve) => s.bind(bind.port, bind.address, resolve))
    const g = new FakeGateway(s, externalIp)
    s.on('message', (d, r) => { g.handle(d, r.address, r.port) })
    return g
  }

  get port (): number { return this.socket.address().port }
  epoch (): number { return Math.floor((Date.now() - this.epochStart) / 1000) }
  restart (): void { this.table.clear(); this.epochStart = Date.now(); this.onChange?.() }
  live (): FakeMapping[] { const now = Date.now(); return [...this.table.values()].filter((m) => m.expiresAt > now) }

  private put (protocol: 'pcp' | 'nat-pmp', transport: number, internalIp: string, internalPort: number, lifetimeS: number, suggested: number): FakeMapping | undefined | 'refused' {
    const key = `${transport}/${internalPort}`
    const old = this.table.get(key)
    if (this.lastWriterOwns && old !== undefined && old.protocol !== protocol && (lifetimeS === 0 || this.requests.filter((r) => r.internalPort === internalPort && r.protocol === protocol).length > 1)) return 'refused'
    if (lifetimeS === 0) { this.table.delete(key); this.onChange?.(); return undefined }
    const externalPort = old?.externalPort ?? (suggested !== 0 ? suggested : this.nextPort++)
    const m = { protocol, transport, internalIp, internalPort, externalPort, expiresAt: Date.now() + lifetimeS * 1000 }
    this.table.set(key, m)
    this.onChange?.()
    return m
  }

  private handle (d: Buffer, address: string, port: number): void {
    const reply = (b: Buffer): void => { this.socket.send(b, port, address) }
    if (d[0] === 0 && d.length === 2 && d[1] === 0) {
      const b = Buffer.alloc(12); b[1] = 128; b.writeUInt32BE(this.epoch(), 4)
      this.externalIp.split('.').forEach((x, i) => { b[8 + i] = Number(x) })
      reply(b)
    } else if (d[0] === 0 && d.length === 12 && (d[1] === 1 || d[1] === 2)) {
      const internalPort = d.readUInt16BE(4); const lifetimeS = d.readUInt32BE(8)
      this.requests.push({ protocol: 'nat-pmp', lifetimeS, internalPort })
      const m = this.put('nat-pmp', d[1] === 1 ? 17 : 6, address, internalPort, lifetimeS, d.readUInt16BE(6))
      const b = Buffer.alloc(16); b[1] = 128 + d[1]; b.writeUInt32BE(this.epoch(), 4); b.writeUInt16BE(internalPort, 8)
      if (m === 'refused') b.writeUInt16BE(2, 2) // Not Authorized/Refused
      else { b.writeUInt16BE(m?.externalPort ?? 0, 10); b.writeUInt32BE(lifetimeS, 12) }
      reply(b)
    } else if (d[0] === 2 && d.length === 60 && d[1] === 1) {
      const lifetimeS = d.readUInt32BE(4); const internalPort = d.readUInt16BE(40)
      this.requests.push({ protocol: 'pcp', lifetimeS, internalPort })
      const m = this.put('pcp', d[36], address, internalPort, lifetimeS, d.readUInt16BE(42))
      const b = Buffer.alloc(60); b[0] = 2; b[1] = 0x81; b.writeUInt32BE(lifetimeS, 4); b.writeUInt32BE(this.epoch(), 8)
      if (m === 'refused') b[3] = 2 // NOT_AUTHORIZED
      d.copy(b, 24, 24, 44) // nonce, protocol, reserved, internal port
      b.writeUInt16BE(m === 'refused' || m === undefined ? d.readUInt16BE(42) : m.externalPort, 42)
      b[54] = 0xff; b[55] = 0xff
      this.externalIp.split('.').forEach((x, i) => { b[56 + i] = Number(x) })
      reply(b)
    }
  }

  async close (): Promise<void> { await new Promise<void>((resolve) => { this.socket.close(() => { resolve() }) }) }
}
