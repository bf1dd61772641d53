import { expect } from 'chai'
import { TurnClient, type TurnClientTimers } from '../../../src/relay/turn-client.js'
import { Method } from '../../../src/stun/index.js'
import { batchedLink, scriptedTurnServer } from '../../support/scripted-turn.js'

/** A manual clock: timers fire only when the test advances time, in order. */
class ManualTimers implements TurnClientTimers {
  now = 0
  private seq = 0
  private readonly pending = new Map<number, { at: number, fn: () => void }>()
  setTimeout (fn: () => void, ms: number): unknown { const id = ++this.seq; this.pending.set(id, { at: this.now + ms, fn }); return id }
  clearTimeout (handle: unknown): void { this.pending.delete(handle as number) }
  /** Scheduled delays from now, sorted (ms). */
  due (): number[] { return [...this.pending.values()].map(p => p.at - this.now).sort((a, b) => a - b) }
  /** Move to `to` ms, firing every due timer in time order and letting the I/O each one starts complete. */
  async advanceTo (to: number): Promise<void> {
    for (let guard = 0; guard < 1000; guard++) {
      const next = [...this.pending.entries()].filter(([, p]) => p.at <= to).sort((a, b) => a[1].at - b[1].at)[0]
      if (next === undefined) break
      this.pending.delete(next[0])
      this.now = next[1].at
      next[1].fn()
      await settle()
    }
    this.now = to
  }
}

/** Let the in-memory link deliver and the client's continuations run (a few macrotasks). */
async function settle (): Promise<void> { for (let i = 0; i < 10; i++) await new Promise(resolve => setImmediate(resolve)) }

describe('TurnClient timers (RFC 8656 §8, §9, §12) on a manual clock', () => {
  it('refreshes the allocation 60 s before it expires, permissions every 240 s and channels every 480 s', async () => {
    const [clientSocket, serverSocket] = batchedLink({ address: '192.0.2.10', port: 5000 }, { address: '192.0.2.1', port: 3478 })
    const requests: number[] = []
    scriptedTurnServer(serverSocket, {
      relayed: { address: '203.0.113.1', port: 50000 }, user: 'u', password: 'p',
      onRequest: (method) => { requests.push(method) },
      onChannelBind: ({ success, send }) => { send(success) }
    })
    const timers = new ManualTimers()
    const client = await TurnClient.allocate({ server: '192.0.2.1:3478', credentials: { username: 'u', password: 'p' }, socket: clientSocket, timers })
    try {
      expect(timers.due()).to.deep.equal([540_000]) // lifetime 600 s − 60 s margin
      const peer = { address: '198.51.100.7', port: 4000 }
      await client.createPermission(peer)
      await client.bindChannel(peer)
      expect(timers.due()).to.deep.equal([240_000, 480_000, 540_000])
      const count = (method: number): number => requests.filter(m => m === method).length
      const before = { perm: count(Method.CreatePermission), bind: count(Method.ChannelBind), refresh: count(Method.Refresh) }

      await timers.advanceTo(239_999)
      expect(count(Method.CreatePermission)).to.equal(before.perm)
      await timers.advanceTo(240_000)
      expect(count(Method.CreatePermission)).to.equal(before.perm + 1)
      await timers.advanceTo(480_000)
      expect(count(Method.CreatePermission)).to.equal(before.perm + 2)
      expect(count(Method.ChannelBind)).to.equal(before.bind + 1)
      expect(count(Method.Refresh)).to.equal(before.refresh)
      await timers.advanceTo(540_000)
      expect(count(Method.Refresh)).to.equal(before.refresh + 1)
      // An hour of protocol time: 15 permission, 7 channel and 6 allocation refreshes in all.
      await timers.advanceTo(3_600_000)
      expect(count(Method.CreatePermission) - before.perm).to.equal(15)
      expect(count(Method.ChannelBind) - before.bind).to.equal(7)
      expect(count(Method.Refresh) - before.refresh).to.equal(6)
    } finally { await client.close() }
    expect(timers.due(), 'close() clears every timer').to.deep.equal([])
  })
})
