/**
 * A tiny network probe run inside lab namespaces with `node udp-probe.js MODE JSON`. Standalone: imports
 * only Node built-ins, prints one JSON document (or `ready`) on stdout.
 *
 * - `echo-server {"udp":["ip:port",…],"tcp":["ip:port",…]}`: every UDP datagram is answered with
 *   `{"seen":"ip:port","via":"ip:port"}`; a body `{"from":i}` makes socket i answer (like an RFC 5780
 *   CHANGE-REQUEST). TCP connections get the same JSON line. Prints `ready` once everything is bound.
 * - `client {"sockets":n,"steps":[{"socket":i,"to":"ip:port","body":"…","delayMs":d}],"waitMs":w}`:
 *   opens n UDP sockets, sends the steps in order, collects every datagram for waitMs, prints
 *   `{"localPorts":[…],"replies":[{"socket":i,"from":"ip:port","body":"…"}]}`. A step to `$seen:N`
 *   goes to the address the echo server saw for socket N (its first reply); skipped if none came.
 * - `tcp-connect {"to":"ip:port","timeoutMs":t}`: prints `{"connected":bool,"data":"…"}`.
 * - `stun-ping {"to":"ip:port","timeoutMs":t}`: sends STUN Binding requests until one is answered;
 *   exit code 0 when answered, 1 when not.
 */
import dgram from 'node:dgram'
import net from 'node:net'
import { randomBytes } from 'node:crypto'

function split (ep: string): [string, number] {
  const i = ep.lastIndexOf(':')
  return [ep.slice(0, i), Number(ep.slice(i + 1))]
}

async function bindUdp (ip: string, port: number): Promise<dgram.Socket> {
  const s = dgram.createSocket('udp4')
  await new Promise<void>((resolve, reject) => { s.once('error', reject); s.bind(port, ip, () => { s.off('error', reject); resolve() }) })
  return s
}

async function echoServer (spec: { udp?: string[], tcp?: string[] }): Promise<void> {
  const udp = spec.udp ?? []
  const socks = await Promise.all(udp.map(async (ep) => await bindUdp(...split(ep))))
  socks.forEach((s, i) => {
    s.on('message', (msg, rinfo) => {
      let from = i
      try {
        const body = JSON.parse(msg.toString()) as { from?: number }
        if (typeof body.from === 'number' && socks[body.from] !== undefined) from = body.from
      } catch { /* plain echo */ }
      const reply = JSON.stringify({ seen: `${rinfo.address}:${rinfo.port}`, via: udp[from] })
      socks[from]!.send(reply, rinfo.port, rinfo.address)
    })
  })
  for (const ep of spec.tcp ?? []) {
    const [ip, port] = split(ep)
    const server = net.createServer((c) => { c.end(JSON.stringify({ seen: `${c.remoteAddress}:${c.remotePort}`, via: ep }) + '\n') })
    await new Promise<void>((resolve, reject) => { server.once('error', reject); server.listen(port, ip, resolve) })
  }
  process.stdout.write('ready\n')
}

interface ClientSpec { sockets: number, bind?: number[], steps: Array<{ socket: number, to: string, body?: string, delayMs?: number }>, waitMs: number }

async function client (spec: ClientSpec): Promise<void> {
  const socks: dgram.Socket[] = []
  for (let i = 0; i < spec.sockets; i++) socks.push(await bindUdp('0.0.0.0', spec.bind?.[i] ?? 0))
  const replies: Array<{ socket: number, from: string, body: string }> = []
  socks.forEach((s, i) => s.on('message', (msg, r) => replies.push({ socket: i, from: `${r.address}:${r.port}`, body: msg.toString() })))
  for (const step of spec.steps) {
    let to = step.to
    if (to.startsWith('$seen:')) {
      // The address the echo server saw for socket N: its NAT mapping (for hairpin tests).
      const first = replies.find((r) => r.socket === Number(to.slice(6)))
      if (first === undefined) continue
      to = (JSON.parse(first.body) as { seen: string }).seen
    }
    const [ip, port] = split(to)
    await new Promise<void>((resolve) => { socks[step.socket]!.send(step.body ?? 'echo', port, ip, () => { resolve() }) })
    await new Promise((resolve) => setTimeout(resolve, step.delayMs ?? 20))
  }
  await new Promise((resolve) => setTimeout(resolve, spec.waitMs))
  const localPorts = socks.map((s) => s.address().port)
  for (const s of socks) s.close()
  process.stdout.write(JSON.stringify({ localPorts, replies }) + '\n')
}

async function tcpConnect (spec: { to: string, timeoutMs: number }): Promise<void> {
  const [ip, port] = split(spec.to)
  const result = await new Promise<{ connected: boolean, data?: string, error?: string }>((resolve) => {
    const c = net.connect({ host: ip, port })
    let data = ''
    let connected = false
    const timer = setTimeout(() => { c.destroy(); resolve({ connected, error: 'timeout' }) }, spec.timeoutMs)
    c.on('connect', () => { connected = true })
    c.on('data', (d) => { data += d.toString() })
    c.on('end', () => { clearTimeout(timer); resolve({ connected, data }) })
    c.on('error', (e) => { clearTimeout(timer); resolve({ connected, error: e.message }) })
  })
  process.stdout.write(JSON.stringify(result) + '\n')
}

async function stunPing (spec: { to: string, timeoutMs: number }): Promise<void> {
  const [ip, port] = split(spec.to)
  const s = await bindUdp('0.0.0.0', 0)
  const header = Buffer.alloc(20)
  header.writeUInt16BE(0x0001, 0)
  header.writeUInt32BE(0x2112a442, 4)
  randomBytes(12).copy(header, 8)
  const answered = await new Promise<boolean>((resolve) => {
    const resend = setInterval(() => s.send(header, port, ip), 100)
    const timer = setTimeout(() => { clearInterval(resend); resolve(false) }, spec.timeoutMs)
    s.on('message', (msg) => {
      if (msg.length >= 20 && msg.readUInt16BE(0) === 0x0101 && msg.subarray(8, 20).equals(header.subarray(8, 20))) {
        clearInterval(resend); clearTimeout(timer); resolve(true)
      }
    })
    s.send(header, port, ip)
  })
  s.close()
  process.exitCode = answered ? 0 : 1
}

const [mode, json] = process.argv.slice(2)
const spec = JSON.parse(json ?? '{}')
const modes: Record<string, (spec: any) => Promise<void>> = { 'echo-server': echoServer, client, 'tcp-connect': tcpConnect, 'stun-ping': stunPing }
const fn = modes[mode ?? '']
if (fn === undefined) {
  process.stderr.write(`usage: udp-probe echo-server|client|tcp-connect|stun-ping JSON\n`)
  process.exitCode = 1
} else {
  fn(spec).catch((err: unknown) => { process.stderr.write(`${String(err)}\n`); process.exitCode = 1 })
}
