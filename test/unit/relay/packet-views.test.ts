import { expect } from 'chai'
import { ChannelNumber, MessageClass, Method, RequestedTransport, TransportProtocol, XorPeerAddress, encodeChannelData } from '../../../src/stun/index.js'
import type { RelaySink } from '../../../src/relay/data-path.js'
import type { InMemoryRelayMetrics } from '../../../src/relay/metrics.js'
import { Harness, newCore } from './harness.js'

const PEER = { address: '127.0.0.1', port: 40001 }

/**
 * The native UDP socket hands the relay views of a receive buffer that the next batch overwrites. These tests feed
 * the core such views, then overwrite them, and check that nothing the core kept changed.
 */
describe('TurnServerCore with packet views that are overwritten after each call', () => {
  /** Feed a copy of `packet`, then scribble over the copy, as the next recvmmsg batch would. */
  function feedView (h: Harness, packet: Uint8Array): ReturnType<Harness['feed']> {
    const view = Buffer.from(packet)
    const actions = h.feed(view)
    view.fill(0xa5)
    return actions
  }

  it('keeps allocations, channels and cached answers intact', () => {
    const h = new Harness(newCore({ legacyChannels: true }))
    h.fetchNonce()
    const alloc = h.build(Method.Allocate, (b) => b.add(RequestedTransport, TransportProtocol.UDP))
    const first = Harness.response(feedView(h, alloc))
    expect(first?.cls).to.equal(MessageClass.SuccessResponse)
    // A retransmission gets the cached answer, byte for byte, although the original request bytes were overwritten.
    const again = Harness.response(feedView(h, alloc))
    expect(again?.raw.equals(first?.raw as Buffer)).to.equal(true)
    const bind = h.build(Method.ChannelBind, (b) => b.add(ChannelNumber, 0x7001).add(XorPeerAddress, PEER))
    expect(Harness.response(feedView(h, bind))?.cls).to.equal(MessageClass.SuccessResponse)
    // The binding's peer survives the overwrite: ChannelData on 0x7001 (RFC 5766 range) goes to PEER.
    const actions = h.feed(encodeChannelData(0x7001, Buffer.from('ping'), { legacyChannels: true }))
    const relay = actions.find(a => a.type === 'relay')
    expect(relay).to.deep.include({ type: 'relay', to: PEER })
    expect(Buffer.from((relay as { data: Uint8Array }).data).toString()).to.equal('ping')
  })

  it('hands relayed data to the sink synchronously and returns no actions', () => {
    const core = newCore()
    const h = new Harness(core)
    expect(h.allocate().res?.cls).to.equal(MessageClass.SuccessResponse)
    expect(h.request(Method.ChannelBind, (b) => b.add(ChannelNumber, 0x4001).add(XorPeerAddress, PEER)).res?.cls).to.equal(MessageClass.SuccessResponse)
    const seen: string[] = []
    const sink: RelaySink = {
      toPeer: (relay, peer, data) => { seen.push(`peer ${relay} ${peer.port} ${Buffer.from(data).toString()}`) },
      toClient: (_t, client, channel, data) => { seen.push(`client ${client.port} 0x${channel.toString(16)} ${Buffer.from(data).toString()}`) }
    }
    core.sink = sink
    expect(feedView(h, encodeChannelData(0x4001, Buffer.from('out')))).to.have.length(0)
    expect(core.handlePeer('a1v4', Buffer.from('back'), PEER, h.now)).to.have.length(0)
    expect(seen).to.deep.equal(['peer a1v4 40001 out', `client ${h.client.port} 0x4001 back`])
    const m = core.metrics as InMemoryRelayMetrics
    expect(m.get('natkit_relay_packets_total', 'client-to-peer')).to.equal(1)
    expect(m.get('natkit_relay_bytes_total', 'peer-to-client')).to.equal(4)
  })

  it('refuses RFC 5766 channel numbers when legacyChannels is off (RFC 8656 §12: 0x4000-0x4FFF)', () => {
    const h = new Harness(newCore({ legacyChannels: false }))
    expect(h.allocate().res?.cls).to.equal(MessageClass.SuccessResponse)
    const res = h.request(Method.ChannelBind, (b) => b.add(ChannelNumber, 0x5000).add(XorPeerAddress, PEER)).res
    expect(Harness.errorCode(res)).to.equal(400)
    expect(h.feed(encodeChannelData(0x5000, Buffer.from('x'), { legacyChannels: true }))).to.deep.equal([{ type: 'ignore', reason: 'unknown-kind' }])
  })
})
