import { expect } from 'chai'
import type { Endpoint } from '../../../src/net/endpoint.js'
import type { FastPathHook, TrafficCounters } from '../../../src/relay/data-path.js'
import type { TurnServerCore } from '../../../src/relay/server-core.js'
import type { ClientTransport } from '../../../src/relay/types.js'
import { ChannelNumber, Method, MessageClass, XorPeerAddress } from '../../../src/stun/index.js'
import { Harness, newCore, testOptions } from './harness.js'

const PEER: Endpoint = { address: '127.0.0.2', port: 5000 }

interface Offer { transport: ClientTransport, client: Endpoint, channel: number, relay: string, peer: Endpoint, ttlMs: number }

/** A FastPathHook that records what the core offers it. */
class RecordingHook implements FastPathHook {
  readonly offers: Offer[] = []
  cleared = 0
  install (transport: ClientTransport, client: Endpoint, channel: number, relay: string, peer: Endpoint, ttlMs: number): void {
    this.offers.push({ transport, client, channel, relay, peer, ttlMs })
  }

  collect (t: TrafficCounters): void { t.clientToPeerPackets += 7; t.clientToPeerBytes += 700 }
  clear (): void { this.cleared++ }
}

const channelData = (n: number, text: string): Buffer => {
  const b = Buffer.alloc(4 + text.length); b.writeUInt16BE(n, 0); b.writeUInt16BE(text.length, 2); b.write(text, 4); return b
}

function bound (core: TurnServerCore, h = new Harness(core)): { h: Harness, hook: RecordingHook } {
  const hook = new RecordingHook()
  core.fastPath = hook
  expect(h.allocate().res?.cls).to.equal(MessageClass.SuccessResponse)
  expect(h.request(Method.ChannelBind, (b) => b.add(ChannelNumber, 0x4001).add(XorPeerAddress, PEER)).res?.cls).to.equal(MessageClass.SuccessResponse)
  return { h, hook }
}

describe('offerFastPath (the core\'s side of the native fast path)', () => {
  it('offers a binding it relays, until the nearest of the channel, permission and allocation expiries', () => {
    const core = newCore({ permissionLifetime: 300, channelLifetime: 600, defaultLifetime: 600 })
    const { h, hook } = bound(core)
    h.now += 1000
    expect(h.feed(channelData(0x4001, 'abc'))[0]).to.include({ type: 'relay' })
    expect(hook.offers).to.have.length(1)
    expect(hook.offers[0]).to.deep.include({ client: h.client, channel: 0x4001, peer: PEER, ttlMs: 299_000 })
    // Peer → client over the channel offers it too.
    core.handlePeer(hook.offers[0].relay, Buffer.from('x'), PEER, h.now)
    expect(hook.offers).to.have.length(2)
  })

  const refusals: Array<{ name: string, options?: Parameters<typeof newCore>[0], transport?: ClientTransport }> = [
    { name: 'an allocation with a bandwidth cap (its token bucket counts packets in JS)', options: { bandwidth: 1_000_000 } },
    { name: 'a client over TCP', transport: { protocol: 'tcp', local: { address: '192.0.2.1', port: 3478 }, connection: 'c1' } }
  ]
  for (const c of refusals) {
    it(`offers nothing for ${c.name}`, () => {
      const core = newCore({ ...c.options })
      const { h, hook } = bound(core, new Harness(core, undefined, c.transport))
      const relayed = h.feed(channelData(0x4001, 'abc')).filter(a => a.type === 'relay')
      expect(relayed, 'relayed in JS').to.have.length(1)
      expect(hook.offers).to.have.length(0)
    })
  }

  it('offers nothing once the peer is denied, nor for a dropped packet', () => {
    const core = newCore()
    const { h, hook } = bound(core)
    core.reconfigure(testOptions({ allowPeer: [] }))
    expect(hook.cleared).to.equal(1)
    expect(h.feed(channelData(0x4001, 'abc'))[0]).to.include({ reason: 'denied-peer' })
    expect(h.feed(channelData(0x4002, 'abc'))[0]).to.include({ reason: 'no-channel' })
    expect(hook.offers).to.have.length(0)
  })

  it('folds the fast path\'s counters into the traffic metrics', () => {
    const core = newCore()
    // (Every read of the metrics flushes the traffic, and with it collects from the fast path.)
    core.fastPath = new RecordingHook()
    const snap = (core.metrics as unknown as { snapshot: () => { counters: Record<string, Record<string, number>> } }).snapshot()
    expect(snap.counters.natkit_relay_packets_total['client-to-peer']).to.equal(7)
    expect(snap.counters.natkit_relay_bytes_total['client-to-peer']).to.equal(700)
  })
})
