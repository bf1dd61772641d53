import { expect } from 'chai'
import type { Endpoint } from '../../../src/net/endpoint.js'
import { StunClient } from '../../../src/stun/client.js'
import { SIM_NAT_PRESETS, SimNetwork, SimStunServer, type SimNatPreset, type SimSocket } from '../../../src/sim/index.js'

/**
 * Whether simultaneous-open punching (each side sends to the other's server-reflexive address, then answers packets at
 * their source) connects each unordered pair of presets, stated from RFC 4787 alone, not from natkit's classifier:
 * - udp-blocked: nothing leaves, so never.
 * - full-cone (EIM, EIF) with anything that sends: the peer's packet reaches the full cone's reflexive address and
 *   is let in whatever its source; the answer to that source passes the peer's NAT, which just sent to it.
 * - restricted-cone (EIM, ADF) with any sender: the peer's packet comes from the peer NAT's IP, which the restricted
 *   cone has sent to (to the reflexive address), so it passes even from a new symmetric port.
 * - port-restricted-cone (EIM, APDF) with an EIM peer: both reflexive addresses are the ports used for the punch, so
 *   each side's hole admits the other.
 * - port-restricted-cone or symmetric with a symmetric peer: the symmetric side sends from a new port the other has
 *   never sent to (APDF drops it), and the other sends to a port filtered to the STUN server: relay.
 */
const CONNECTS: ReadonlyArray<readonly [SimNatPreset, SimNatPreset, boolean]> = [
  ['full-cone', 'full-cone', true],
  ['full-cone', 'restricted-cone', true],
  ['full-cone', 'port-restricted-cone', true],
  ['full-cone', 'symmetric', true],
  ['full-cone', 'symmetric-sequential', true],
  ['full-cone', 'udp-blocked', false],
  ['restricted-cone', 'restricted-cone', true],
  ['restricted-cone', 'port-restricted-cone', true],
  ['restricted-cone', 'symmetric', true],
  ['restricted-cone', 'symmetric-sequential', true],
  ['restricted-cone', 'udp-blocked', false],
  ['port-restricted-cone', 'port-restricted-cone', true],
  ['port-restricted-cone', 'symmetric', false],
  ['port-restricted-cone', 'symmetric-sequential', false],
  ['port-restricted-cone', 'udp-blocked', false],
  ['symmetric', 'symmetric', false],
  ['symmetric', 'symmetric-sequential', false],
  ['symmetric', 'udp-blocked', false],
  ['symmetric-sequential', 'symmetric-sequential', false],
  ['symmetric-sequential', 'udp-blocked', false],
  ['udp-blocked', 'udp-blocked', false]
]

/** Learn the socket's server-reflexive address from a STUN server (undefined when nothing answers). */
async function reflexive (socket: SimSocket, server: Endpoint): Promise<Endpoint | undefined> {
  const client = await StunClient.create({ socket })
  try {
    return (await client.binding(server, { rtoMs: 20, rc: 2, rm: 2 })).mapped
  } catch {
    return undefined
  } finally {
    await client.close()
  }
}

/**
 * Simultaneous-open hole punching as ICE does it: each side sends to the other's server-reflexive address, and answers
 * any packet at its source (a peer-reflexive address). Both sides must hear the other.
 */
async function punch (natA: SimNatPreset, natB: SimNatPreset): Promise<boolean> {
  const net = new SimNetwork({ latencyMs: 1, seed: 9 })
  const stun = await SimStunServer.start(net.addHost('203.0.113.10'))
  const a = await net.addHost('10.0.0.2', { behind: net.addNat('a', '192.0.2.1', natA) }).bind(5000)
  const b = await net.addHost('10.0.0.2', { behind: net.addNat('b', '192.0.2.2', natB) }).bind(5000)
  const [ma, mb] = await Promise.all([reflexive(a, stun.primary), reflexive(b, stun.primary)])
  const heard = { a: false, b: false }
  const listen = (socket: SimSocket, side: 'a' | 'b'): void => {
    const answered = new Set<string>()
    socket.onMessage((data, from) => {
      // Only the peer's packets count (a late answer to a retransmitted STUN request may still arrive).
      const text = data.toString()
      if (text !== 'punch' && text !== 'ack') return
      heard[side] = true
      const key = `${from.address}:${from.port}`
      if (text === 'punch' && !answered.has(key)) { answered.add(key); socket.send(Buffer.from('ack'), from) }
    })
  }
  listen(a, 'a'); listen(b, 'b')
  for (let round = 0; round < 3 && !(heard.a && heard.b); round++) {
    if (mb !== undefined) a.send(Buffer.from('punch'), mb)
    if (ma !== undefined) b.send(Buffer.from('punch'), ma)
    await net.idle()
  }
  await net.close()
  return heard.a && heard.b
}

describe('hole punching through the simulator', () => {
  it('filters at arrival time: two port-restricted cones punching at the same instant both get the first packet', async () => {
    const net = new SimNetwork({ latencyMs: 1 })
    const a = await net.addHost('10.0.0.2', { behind: net.addNat('a', '192.0.2.1', 'port-restricted-cone') }).bind(5000)
    const b = await net.addHost('10.0.0.2', { behind: net.addNat('b', '192.0.2.2', 'port-restricted-cone') }).bind(5000)
    const got: string[] = []
    a.onMessage((_, from) => { got.push(`a from ${from.address}:${from.port}`) })
    b.onMessage((_, from) => { got.push(`b from ${from.address}:${from.port}`) })
    // Port preservation makes the mapped addresses known in advance: 192.0.2.x:5000.
    a.send(Buffer.from('punch'), { address: '192.0.2.2', port: 5000 })
    b.send(Buffer.from('punch'), { address: '192.0.2.1', port: 5000 })
    await net.idle()
    expect(got).to.deep.equal(['b from 192.0.2.1:5000', 'a from 192.0.2.2:5000'])
    await net.close()
  })


  it('the table names every unordered pair of presets once', () => {
    const pairs = CONNECTS.map(([x, y]) => [x, y].sort().join(' <-> '))
    const expected: string[] = []
    for (let i = 0; i < SIM_NAT_PRESETS.length; i++) {
      for (let j = i; j < SIM_NAT_PRESETS.length; j++) expected.push([SIM_NAT_PRESETS[i], SIM_NAT_PRESETS[j]].sort().join(' <-> '))
    }
    expect(pairs.sort()).to.deep.equal(expected.sort())
  })

  for (const [x, y, expected] of CONNECTS) {
    it(`${x} <-> ${y}: ${expected ? 'connects' : 'needs a relay'}`, async () => {
      // Both orders, each on its own network.
      expect(await Promise.all([punch(x, y), punch(y, x)])).to.deep.equal([expected, expected])
    })
  }
})
