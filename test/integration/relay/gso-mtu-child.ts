/**
 * Child of gso-mtu.test.ts, run in a network namespace of its own whose loopback has a small MTU: a TurnServer with
 * the native fast path, a client with a channel to a peer, then bursts of ChannelData whose payloads are larger than
 * the MTU allows a GSO segment to be (the kernel refuses such a GSO message), smaller, and larger again. Prints one
 * JSON line: what the peer received, and the relay socket's send counters over the bursts.
 */
import { spawnSync } from 'node:child_process'
import { UdpSocket } from '../../../src/net/udp.js'
import { BatchUdpSocket } from '../../../src/net/batch-udp.js'
import { TurnServer } from '../../../src/relay/turn-server.js'
import { RawClient } from './support.js'

const SIZES = [...Array(20).fill(1400), ...Array(20).fill(100), ...Array(20).fill(1400)] as number[]

const sleep = (ms: number): Promise<void> => new Promise((resolve) => { setTimeout(resolve, ms) })

const server = await TurnServer.start({
  realm: 'natkit.test', users: { alice: 'secret' }, listen: [{ address: '127.0.0.1', port: 0 }], tcp: false,
  allowPeer: ['127.0.0.0/8'], portRange: [47000, 47999]
})
const peer = await UdpSocket.bind({ address: '127.0.0.1', port: 0 })
const client = await RawClient.open(server.addresses.udp[0])
try {
  const got: Buffer[] = []
  peer.onMessage((d) => { got.push(Buffer.from(d)) })
  await client.allocateAndBind(peer.local)
  client.channelData('first')
  for (let i = 0; i < 100 && got.length === 0; i++) await sleep(10)
  got.length = 0
  const relay = [...(server as unknown as { relays: { sockets: Map<string, { socket: unknown }> } }).relays.sockets.values()][0]?.socket
  if (!(relay instanceof BatchUdpSocket)) throw new Error('the relay socket is not native')
  const before = relay.stats()
  SIZES.forEach((n, i) => { client.channelData(Buffer.alloc(n, i)) })
  for (let i = 0; i < 300 && got.length < SIZES.length; i++) await sleep(10)
  await sleep(50)
  const after = relay.stats()
  console.log(JSON.stringify({
    fastPath: server.fastPath.enabled,
    mtu: Number(/ mtu (\d+)/.exec(spawnSync('ip', ['-o', 'link', 'show', 'lo'], { encoding: 'utf8' }).stdout)?.[1]),
    sent: SIZES,
    received: got.map(b => b.length),
    intact: got.every((b, i) => b.length === SIZES[i] && b.every(x => x === (i & 0xff))),
    relay: {
      sent: after.sent - before.sent,
      sendErrors: after.sendErrors - before.sendErrors,
      sendDrops: after.sendDrops - before.sendDrops,
      gsoMessages: after.gsoMessages - before.gsoMessages,
      gsoDatagrams: after.gsoDatagrams - before.gsoDatagrams
    }
  }))
} finally {
  await client.close()
  await peer.close()
  await server.close()
}
