/**
 * One side of a TCP simultaneous open (RFC 9293 §3.5, figure 8), run inside a lab host:
 * `node tcp-simopen.js '{"localPort":40000,"peer":"192.0.2.1","peerPort":40000,"timeoutMs":8000}'`.
 * Connects from a fixed local port to the peer's public endpoint while the peer does the same; when the
 * connection opens, sends a hello and waits for the peer's. Prints one JSON line and exits 0 on success, 1 otherwise.
 */
import { connect } from 'node:net'

const spec = JSON.parse(process.argv[2] ?? '{}') as { localPort: number, peer: string, peerPort: number, timeoutMs: number }
const started = Date.now()
const socket = connect({ host: spec.peer, port: spec.peerPort, localPort: spec.localPort })
const timer = setTimeout(() => { finish(false, 'timeout') }, spec.timeoutMs)
let got = ''
function finish (ok: boolean, detail: string): void {
  clearTimeout(timer)
  process.stdout.write(JSON.stringify({ ok, detail, ms: Date.now() - started, local: `${socket.localAddress ?? ''}:${socket.localPort ?? 0}`, remote: `${socket.remoteAddress ?? ''}:${socket.remotePort ?? 0}` }) + '\n')
  socket.destroy()
  process.exitCode = ok ? 0 : 1
}
socket.on('connect', () => { socket.write(`hello from ${spec.localPort}\n`) })
socket.on('data', (d: Buffer) => {
  got += d.toString()
  if (got.includes('\n')) finish(true, got.trim())
})
socket.on('error', (err) => { finish(false, err.message) })
