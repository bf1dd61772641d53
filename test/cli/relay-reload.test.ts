import { expect } from 'chai'
import { createSocket } from 'node:dgram'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { connect } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { StunErrorResponse } from '../../src/errors.js'
import type { Endpoint } from '../../src/net/endpoint.js'
import { nativeUdpAvailable } from '../../src/net/native.js'
import { TurnClient } from '../../src/relay/turn-client.js'
import { natcheckStart } from '../support/cli.js'
import { type Started, waitForOutput } from '../support/process.js'
import { echoPeer, freePort, roundTrip } from '../integration/relay/support.js'

/**
 * SIGHUP on a real `natcheck relay` process with a changed config file: a listen address added, one removed, and
 * the relay IP moved from 127.0.0.1 to 127.0.0.2 — while a client allocated before keeps relaying throughout.
 */

const USER = { username: 'alice', password: 'wonderland' }

/** Whether a TCP connection to 127.0.0.1:port is accepted (bounded). */
async function tcpAccepts (port: number): Promise<boolean> {
  return await new Promise<boolean>((resolve) => {
    const sock = connect({ host: '127.0.0.1', port })
    const t = setTimeout(() => { sock.destroy(); resolve(false) }, 2000)
    sock.once('connect', () => { clearTimeout(t); sock.destroy(); resolve(true) })
    sock.once('error', () => { clearTimeout(t); resolve(false) })
  })
}

/** Whether this process can bind UDP 127.0.0.1:port (only once nobody else holds it). */
async function udpFree (port: number): Promise<boolean> {
  const s = createSocket('udp4')
  const ok = await new Promise<boolean>((resolve) => {
    s.once('error', () => { resolve(false) })
    s.bind(port, '127.0.0.1', () => { resolve(true) })
  })
  await new Promise<void>((resolve) => { if (ok) s.close(() => { resolve() }); else resolve() })
  return ok
}

/** Send a numbered datagram through `client` every 20 ms until stopped; how many were sent and echoed. */
function steadyStream (client: TurnClient, peer: Endpoint): { stop: () => Promise<{ sent: number, echoed: number }> } {
  const seen = new Set<number>()
  let sent = 0
  const onData = (data: Buffer, from: Endpoint): void => { if (from.port === peer.port && data.length === 48) seen.add(data.readUInt32BE(0)) }
  client.on('data', onData)
  const timer = setInterval(() => {
    const b = Buffer.alloc(48, 0x62); b.writeUInt32BE(sent++, 0)
    client.send(b, peer)
  }, 20)
  return {
    stop: async () => {
      clearInterval(timer)
      const deadline = Date.now() + 3000
      while (seen.size < sent && Date.now() < deadline) await new Promise(resolve => setTimeout(resolve, 20))
      client.off('data', onData)
      return { sent, echoed: seen.size }
    }
  }
}

for (const workers of [1, 2]) {
  describe(`natcheck relay --workers ${workers}: SIGHUP adds and removes listeners and moves the relay IP`, function () {
    this.timeout(90_000)
    const started: Started[] = []
    const clients: TurnClient[] = []
    let dir = ''
    let peer: Awaited<ReturnType<typeof echoPeer>>

    before(async () => {
      dir = mkdtempSync(join(tmpdir(), 'natkit-relay-reload-'))
      peer = await echoPeer()
    })
    after(async () => {
      for (const c of clients) await c.close()
      for (const s of started) await s.stop()
      await peer?.close()
      rmSync(dir, { recursive: true, force: true })
    })

    async function allocate (port: number): Promise<TurnClient> {
      const c = await TurnClient.allocate({ server: `127.0.0.1:${port}`, transport: 'udp', credentials: USER })
      clients.push(c)
      return c
    }

    it('opens the new listener, closes the removed one once its last allocation ends, relays new allocations from the new IP, and keeps the old allocation relaying throughout', async () => {
      const [keep, add, drop] = [await freePort(), await freePort(), await freePort()]
      const base = 20000 + Math.floor(Math.random() * 20000)
      const config = join(dir, 'relay.json')
      const settings = (listen: number[], relayIp: string): string => JSON.stringify({
        realm: 'natkit.test', users: { [USER.username]: USER.password }, allowPeer: ['127.0.0.0/8'], drainTimeout: 1,
        listen: listen.map(p => `127.0.0.1:${p}`), relayIp, ports: `${base}-${base + 199}`, workers
      })
      writeFileSync(config, settings([keep, drop], '127.0.0.1'))
      const s = await natcheckStart(['relay', '--config', config], new RegExp(`listening tcp 127\\.0\\.0\\.1:${drop}`))
      started.push(s)
      expect(s.output()).to.match(new RegExp(`listening tcp 127\\.0\\.0\\.1:${keep}`))
      // With the native addon the relay really runs two workers (without it, it falls back to one and says so).
      if (workers === 2 && nativeUdpAvailable()) expect(await waitForOutput(s, /workers 2 \(SO_REUSEPORT/, 5000), s.output()).to.equal(true)

      // Before: a client on the listener that stays, one on the listener that goes.
      const old = await allocate(keep)
      expect(old.allocation.relayed.address).to.equal('127.0.0.1')
      expect(await roundTrip(old, peer.endpoint, 20)).to.equal(20)
      const leaving = await allocate(drop)
      expect(leaving.allocation.relayed.address).to.equal('127.0.0.1')
      expect(await roundTrip(leaving, peer.endpoint, 20)).to.equal(20)
      expect(await tcpAccepts(add)).to.equal(false)

      // The reload, while the old client relays a steady stream.
      const stream = steadyStream(old, peer.endpoint)
      writeFileSync(config, settings([keep, add], '127.0.0.2'))
      s.child.kill('SIGHUP')
      expect(await waitForOutput(s, /configuration reloaded/, 10_000), s.output()).to.equal(true)
      expect(s.output()).to.match(new RegExp(`listening udp 127\\.0\\.0\\.1:${add}`))
      expect(s.output()).to.match(new RegExp(`listening tcp 127\\.0\\.0\\.1:${add}`))
      expect(s.output()).to.match(new RegExp(`stopped listening tcp 127\\.0\\.0\\.1:${drop}`))

      // The new listener serves (UDP and TCP), and new allocations relay from the new relay IP.
      expect(await tcpAccepts(add)).to.equal(true)
      const fresh = await allocate(add)
      expect(fresh.allocation.relayed.address).to.equal('127.0.0.2')
      expect(await roundTrip(fresh, peer.endpoint, 20)).to.equal(20)
      const freshOnKept = await allocate(keep)
      expect(freshOnKept.allocation.relayed.address).to.equal('127.0.0.2')

      // The removed listener: TCP closed at once, no new allocation through UDP (508), the one made before relays on.
      expect(await tcpAccepts(drop)).to.equal(false)
      const refused = await allocate(drop).then(() => undefined, (err: unknown) => err)
      expect(refused).to.be.instanceOf(StunErrorResponse)
      expect((refused as StunErrorResponse).errorCode).to.equal(508)
      expect(await roundTrip(leaving, peer.endpoint, 20)).to.equal(20)
      expect(await udpFree(drop)).to.equal(false)
      // Its last allocation ends: the UDP listener closes (bounded wait: the relay sweeps every second).
      await leaving.close()
      let freed = false
      for (let i = 0; i < 30 && !freed; i++) {
        freed = await udpFree(drop)
        if (!freed) await new Promise(resolve => setTimeout(resolve, 200))
      }
      expect(freed, 'the removed UDP listener was never closed').to.equal(true)

      // The allocation made before the reload kept its relayed address and relayed throughout; it still refreshes.
      await new Promise(resolve => setTimeout(resolve, 1000))
      const { sent, echoed } = await stream.stop()
      expect(sent).to.be.at.least(20)
      expect(echoed).to.equal(sent)
      expect(old.allocation.relayed.address).to.equal('127.0.0.1')
      await old.refresh()
      expect(await roundTrip(old, peer.endpoint, 20)).to.equal(20)
    })
  })
}
