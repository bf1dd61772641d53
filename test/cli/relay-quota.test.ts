import { relayPortBase } from '../support/net.js'
import { expect } from 'chai'
import { natcheck, natcheckStart } from '../support/cli.js'
import { hasCommand, requireOrSkip } from '../support/env.js'
import { type Started, waitForOutput } from '../support/process.js'
import { Processes, freePort, parseUclient } from '../integration/relay/support.js'

/**
 * The defaults an operator meets first: one static credential shared by many clients (coturn's turnutils_uclient
 * -m 20, or twenty browsers of one web app). coturn has no per-user quota unless asked, and neither has natkit.
 */
describe('natcheck relay quotas (CLI, coturn turnutils_uclient)', function () {
  this.timeout(120_000)
  const procs = new Processes()
  const started: Started[] = []
  let peerPort = 0

  before(async function () {
    requireOrSkip(this, hasCommand('turnutils_uclient') && hasCommand('turnutils_peer'), 'coturn utilities (turnutils_uclient, turnutils_peer) not installed')
    peerPort = await freePort()
    procs.start('turnutils_peer', ['-L', '127.0.0.1', '-p', String(peerPort)])
    await new Promise((resolve) => setTimeout(resolve, 300))
  })
  after(async () => {
    for (const s of started) await s.stop()
    await procs.killAll()
  })

  async function startRelay (args: string[]): Promise<{ s: Started, port: number }> {
    const port = await freePort()
    const base = relayPortBase()
    const s = await natcheckStart(['relay', '--listen', `127.0.0.1:${port}`, '--ports', `${base}-${base + 499}`, '--realm', 'natkit.test', '--allow-peer', '127.0.0.0/8', ...args], /listening udp 127\.0\.0\.1:\d+/)
    started.push(s)
    return { s, port }
  }

  const uclient = async (port: number, extra: string[]): Promise<{ output: string, totals: ReturnType<typeof parseUclient> }> => {
    const { output } = await procs.run('turnutils_uclient', ['-u', 'u', '-w', 'p', '-p', String(port), '-e', '127.0.0.1', '-r', String(peerPort), ...extra, '127.0.0.1'], 60_000)
    return { output, totals: parseUclient(output) }
  }

  it('serves 20 clients sharing one credential (uclient -m 20), twice in a row, with no 486', async () => {
    const { s, port } = await startRelay(['--user', 'u:p'])
    for (let run = 1; run <= 2; run++) {
      // -m 20 with RTP+RTCP pairs (EVEN-PORT, RESERVATION-TOKEN): the first run's live on through the second.
      const { output, totals } = await uclient(port, ['-n', '5', '-m', '20'])
      expect(totals, `run ${run}: ${output.slice(-1500)}`).to.not.equal(undefined)
      expect(totals?.sent, `run ${run}`).to.equal(100)
      expect(totals?.received, `run ${run}`).to.equal(100)
    }
    // At least one allocation per client and run, all for user u at once (the old default of 10 per user refused the 11th).
    expect((s.output().match(/natcheck relay: allocation \d+ user=u /g) ?? []).length).to.be.at.least(40)
    expect(s.output()).to.not.match(/refused/)
  })

  it('with --user-quota 2 refuses the third allocation with 486, logs which quota refused whom, and natcheck turn names the fix', async () => {
    const { s, port } = await startRelay(['--user', 'u:p', '--user-quota', '2'])
    // -c: one allocation per client (no RTCP pair), so three clients ask for three allocations.
    const { totals } = await uclient(port, ['-n', '3', '-m', '3', '-c'])
    expect(await waitForOutput(s, /allocation refused \(486\): user quota of 2 reached, user=u client=udp:127\.0\.0\.1:\d+/, 5000), s.output()).to.equal(true)
    expect((s.output().match(/natcheck relay: allocation \d+ user=u /g) ?? []).length).to.equal(2)
    expect(totals?.received ?? 0).to.be.below(9)

    // The two allocations live on for their lifetime: natcheck turn as the same user meets the quota too.
    const r = await natcheck(['turn', `127.0.0.1:${port}`, '--user', 'u:p', '--timeout', '3000'], { timeoutMs: 30_000 })
    expect(r.code, r.stdout + r.stderr).to.not.equal(0)
    expect(r.stdout).to.match(/486 Allocation Quota Reached/)
    expect(r.stdout).to.match(/--user-quota/)
    expect((s.output().match(/allocation refused \(486\): user quota of 2/g) ?? []).length).to.be.at.least(2)
  })
})
