import type { Endpoint } from '../../src/net/endpoint.js'
import type { DatagramSocket } from '../../src/net/udp.js'
import {
  ChannelNumber, ErrorCode, Lifetime, MessageBuilder, MessageClass, Method, Nonce, Realm, StunMessage, XorMappedAddress,
  XorRelayedAddress, encodeChannelData, longTermKey
} from '../../src/stun/index.js'

/** What the scripted server does with a ChannelBind it accepts: the success response, and what goes right behind it. */
export type ChannelBindScript = (reply: { success: Buffer, channel: number, send: (data: Uint8Array) => void }) => void

/**
 * A minimal TURN server over UDP driven by the test (RFC 8656 just enough for one client): challenges the first
 * Allocate with 401, allocates `relayed`, and hands every ChannelBind to `onChannelBind` (or refuses it with 400 when
 * `refuseChannelBind` is set), so a test controls exactly which datagrams reach the client and in what order.
 */
export function scriptedTurnServer (socket: DatagramSocket, o: { relayed: Endpoint, user: string, password: string, onChannelBind: ChannelBindScript, refuseChannelBind?: () => boolean, onRequest?: (method: number) => void }): void {
  const realm = 'scripted.test'
  const key = longTermKey(o.user, realm, o.password)
  socket.onMessage((data: Buffer, from: Endpoint) => {
    let m: StunMessage
    try { m = StunMessage.decode(Buffer.from(data)) } catch { return }
    if (m.cls !== MessageClass.Request) return
    o.onRequest?.(m.method)
    const reply = (cls: MessageClass): MessageBuilder => new MessageBuilder(m.method, cls, m.transactionId)
    if (!m.hasIntegrity()) {
      socket.send(reply(MessageClass.ErrorResponse).add(ErrorCode, { code: 401, reason: 'Unauthorized' }).add(Realm, realm).add(Nonce, 'scripted-nonce').fingerprint().build(), from)
      return
    }
    if (m.method === Method.Allocate) {
      socket.send(reply(MessageClass.SuccessResponse).add(XorRelayedAddress, o.relayed).add(XorMappedAddress, from).add(Lifetime, 600).integrity(key).fingerprint().build(), from)
    } else if (m.method === Method.ChannelBind) {
      const channel = m.get(ChannelNumber) as number
      if (o.refuseChannelBind?.() === true) {
        socket.send(reply(MessageClass.ErrorResponse).add(ErrorCode, { code: 400, reason: 'Bad Request' }).integrity(key).fingerprint().build(), from)
        return
      }
      o.onChannelBind({
        success: reply(MessageClass.SuccessResponse).integrity(key).fingerprint().build(),
        channel,
        send: (d) => { socket.send(d, from) }
      })
    } else if (m.method === Method.Refresh || m.method === Method.CreatePermission) {
      socket.send(reply(MessageClass.SuccessResponse).add(Lifetime, 600).integrity(key).fingerprint().build(), from)
    }
  })
}

/**
 * Two in-memory sockets joined back to back. What one side sends is queued and delivered to the other in one
 * synchronous loop on the next macrotask — as a batched receive (recvmmsg) hands a whole batch to the handler before
 * any promise continuation runs.
 */
export function batchedLink (a: Endpoint, b: Endpoint): [DatagramSocket, DatagramSocket] {
  const handlers: Array<(data: Buffer, from: Endpoint) => void> = [() => {}, () => {}]
  const queues: Array<Array<{ data: Buffer, from: Endpoint }>> = [[], []]
  const make = (self: number, local: Endpoint): DatagramSocket => ({
    local,
    send: (data) => {
      const q = queues[1 - self]
      q.push({ data: Buffer.from(data), from: local })
      if (q.length === 1) setImmediate(() => { for (const d of q.splice(0)) handlers[1 - self](d.data, d.from) })
    },
    onMessage: (h) => { handlers[self] = h },
    close: async () => {}
  })
  return [make(0, a), make(1, b)]
}

export { encodeChannelData }
