/**
 * `npm run bench -- attacks`: the attack table of docs/security.md, measured. Each attack runs against a fresh
 * `natcheck relay` of this build, of an earlier build when `NATKIT_BEFORE_CLI=/path/to/dist/src/cli.js` is set, and
 * against coturn's turnserver, all on loopback; the table prints what each server answered. It is a measurement, not
 * a test: the assertions live in test/integration/security/.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { createHmac } from 'node:crypto'
import type { Endpoint } from '../src/net/endpoint.js'
import { UdpSocket } from '../src/net/udp.js'
import {
  AttrType, ChannelNumber, ErrorCode, MessageBuilder, MessageClass, Method, Nonce, Realm, RequestedTransport, StunMessage,
  TransportProtocol, Username, XorPeerAddress, longTermKey
} from '../src/stun/index.js'
import { CLI, freeUdpPort } from './support.js'

const REALM = 'attack.bench'
const SECRET = 'bench-secret'

type Answer = string

interface Server { kind: 'natkit' | 'coturn', port: number, child: ChildProcess, rest: boolean }

async function ready (ms: number): Promise<void> { await new Promise(resolve => setTimeout(resolve, ms)) }

async function startNatkit (cli: string, port: number, base: number): Promise<Server> {
  const child = spawn(process.execPath, [cli, 'relay', '--listen', `0.0.0.0:${port}`, '--relay-ip', '127.0.0.1', '--realm', REALM,
    '--user', 'u:p', '--auth-secret', SECRET, '--ports', `${base}-${base + 99}`, '--allow-peer', '127.0.0.0/8'], { stdio: 'ignore' })
  await ready(1500)
  return { kind: 'natkit', port, child, rest: true }
}

async function startCoturn (port: number, base: number, rest: boolean): Promise<Server> {
  const auth = rest ? ['--use-auth-secret', '--static-auth-secret', SECRET] : ['--lt-cred-mech', '--user', 'u:p']
  const child = spawn('turnserver', ['-c', '/dev/null', '-n', '--no-cli', '--listening-ip', '0.0.0.0', '--relay-ip', '127.0.0.1', '--listening-port', String(port),
    '--realm', REALM, ...auth, '--allow-loopback-peers', '--no-tls', '--no-dtls', '--min-port', String(base), '--max-port', String(base + 99)], { stdio: 'ignore' })
  await ready(1500)
  return { kind: 'coturn', port, child, rest }
}

async function request (s: UdpSocket, to: Endpoint, data: Uint8Array, timeoutMs = 800): Promise<StunMessage | undefined> {
  return await new Promise((resolve) => {
    const t = setTimeout(() => { resolve(undefined) }, timeoutMs)
    s.onMessage((d) => { try { const m = StunMessage.decode(d); clearTimeout(t); resolve(m) } catch { /* not STUN */ } })
    s.send(data, to)
  })
}

function answer (m: StunMessage | undefined): Answer {
  if (m === undefined) return 'no answer'
  if (m.cls === MessageClass.SuccessResponse) return 'ACCEPTED'
  return String(m.get(ErrorCode)?.code ?? '?')
}

async function challenge (s: UdpSocket, to: Endpoint): Promise<{ realm: string, nonce: string }> {
  const m = await request(s, to, new MessageBuilder(Method.Allocate, MessageClass.Request).add(RequestedTransport, TransportProtocol.UDP).build())
  return { realm: m?.get(Realm) ?? REALM, nonce: m?.get(Nonce) ?? '' }
}

const restUser = (aheadS: number): string => `${Math.floor(Date.now() / 1000) + aheadS}:mallory`
const restPass = (user: string): string => createHmac('sha1', SECRET).update(user).digest('base64')

/** An Allocate as `user` whose last attribute is `integrity(builder)`. */
async function allocateWith (srv: Server, local: string, user: string, sign: (b: MessageBuilder, realm: string) => MessageBuilder): Promise<Answer> {
  const s = await UdpSocket.bind({ address: local, port: 0 })
  try {
    const to = { address: '127.0.0.1', port: srv.port }
    const { realm, nonce } = await challenge(s, to)
    const b = new MessageBuilder(Method.Allocate, MessageClass.Request).add(RequestedTransport, TransportProtocol.UDP).add(Username, user).add(Realm, realm).add(Nonce, nonce)
    return answer(await request(s, to, sign(b, realm).build()))
  } finally { await s.close() }
}

/** Signs requests as u:p from one socket with the nonce of one challenge, retrying once on 438 (RFC 8489 §9.2.5). */
async function signer (s: UdpSocket, to: Endpoint): Promise<(method: number, add: (b: MessageBuilder) => void) => Promise<StunMessage | undefined>> {
  let { realm, nonce } = await challenge(s, to)
  return async (method, add) => {
    for (let attempt = 0; ; attempt++) {
      const b = new MessageBuilder(method, MessageClass.Request)
      add(b)
      const m = await request(s, to, b.add(Username, 'u').add(Realm, realm).add(Nonce, nonce).integrity(longTermKey('u', realm, 'p', 'md5')).build())
      if (attempt > 0 || m?.get(ErrorCode)?.code !== 438) return m
      realm = m.get(Realm) ?? realm; nonce = m.get(Nonce) ?? nonce
    }
  }
}

/** Allocate as u:p from a fresh address, then send one more signed request: its answer. */
async function afterAllocate (srv: Server, method: number, add: (b: MessageBuilder) => void): Promise<Answer> {
  const s = await UdpSocket.bind({ address: fresh(), port: 0 })
  try {
    const signed = await signer(s, { address: '127.0.0.1', port: srv.port })
    const alloc = await signed(Method.Allocate, b => b.add(RequestedTransport, TransportProtocol.UDP))
    if (answer(alloc) !== 'ACCEPTED') return `allocate ${answer(alloc)}`
    return answer(await signed(method, add))
  } finally { await s.close() }
}

let next = 1
const fresh = (): string => `127.0.2.${next++}`

const attacks: Array<{ name: string, needs?: 'static' | 'rest', run: (srv: Server) => Promise<Answer> }> = [
  { name: 'Allocate with a 0-byte MESSAGE-INTEGRITY-SHA256, static user', needs: 'static', run: async (srv) => await allocateWith(srv, fresh(), 'u', b => b.addRaw(AttrType.MessageIntegritySha256, new Uint8Array(0))) },
  { name: 'Allocate with a 0-byte MESSAGE-INTEGRITY-SHA256, REST user', needs: 'rest', run: async (srv) => await allocateWith(srv, fresh(), restUser(3600), b => b.addRaw(AttrType.MessageIntegritySha256, new Uint8Array(0))) },
  { name: 'Allocate with a zeroed 16-byte MESSAGE-INTEGRITY-SHA256', needs: 'static', run: async (srv) => await allocateWith(srv, fresh(), 'u', b => b.addRaw(AttrType.MessageIntegritySha256, new Uint8Array(16))) },
  { name: 'Allocate with a 19-byte MESSAGE-INTEGRITY', needs: 'static', run: async (srv) => await allocateWith(srv, fresh(), 'u', b => b.addRaw(AttrType.MessageIntegrity, new Uint8Array(19))) },
  {
    name: 'Allocate signed as REST user 99999999999:mallory (expiry in 5138)',
    needs: 'rest',
    run: async (srv) => await allocateWith(srv, fresh(), '99999999999:mallory', (b, realm) => b.integrity(longTermKey('99999999999:mallory', realm, restPass('99999999999:mallory'), 'md5')))
  },
  {
    name: '100 wrong passwords from the victim\'s IP with a foreign nonce, then the victim allocates',
    needs: 'static',
    run: async (srv) => {
      const victimIp = fresh()
      const to = { address: '127.0.0.1', port: srv.port }
      const other = await UdpSocket.bind({ address: fresh(), port: 0 })
      const spoofer = await UdpSocket.bind({ address: victimIp, port: 0 })
      try {
        const { realm, nonce } = await challenge(other, to)
        for (let i = 0; i < 100; i++) {
          spoofer.send(new MessageBuilder(Method.Allocate, MessageClass.Request).add(RequestedTransport, TransportProtocol.UDP).add(Username, 'u').add(Realm, realm)
            .add(Nonce, nonce).integrity(longTermKey('u', realm, `wrong${i}`, 'md5')).build(), to)
        }
        await ready(300)
      } finally { await other.close(); await spoofer.close() }
      return await allocateWith(srv, victimIp, 'u', (b, realm) => b.integrity(longTermKey('u', realm, 'p', 'md5')))
    }
  },
  {
    name: 'ChannelBind to the relay\'s own port on 127.0.0.9 (listener 0.0.0.0, loopback peers allowed)',
    needs: 'static',
    run: async (srv) => await afterAllocate(srv, Method.ChannelBind, b => b.add(ChannelNumber, 0x4001).add(XorPeerAddress, { address: '127.0.0.9', port: srv.port }))
  },
  {
    name: 'CreatePermission for 192.88.99.1 (6to4 relay anycast)',
    needs: 'static',
    run: async (srv) => await afterAllocate(srv, Method.CreatePermission, b => b.add(XorPeerAddress, { address: '192.88.99.1', port: 0 }))
  }
]

/** Run every attack against natkit (this build, and an earlier one if given) and coturn; print the table. */
export async function benchAttacks (): Promise<Array<Record<string, Answer>>> {
  const columns: Array<{ title: string, start: () => Promise<Server[]> }> = [
    { title: 'natkit (this build)', start: async () => [await startNatkit(CLI, await freeUdpPort(), 42000)] }
  ]
  const before = process.env.NATKIT_BEFORE_CLI
  if (before !== undefined && before !== '') columns.push({ title: 'natkit (before)', start: async () => [await startNatkit(before, await freeUdpPort(), 42200)] })
  columns.push({ title: 'coturn', start: async () => [await startCoturn(await freeUdpPort(), 42400, false), await startCoturn(await freeUdpPort(), 42600, true)] })
  const rows: Array<Record<string, Answer>> = attacks.map(a => ({ attack: a.name }))
  for (const col of columns) {
    const servers = await col.start()
    try {
      for (const [i, a] of attacks.entries()) {
        const srv = servers.find(s => a.needs !== 'rest' ? s.kind === 'natkit' || !s.rest : s.rest) ?? servers[0]
        rows[i][col.title] = await a.run(srv)
      }
    } finally {
      for (const s of servers) s.child.kill('SIGKILL')
    }
  }
  for (const r of rows) console.error(Object.values(r).join(' | '))
  return rows
}
