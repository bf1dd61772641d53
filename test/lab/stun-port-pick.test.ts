/**
 * `natcheck server --listen IP:0 --tcp`: the OS picks the UDP port and the TCP listener takes the same number. When a
 * TCP socket already holds that number (in CI: a client connection's ephemeral port), StunServer.start picks again
 * instead of failing with EADDRINUSE. Made certain in a namespace of our own whose ephemeral range is two ports,
 * 40000-40001, with TCP 40000 held: every pick of 40000 clashes, so the server must end on 40001.
 */
import { expect } from 'chai'
import { spawnSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { requireLab } from './support/lab-helpers.js'

const SERVER = fileURLToPath(new URL('../../src/stun/server.js', import.meta.url))

/** Run in the namespace: hold TCP 40000, then start and close the server `rounds` times; print the ports it got. */
const CHILD = `
import { createServer } from 'node:net'
const { StunServer } = await import(process.argv[1])
const holder = createServer()
await new Promise((resolve, reject) => { holder.once('error', reject); holder.listen({ host: '127.0.0.1', port: 40000, exclusive: true }, resolve) })
const ports = []
for (let i = 0; i < Number(process.argv[2]); i++) {
  try {
    const s = await StunServer.start({ listen: { address: '127.0.0.1', port: 0 }, tcp: true })
    const a = s.addresses()
    ports.push({ udp: a.udp[0].port, tcp: a.tcp[0].port })
    await s.close()
  } catch (err) { ports.push({ error: err.message }) }
}
holder.close()
console.log(JSON.stringify(ports))
`

describe('lab: the STUN server picks its port again when TCP has it taken', function () {
  this.timeout(60_000)
  const ns = `nkpp-${process.pid % 100000}`
  const ip = (...args: string[]): void => {
    const r = spawnSync('ip', args, { encoding: 'utf8' })
    if (r.status !== 0) throw new Error(`ip ${args.join(' ')}: ${r.stderr}`)
  }
  before(function () {
    requireLab(this, false)
    ip('netns', 'add', ns)
    ip('netns', 'exec', ns, 'ip', 'link', 'set', 'lo', 'up')
    ip('netns', 'exec', ns, 'sysctl', '-q', '-w', 'net.ipv4.ip_local_port_range=40000 40001')
  })
  after(() => { spawnSync('ip', ['netns', 'del', ns]) })

  it('ends on the free port every time (8 starts with the other one held for TCP)', () => {
    const r = spawnSync('ip', ['netns', 'exec', ns, process.execPath, '--input-type=module', '-e', CHILD, SERVER, '8'], { encoding: 'utf8', timeout: 30_000 })
    expect(r.status, r.stderr).to.equal(0)
    const ports = JSON.parse(r.stdout) as Array<{ udp?: number, tcp?: number, error?: string }>
    expect(ports).to.have.length(8)
    expect(ports, r.stdout).to.deep.equal(Array.from({ length: 8 }, () => ({ udp: 40001, tcp: 40001 })))
  })
})
