import { expect } from 'chai'
import { connect, createServer, type Server, type Socket } from 'node:net'
import { StreamGuard } from '../../../src/net/stream-guard.js'

describe('StreamGuard', () => {
  describe('observe', () => {
    let server: Server
    let guard: StreamGuard
    const accepted: Socket[] = []
    const clients: Socket[] = []
    let port = 0

    beforeEach(async () => {
      guard = new StreamGuard({ maxUnauthenticatedPerIp: 1, firstMessageTimeoutMs: 200, checkIntervalMs: 20 })
      server = createServer((s) => { accepted.push(s) })
      guard.watch(server)
      await new Promise<void>(resolve => server.listen(0, '127.0.0.1', () => { resolve() }))
      port = (server.address() as { port: number }).port
    })
    afterEach(async () => {
      guard.stop()
      for (const s of [...accepted.splice(0), ...clients.splice(0)]) s.destroy()
      await new Promise<void>(resolve => server.close(() => { resolve() }))
    })

    async function open (): Promise<Socket> {
      const c = connect({ host: '127.0.0.1', port })
      c.on('error', () => {})
      clients.push(c)
      await new Promise(resolve => c.once('connect', resolve))
      return c
    }
    async function until (ok: () => boolean): Promise<void> {
      const end = Date.now() + 3000
      while (!ok() && Date.now() < end) await new Promise(resolve => setTimeout(resolve, 10))
    }

    it('tells once when the connection authenticates and once when it closes', async () => {
      await open()
      await until(() => accepted.length === 1)
      const seen: string[] = []
      expect(guard.observe(accepted[0], { authenticated: () => { seen.push('auth') }, closed: () => { seen.push('closed') } })).to.equal(true)
      guard.authenticated(accepted[0])
      guard.authenticated(accepted[0])
      expect(seen).to.deep.equal(['auth'])
      clients[0].destroy()
      await until(() => seen.length === 2)
      expect(seen).to.deep.equal(['auth', 'closed'])
    })

    it('tells when the guard closes the connection itself (first-message deadline)', async () => {
      await open()
      await until(() => accepted.length === 1)
      const seen: string[] = []
      guard.observe(accepted[0], { authenticated: () => { seen.push('auth') }, closed: () => { seen.push('closed') } })
      await until(() => seen.length === 1)
      expect(seen).to.deep.equal(['closed'])
      expect(guard.closedBy.idle).to.equal(1)
    })

    it('cannot observe a connection it refused (per-source limit)', async () => {
      await open()
      await until(() => accepted.length === 1)
      await open()
      await until(() => accepted.length === 2)
      expect(guard.closedBy['per-ip-limit']).to.equal(1)
      expect(guard.observe(accepted[1], {})).to.equal(false)
    })
  })
})
