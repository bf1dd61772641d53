import type { Command } from 'commander'
import { TransportError } from '../errors.js'
import { discoverNat } from '../discovery/discover.js'
import { labSupported } from '../lab/lab.js'
import { matrixMarkdown, runConnectMatrix } from '../lab/matrix.js'
import { formatEndpoint } from '../net/endpoint.js'
import { checkTurn, type TurnCheckReport } from '../relay/turn-check.js'
import { TurnServer } from '../relay/turn-server.js'
import { RendezvousClient } from '../rendezvous/client.js'
import { RendezvousServer } from '../rendezvous/server.js'
import { rendezvousToken } from '../rendezvous/token.js'
import { StunServer } from '../stun/server.js'
import { stunBinding } from '../stun/client.js'
import { connect, type ConnectReport, type PeerSession } from '../traversal/session.js'
import { rendezvousChannel } from '../traversal/rendezvous-channel.js'
import { printJson, reportError, useColor, styler } from './output.js'
import { renderReport } from './render-report.js'

const SECRET = 'natkit-demo'

/**
 * `natcheck demo`: everything with no setup and no internet. natkit's STUN, TURN and rendezvous servers on loopback
 * (127.0.0.1 and 127.0.0.2), a classification, a TURN check, and two peers connecting directly and through the
 * relay; as root on Linux, also the real-kernel NAT lab's connection matrix.
 */
export function registerDemo (program: Command): void {
  program.command('demo')
    .description('run natkit end to end on loopback: STUN/TURN/rendezvous servers, NAT discovery, a TURN check, two peers connecting directly and via the relay (plus the NAT lab matrix as root)')
    .option('--json', 'print one JSON document')
    .option('--no-lab', 'skip the NAT lab matrix even as root')
    .action(async (flags: { json?: boolean, lab?: boolean }) => {
      const json = flags.json === true
      const color = useColor(process.stdout, undefined)
      const s = styler(color)
      const out = (text: string): void => { if (!json) process.stdout.write(text) }
      const closers: Array<() => Promise<void>> = []
      try {
        const stun = await StunServer.start({ listen: { address: '127.0.0.1', port: 0 }, alternate: { address: '127.0.0.2', port: 0 }, tcp: true })
        closers.push(async () => { await stun.close() })
        const turn = await TurnServer.start({ listen: [{ address: '127.0.0.1', port: 0 }], realm: 'natkit.demo', authSecret: SECRET, allowPeer: ['127.0.0.0/8'] })
        closers.push(async () => { await turn.close() })
        const rendezvous = await RendezvousServer.start({ listen: { address: '127.0.0.1', port: 0 }, authSecret: SECRET })
        const rendezvousUrl = rendezvous.url ?? ''
        closers.push(async () => { await rendezvous.close() })
        const a = stun.addresses()
        const turnAt = formatEndpoint(turn.addresses.udp[0])
        process.stderr.write(`natcheck demo: STUN on ${formatEndpoint(a.udp[0])} (+127.0.0.2), TURN on ${turnAt}, rendezvous on ${rendezvous.url}\n`)

        const udp = await stunBinding(formatEndpoint(a.udp[0]), { timeoutMs: 3000 })
        const tcp = await stunBinding(formatEndpoint(a.tcp[0]), { transport: 'tcp', timeoutMs: 3000 })
        out(s.bold('1. STUN Binding against natkit\'s server\n'))
        out(`   UDP: mapped ${formatEndpoint(udp.mapped)} in ${udp.rttMs.toFixed(2)} ms; TCP: mapped ${formatEndpoint(tcp.mapped)} in ${tcp.rttMs.toFixed(2)} ms\n\n`)

        const discovery = await discoverNat({ servers: [formatEndpoint(a.udp[0])], timeoutMs: 2000 })
        out(s.bold('2. NAT discovery (RFC 5780) on the loopback path — no NAT here, so it says "open"\n'))
        out(renderReport(discovery, color).replace(/^/gm, '   ') + '\n')

        const turnCheck = await checkTurn({ server: turnAt, credentials: { authSecret: SECRET, user: 'demo' }, count: 20 })
        out(s.bold('3. TURN check against natkit\'s relay (what `natcheck turn` does)\n'))
        out(`   ${turnSummary(turnCheck)}\n\n`)

        const direct = await connectPair(rendezvousUrl, turnAt, 'all')
        closers.push(async () => { await direct[0].close(); await direct[1].close() })
        out(s.bold('4. Two peers connect through the rendezvous, punching directly (relay as fallback)\n'))
        out(`   ${pathSummary(direct[0].report())}\n\n`)
        const relayed = await connectPair(rendezvousUrl, turnAt, 'relay')
        closers.push(async () => { await relayed[0].close(); await relayed[1].close() })
        out(s.bold('5. The same two peers, relayed candidates only (a symmetric NAT on both sides would end here)\n'))
        out(`   ${pathSummary(relayed[0].report())}\n\n`)

        let matrix: string | undefined
        const lab = flags.lab === false ? { ok: false, reason: '--no-lab' } : await labSupported()
        if (lab.ok) {
          out(s.bold('6. Real kernel NATs (network namespaces + nftables): every pair of NAT types\n'))
          const cells = await runConnectMatrix({ onCell: (c) => { process.stderr.write(`natcheck demo: ${c.a} × ${c.b}: ${c.peerA.path ?? 'failed'} (${c.ms} ms)\n`) } })
          matrix = matrixMarkdown(cells)
          out(matrix + '\n')
        } else {
          out(s.dim(`(the NAT lab matrix needs Linux and root: ${lab.reason ?? 'unavailable'})\n`))
        }
        if (json) {
          printJson({
            stun: { udp: { mapped: udp.mapped, rttMs: udp.rttMs }, tcp: { mapped: tcp.mapped, rttMs: tcp.rttMs } },
            discovery,
            turn: turnCheck,
            direct: direct[0].report(),
            relayed: relayed[0].report(),
            matrix: matrix ?? null
          })
        }
      } catch (err) {
        reportError(err, json)
      } finally {
        for (const close of closers.reverse()) await close().catch(() => {})
      }
    })
}

/** Two in-process peers (alice controlling, bob controlled) connecting through the demo's rendezvous and relay. */
async function connectPair (url: string, turnAt: string, policy: 'all' | 'relay'): Promise<[PeerSession, PeerSession]> {
  const clients = await Promise.all(['alice', 'bob'].map(async id => await RendezvousClient.connect({ url, id, token: rendezvousToken(SECRET, id, 600) })))
  try {
    const turnServers = [{ server: turnAt, credentials: { authSecret: SECRET, user: 'demo' } }]
    const sessions = await Promise.all([
      connect({ channel: rendezvousChannel(clients[0], 'bob'), role: 'controlling', bindAddress: '127.0.0.1', turnServers, policy }),
      connect({ channel: rendezvousChannel(clients[1], 'alice'), role: 'controlled', bindAddress: '127.0.0.1', turnServers, policy })
    ])
    // One datagram each way proves the path carries data.
    const got = new Promise<string>(resolve => sessions[1].once('message', d => { resolve(d.toString()) }))
    sessions[0].send(Buffer.from('hello through natkit'))
    await Promise.race([got, new Promise((_resolve, reject) => setTimeout(() => { reject(new TransportError('the demo datagram did not arrive within 3 s')) }, 3000).unref())])
    return sessions as [PeerSession, PeerSession]
  } finally {
    await Promise.all(clients.map(async c => { await c.close() }))
  }
}

function pathSummary (r: ConnectReport): string {
  const p = r.path
  if (p === null) return 'no path'
  const direct = r.timings.directMs === null ? '' : `, direct after ${r.timings.directMs} ms`
  return `path ${p.type}: ${p.local.type} ${formatEndpoint(p.local)} → ${p.remote.type} ${formatEndpoint(p.remote)}; first datagram ${r.timings.firstDatagramMs ?? '?'} ms after the checks started${direct}; ${r.attempts.length} pair(s) checked`
}

function turnSummary (r: TurnCheckReport): string {
  if (!r.ok) return `failed at ${r.failure?.step ?? '?'}: ${r.failure?.message ?? ''}`
  return `relayed address ${r.allocation !== null ? formatEndpoint(r.allocation.relayed) : '?'}, RTT ${r.rttMs ?? '?'} ms, loss ${((r.loss ?? 0) * 100).toFixed(1)} %, ${r.throughputMbps ?? '?'} Mbit/s`
}
