import { expect } from 'chai'
import { connect, type Socket } from 'node:net'
import { StreamRouter, bindOwner, type HandoffMessage, type RouterCount } from '../../../src/cli/relay-stream-router.js'
import { ConnectionId, MessageBuilder, MessageClass, Method } from '../../../src/stun/index.js'

const bind = (id: number): Buffer => Buffer.from(new MessageBuilder(Method.ConnectionBind, MessageClass.Request).add(ConnectionId, id).build())
const binding = (): Buffer => Buffer.from(new MessageBuilder(Method.Binding, MessageClass.Request).build())

describe('StreamRouter (relay primary)', () => {
  describe('bindOwner', () => {
    const cases: Array<{ name: string, frame: Buffer, workers: number, owner: number | undefined }> = [
      { name: 'a ConnectionBind names the worker of its id class', frame: bind(3 * 1000 + 2), workers: 3, owner: 2 },
      { name: 'with one worker, worker 0', frame: bind(0xfffffffe), workers: 1, owner: 0 },
      { name: 'a ConnectionBind without CONNECTION-ID: none', frame: Buffer.from(new MessageBuilder(Method.ConnectionBind, MessageClass.Request).build()), workers: 2, owner: undefined },
      { name: 'a ConnectionBind with id 0: none', frame: bind(0), workers: 2, owner: undefined },
      { name: 'another method: none', frame: binding(), workers: 2, owner: undefined },
      { name: 'a ConnectionBind response: none', frame: Buffer.from(new MessageBuilder(Method.ConnectionBind, MessageClass.SuccessResponse).add(ConnectionId, 5).build()), workers: 2, owner: undefined },
      { name: 'garbage: none', frame: Buffer.from([0, 1, 0, 4, 1, 2]), workers: 2, owner: undefined }
    ]
    for (const c of cases) it(c.name, () => { expect(bindOwner(c.frame, c.workers)).to.equal(c.owner) })
  })

  describe('routing real connections (workers faked in-process)', () => {
    let router: StreamRouter
    const handed: Array<{ worker: number, message: HandoffMessage, socket: Socket }> = []
    const counted: RouterCount[] = []
    const clients: Socket[] = []
    let port = 0

    beforeEach(async () => {
      handed.length = 0; counted.length = 0
      router = new StreamRouter({
        workers: 2,
        firstMessageTimeoutMs: 500,
        maxUnauthenticatedPerIp: 3,
        ready: () => true,
        // Instead of sending it to a worker, keep the socket here (closed in afterEach).
        send: (worker, message, socket, done) => { handed.push({ worker, message, socket }); done(null) },
        count: (c) => { counted.push(c) }
      })
      port = (await router.listen({ address: '127.0.0.1', port: 0 }, 'tcp')).port
    })
    afterEach(() => {
      router.close()
      for (const h of handed) h.socket.destroy()
      for (const c of clients.splice(0)) c.destroy()
    })

    const closed = new WeakSet<Socket>()
    async function open (): Promise<Socket> {
      const s = connect({ host: '127.0.0.1', port })
      s.on('error', () => {})
      s.on('close', () => { closed.add(s) })
      s.resume()
      clients.push(s)
      await new Promise<void>((resolve, reject) => { s.once('connect', resolve); s.once('error', reject) })
      return s
    }
    async function until (ok: () => boolean, ms = 3000): Promise<void> {
      const end = Date.now() + ms
      while (!ok() && Date.now() < end) await new Promise(resolve => setTimeout(resolve, 10))
    }

    it('hands a frame split over several writes over whole, with every byte read, to the least-loaded worker', async () => {
      const frame = binding()
      const a = await open()
      a.write(frame.subarray(0, 3))
      await new Promise(resolve => setTimeout(resolve, 50))
      a.write(Buffer.concat([frame.subarray(3), Buffer.from('tail')]))
      const b = await open()
      b.write(frame)
      await until(() => handed.length === 2)
      expect(handed.map(h => h.worker).sort()).to.deep.equal([0, 1])
      const first = handed.find(h => Buffer.from(h.message.bytes, 'base64').length > frame.length)
      expect(Buffer.from(first?.message.bytes ?? '', 'base64')).to.deep.equal(Buffer.concat([frame, Buffer.from('tail')]))
    })

    it('sends a ConnectionBind to the worker of its CONNECTION-ID, whatever the load', async () => {
      for (let i = 0; i < 3; i++) (await open()).write(bind(2 * (100 + i) + 1))
      await until(() => handed.length === 3)
      expect(handed.map(h => h.worker)).to.deep.equal([1, 1, 1])
    })

    it('counts unauthenticated connections per source until the worker reports them authenticated or closed', async () => {
      for (let i = 0; i < 3; i++) (await open()).write(binding())
      await until(() => handed.length === 3)
      expect(router.unauthenticated).to.equal(3)
      const refused = await open()
      await until(() => closed.has(refused))
      expect(closed.has(refused)).to.equal(true)
      expect(counted).to.deep.equal([{ natkit: 'count-close', reason: 'per-ip-limit' }])
      // A report names the worker it was handed to: another worker's report changes nothing.
      router.report(handed[0].worker === 0 ? 1 : 0, { natkit: 'connection-authenticated', key: handed[0].message.key })
      expect(router.unauthenticated).to.equal(3)
      router.report(handed[0].worker, { natkit: 'connection-authenticated', key: handed[0].message.key })
      router.report(handed[1].worker, { natkit: 'connection-closed', key: handed[1].message.key })
      expect(router.unauthenticated).to.equal(1)
      // A worker that exits takes its connections with it.
      router.workerGone(handed[2].worker)
      expect(router.unauthenticated).to.equal(0)
    })

    it('closes a connection that sends no complete frame in time, and one that is not STUN or ChannelData', async () => {
      const idle = await open()
      const junk = await open()
      junk.write(Buffer.from([0xff, 0x00, 0x00, 0x04, 1, 2, 3, 4])) // 0xff starts neither STUN nor ChannelData
      await until(() => counted.length === 2, 3000)
      expect(counted).to.deep.include.members([{ natkit: 'count-close', reason: 'idle' }, { natkit: 'count-malformed' }])
      expect(handed).to.have.length(0)
      await until(() => closed.has(idle) && closed.has(junk))
      expect(closed.has(idle) && closed.has(junk)).to.equal(true)
      expect(router.unauthenticated).to.equal(0)
    })
  })
})
