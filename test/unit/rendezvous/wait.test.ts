import { expect } from 'chai'
import { EventEmitter } from 'node:events'
import { AbortError } from '../../../src/errors.js'
import type { RendezvousClient } from '../../../src/rendezvous/client.js'
import { RendezvousClosedError, RendezvousTimeoutError } from '../../../src/rendezvous/errors.js'
import { waitForMessage } from '../../../src/rendezvous/wait.js'
import { expectRejection } from '../../support/assert.js'

const fake = (): EventEmitter & RendezvousClient => new EventEmitter() as EventEmitter & RendezvousClient

describe('waitForMessage', () => {
  it('resolves with the first message the predicate accepts and removes its listeners', async () => {
    const c = fake()
    const p = waitForMessage<{ kind: string }>(c, (from, data) => from === 'bob' && (data as { kind: string }).kind === 'answer')
    c.emit('message', 'carol', { kind: 'answer' }, { n: 1 })
    c.emit('message', 'bob', { kind: 'offer' }, { n: 2 })
    c.emit('message', 'bob', { kind: 'answer' }, { n: 3, seq: 7 })
    const m = await p
    expect(m).to.deep.equal({ from: 'bob', data: { kind: 'answer' }, info: { n: 3, seq: 7 } })
    expect(c.listenerCount('message')).to.equal(0)
    expect(c.listenerCount('close')).to.equal(0)
  })

  it('rejects with RendezvousTimeoutError after timeoutMs', async () => {
    const c = fake()
    await expectRejection(waitForMessage(c, () => true, { timeoutMs: 20 }), RendezvousTimeoutError)
    expect(c.listenerCount('message')).to.equal(0)
  })

  it('rejects with AbortError when the signal aborts, and at once if already aborted', async () => {
    const c = fake()
    const ac = new AbortController()
    const p = waitForMessage(c, () => true, { signal: ac.signal })
    ac.abort()
    await expectRejection(p, AbortError)
    await expectRejection(waitForMessage(c, () => true, { signal: AbortSignal.abort() }), AbortError)
    expect(c.listenerCount('message')).to.equal(0)
  })

  it('rejects with RendezvousClosedError when the client closes', async () => {
    const c = fake()
    const p = waitForMessage(c, () => false)
    c.emit('close')
    await expectRejection(p, RendezvousClosedError)
  })

  it('rejects with what the predicate throws', async () => {
    const c = fake()
    const p = waitForMessage(c, () => { throw new RangeError('bad predicate') })
    c.emit('message', 'x', 1, { n: 1 })
    await expectRejection(p, RangeError)
  })
})
