import { expect } from 'chai'
import { AbortError, StunErrorResponse, StunTimeoutError } from '../../../src/errors.js'
import {
  ErrorCode, MessageBuilder, MessageClass, Method, StunClient, StunMessage, StunTransactions,
  XorMappedAddress
} from '../../../src/stun/index.js'
import { buildBindingRequest } from '../../../src/stun/client.js'
import { expectRejection } from '../../support/assert.js'
import { FakeSocket } from '../../support/fake-socket.js'
import type { Endpoint } from '../../../src/net/endpoint.js'

const SERVER = { address: '198.51.100.1', port: 3478 }

function successFor (request: Buffer, mapped = { address: '203.0.113.7', port: 40000 }): Buffer {
  const req = StunMessage.decode(request)
  return new MessageBuilder(Method.Binding, MessageClass.SuccessResponse, req.transactionId).add(XorMappedAddress, mapped).fingerprint().build()
}

describe('StunTransactions', () => {
  it('retransmits Rc times on the RTO schedule and then rejects with StunTimeoutError', async () => {
    const socket = new FakeSocket()
    const tx = new StunTransactions(socket)
    const started = performance.now()
    const p = tx.request(buildBindingRequest(), SERVER, { rtoMs: 10, rc: 4, rm: 2 })
    await expectRejection(p, StunTimeoutError)
    const elapsed = performance.now() - started
    expect(socket.sent).to.have.length(4)
    // Sends at 0, 10, 30, 70 ms; timeout at 90 ms.
    const offsets = socket.sent.map(s => s.at - socket.sent[0].at)
    expect(offsets[1]).to.be.within(8, 40)
    expect(offsets[3]).to.be.within(65, 150)
    expect(elapsed).to.be.within(85, 300)
    expect(tx.size).to.equal(0)
  })

  it('matches a response by transaction id even from another address, and stops retransmitting', async () => {
    const socket = new FakeSocket()
    const tx = new StunTransactions(socket)
    const p = tx.request(buildBindingRequest(), SERVER, { rtoMs: 20 })
    socket.deliver(successFor(socket.sent[0].data), { address: '198.51.100.2', port: 3479 })
    const res = await p
    expect(res.from).to.deep.equal({ address: '198.51.100.2', port: 3479 })
    expect(res.message.get(XorMappedAddress)).to.deep.equal({ address: '203.0.113.7', port: 40000 })
    await new Promise(resolve => setTimeout(resolve, 60))
    expect(socket.sent).to.have.length(1)
  })

  it('is not disturbed by malformed, unrelated or bad-fingerprint datagrams, nor by another request\'s error', async () => {
    const socket = new FakeSocket()
    const others: Buffer[] = []
    const tx = new StunTransactions(socket, { onOther: (d) => { others.push(d) } })
    const a = tx.request(buildBindingRequest(), SERVER, { rtoMs: 50 })
    const b = tx.request(buildBindingRequest(), SERVER, { rtoMs: 50 })
    const [reqA, reqB] = socket.sent.map(s => s.data)
    socket.deliver(Buffer.from([0]), SERVER)
    socket.deliver(Buffer.from('not stun at all, just bytes'), SERVER)
    const truncated = successFor(reqA).subarray(0, 24)
    socket.deliver(truncated, SERVER)
    const badFp = successFor(reqA)
    badFp[badFp.length - 1] ^= 1
    socket.deliver(badFp, SERVER)
    const err = new MessageBuilder(Method.Binding, MessageClass.ErrorResponse, StunMessage.decode(reqB).transactionId)
      .add(ErrorCode, { code: 400, reason: 'Bad Request' }).build()
    socket.deliver(err, SERVER)
    const resB = await b
    expect(resB.message.cls).to.equal(MessageClass.ErrorResponse)
    expect(tx.size).to.equal(1)
    socket.deliver(successFor(reqA), SERVER)
    const resA = await a
    expect(resA.message.cls).to.equal(MessageClass.SuccessResponse)
    expect(others.map(o => o.length)).to.deep.equal([1, 27])
  })

  it('after the event loop was blocked past the deadline, still takes the answer before concluding silence', async () => {
    // A server in this process, 1 ms away each way (as on the NAT simulator): its answer needs two timer turns.
    class NearServer extends FakeSocket {
      override send (data: Uint8Array, to: Endpoint): void {
        super.send(data, to)
        setTimeout(() => { setTimeout(() => { this.deliver(successFor(Buffer.from(data)), to) }, 1) }, 1)
      }
    }
    const socket = new NearServer()
    const tx = new StunTransactions(socket)
    const p = tx.request(buildBindingRequest(), SERVER, { rtoMs: 10, rc: 2, rm: 2 })
    // Sends at 0 and 10 ms, silence at 30 ms; the loop is blocked (a busy machine, a long GC) for 100 ms, so the
    // retransmission and the deadline fire together, after the first answer's first hop but before its second.
    const blockedUntil = performance.now() + 100
    while (performance.now() < blockedUntil) { /* blocked */ }
    const res = await p
    expect(res.message.cls).to.equal(MessageClass.SuccessResponse)
    expect(socket.sent).to.have.length(2)
    expect(tx.size).to.equal(0)
  })

  it('still concludes silence within one more final wait when the loop was blocked and nothing answers', async () => {
    const socket = new FakeSocket()
    const tx = new StunTransactions(socket)
    const started = performance.now()
    const p = tx.request(buildBindingRequest(), SERVER, { rtoMs: 10, rc: 2, rm: 2 })
    const blockedUntil = performance.now() + 100
    while (performance.now() < blockedUntil) { /* blocked */ }
    await expectRejection(p, StunTimeoutError)
    // The last send went out at ~100 ms (late); the final wait of Rm × RTO = 20 ms is counted from it.
    expect(performance.now() - started).to.be.within(115, 1000)
    expect(socket.sent).to.have.length(2)
    expect(tx.size).to.equal(0)
  })

  it('rejects with AbortError when the signal aborts, and forgets the request', async () => {
    const socket = new FakeSocket()
    const tx = new StunTransactions(socket)
    const ac = new AbortController()
    const p = tx.request(buildBindingRequest(), SERVER, { signal: ac.signal })
    ac.abort()
    await expectRejection(p, AbortError)
    expect(tx.size).to.equal(0)
    await expectRejection(tx.request(buildBindingRequest(), SERVER, { signal: ac.signal }), AbortError)
  })

  it('close() rejects every pending request', async () => {
    const tx = new StunTransactions(new FakeSocket())
    const p = tx.request(buildBindingRequest(), SERVER)
    tx.close()
    await expectRejection(p, AbortError)
  })
})

describe('StunClient', () => {
  it('turns an error response into StunErrorResponse with the code', async () => {
    const socket = new FakeSocket()
    const client = await StunClient.create({ socket })
    const p = client.binding(SERVER, { rtoMs: 50 })
    const req = StunMessage.decode(socket.sent[0].data)
    socket.deliver(new MessageBuilder(Method.Binding, MessageClass.ErrorResponse, req.transactionId).add(ErrorCode, { code: 420, reason: 'Unknown Attribute' }).build(), SERVER)
    const err = await expectRejection(p, StunErrorResponse)
    expect(err.errorCode).to.equal(420)
    await client.close()
    expect(socket.closed).to.equal(false) // a socket the client did not bind is not its to close
  })
})
