import { expect } from 'chai'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { StunErrorResponse } from '../../src/errors.js'
import { MessageBuilder, MessageClass, Method, StunClient, StunServer, stunBinding } from '../../src/stun/index.js'
import { expectRejection } from '../support/assert.js'
import { hasCommand, isRoot, requireOrSkip } from '../support/env.js'
import { run, start } from '../support/process.js'

/** Wireshark's STUN dissector reads every packet natkit's client and server exchanged, without complaint. */
describe('interop: tshark dissects natkit\'s STUN traffic', function () {
  this.timeout(60_000)

  it('every request and response is valid STUN, with no malformed packet and no expert error', async function () {
    requireOrSkip(this, hasCommand('tshark'), 'tshark is not installed (apt-get install tshark)')
    requireOrSkip(this, isRoot(), 'capturing on the loopback interface needs root')
    const dir = mkdtempSync(join(tmpdir(), 'natkit-tshark-'))
    const server = await StunServer.start({ listen: { address: '127.0.0.1', port: 0 }, alternate: { address: '127.0.0.2', port: 0 }, tcp: true })
    const [primary, , , alternate] = server.addresses().udp
    const ports = [primary.port, alternate.port]
    const pcap = join(dir, 'stun.pcapng')
    const filter = ports.map(p => `port ${p}`).join(' or ')
    const capture = await start('tshark', ['-i', 'lo', '-f', filter, '-w', pcap], { ready: /Capture started|File: /, timeoutMs: 15_000 })
    try {
      const client = await StunClient.create({ localAddress: '127.0.0.1' })
      try {
        await client.binding(primary)
        await client.binding(primary, { changeRequest: { ip: true, port: true } })
        await client.binding(primary, { changeRequest: { ip: false, port: true } })
        await client.binding(primary, { padding: 512 })
        // An unknown comprehension-required attribute draws a 420 with UNKNOWN-ATTRIBUTES.
        const bad = new MessageBuilder(Method.Binding, MessageClass.Request).addRaw(0x7001, Buffer.alloc(4)).fingerprint().build()
        const res = await client.transactions.request(bad, primary)
        expect(res.message.cls).to.equal(MessageClass.ErrorResponse)
        // A classic RFC 3489 request (16-byte id, no cookie).
        const classic = new MessageBuilder(Method.Binding, MessageClass.Request, Buffer.from('00112233445566778899aabbccddeeff', 'hex')).build()
        const res2 = await client.transactions.request(classic, primary)
        expect(res2.message.classic).to.equal(true)
        await expectRejection(client.binding(primary, { responsePort: 9, padding: 8 }), StunErrorResponse)
      } finally {
        await client.close()
      }
      await stunBinding(`127.0.0.1:${primary.port}`, { transport: 'tcp', timeoutMs: 5000 })
      await new Promise(resolve => setTimeout(resolve, 500))
    } finally {
      await capture.stop()
      await server.close()
    }
    try {
      const decodeAs = ports.flatMap(p => ['-d', `udp.port==${p},stun`, '-d', `tcp.port==${p},stun`])
      const all = await run('tshark', ['-r', pcap, ...decodeAs, '-Y', 'stun || classicstun', '-T', 'fields', '-e', 'stun.type', '-e', 'stun.att.type'], { timeoutMs: 30_000 })
      const lines = all.stdout.trim().split('\n').filter(l => l !== '')
      // 7 UDP transactions (14 packets, the RFC 3489 pair as classicstun) + 1 TCP transaction (2 packets).
      expect(lines.length, all.stdout + all.stderr).to.equal(16)

      // Severity 0x800000 is Error (malformed included); 0x600000 is Warning.
      const errors = await run('tshark', ['-r', pcap, ...decodeAs, '-Y', '_ws.malformed || _ws.expert.severity >= 0x800000'], { timeoutMs: 30_000 })
      expect(errors.stdout.trim(), 'packets with malformed or error-level expert info').to.equal('')
      // The only warning allowed is Wireshark noting the unknown attribute the test sent on purpose.
      const warnings = await run('tshark', ['-r', pcap, ...decodeAs, '-Y', '_ws.expert.severity >= 0x600000', '-T', 'fields', '-e', '_ws.expert.message'], { timeoutMs: 30_000 })
      expect(warnings.stdout.trim().split('\n')).to.deep.equal(['Unknown attribute 0x7001'])
    } finally {
      if (process.env.NATKIT_KEEP_PCAP === undefined) rmSync(dir, { recursive: true, force: true }); else console.error('pcap kept at', pcap)
    }
  })
})
