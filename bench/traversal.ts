import { readFileSync, writeFileSync } from 'node:fs'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { matrixMarkdown, runConnectMatrix, type MatrixCell } from '../src/lab/matrix.js'
import { canRunLab, median } from './support.js'

/** Targets of the traversal issue. */
export const TRAVERSAL_TARGETS = { firstDatagramMs: 500, directRoundTrips: 3, connectToFirstDatagramMs: 1000 } as const

const DOC = fileURLToPath(new URL('../../docs/benchmarks.md', import.meta.url))
const START = '<!-- connection-matrix:start -->'
const END = '<!-- connection-matrix:end -->'

/**
 * The connection matrix on real kernel NATs (every pair of lab NAT types), measured: time from the synchronised start
 * of the checks to the first working path (target ≤ 500 ms, relay first for pairs that cannot punch) and to a direct
 * path, also in round trips of that path (target ≤ 3); and the wall clock from `connect()` being called (gathering,
 * signalling and trickle included) to the first application datagram from the peer (target ≤ 1 s in every pair,
 * udp-blocked ones included, where TURN/TCP is found without a hand-given transport). Writes the matrix into
 * docs/benchmarks.md.
 */
export async function benchTraversal (options: { write?: boolean } = {}): Promise<Record<string, unknown>> {
  const why = canRunLab()
  if (why !== undefined) return { skipped: why }
  const cells = await runConnectMatrix({ onCell: (c) => { process.stderr.write(`bench: ${c.a} × ${c.b}${c.upnp.length > 0 ? ` (UPnP ${c.upnp.join('+')})` : ''}: ${c.peerA.path ?? 'failed'}/${c.peerB.path ?? 'failed'} ${c.technique ?? ''}\n`) } })
  const peers = cells.flatMap(c => [c.peerA, c.peerB])
  const first = peers.map(p => p.firstDatagramMs).filter((x): x is number => x !== null)
  const relayFirst = cells.filter(c => c.expected === 'relay').flatMap(c => [c.peerA, c.peerB]).map(p => p.firstDatagramMs).filter((x): x is number => x !== null)
  const direct = peers.filter(p => p.path === 'direct' && p.directMs !== null)
  const directRtts = direct.filter(p => p.rttMs !== null && p.rttMs > 0).map(p => (p.directMs as number) / (p.rttMs as number))
  const fromStart = peers.map(p => p.firstMessageFromStartMs).filter((x): x is number => x !== null)
  const blocked = cells.filter(c => c.a === 'udp-blocked' || c.b === 'udp-blocked').flatMap(c => [c.peerA, c.peerB]).map(p => p.firstMessageFromStartMs).filter((x): x is number => x !== null)
  const wrong = cells.filter(c => c.peerA.path !== c.expected || c.peerB.path !== c.expected || c.technique !== c.expectedTechnique).map(c => `${c.a} × ${c.b}${c.upnp.length > 0 ? ` (UPnP ${c.upnp.join('+')})` : ''}`)
  const plain = cells.filter(c => c.upnp.length === 0)
  const isDirect = (c: MatrixCell): boolean => c.peerA.path === 'direct' && c.peerB.path === 'direct'
  // Per technique: the direct path's time after the checks' start and from connect(), both peers of each cell.
  const byTechnique: Record<string, { cells: number, directMs: { median: number, max: number }, connectToDirectMs: { median: number, max: number } }> = {}
  for (const t of new Set(cells.map(c => c.technique).filter((x): x is NonNullable<typeof x> => x !== null))) {
    const ps = cells.filter(c => c.technique === t).flatMap(c => [c.peerA, c.peerB])
    const dm = ps.map(p => p.directMs).filter((x): x is number => x !== null)
    const cm = ps.map(p => p.firstMessageFromStartMs === null || p.directMs === null || p.firstDatagramMs === null ? null : p.firstMessageFromStartMs - p.firstDatagramMs + p.directMs).filter((x): x is number => x !== null)
    byTechnique[t] = { cells: ps.length / 2, directMs: { median: round(median(dm)), max: round(Math.max(...dm)) }, connectToDirectMs: { median: round(median(cm)), max: round(Math.max(...cm)) } }
  }
  const result = {
    cells: cells.length,
    wrongPaths: wrong,
    directShare: { pairs: `${plain.filter(isDirect).length} of ${plain.length}`, withUpnpCells: `${cells.filter(isDirect).length} of ${cells.length}`, before: '16 of 28 (standard ICE only, 7 types)' },
    byTechnique,
    firstDatagramMs: { median: round(median(first)), max: round(Math.max(...first)), target: TRAVERSAL_TARGETS.firstDatagramMs },
    relayPairsFirstDatagramMs: { median: round(median(relayFirst)), max: round(Math.max(...relayFirst)) },
    directMs: { median: round(median(direct.map(p => p.directMs as number))), max: round(Math.max(...direct.map(p => p.directMs as number))) },
    connectToFirstDatagramMs: { median: round(median(fromStart)), max: round(Math.max(...fromStart)), measured: fromStart.length, of: peers.length, target: TRAVERSAL_TARGETS.connectToFirstDatagramMs },
    udpBlockedConnectToFirstDatagramMs: { median: round(median(blocked)), max: round(Math.max(...blocked)) },
    directInRoundTrips: { median: round(median(directRtts)), max: round(Math.max(...directRtts)), target: TRAVERSAL_TARGETS.directRoundTrips },
    note: 'lab round trips are ~0.1-1 ms (no netem in this kernel): a dropped first crossing packet costs one check retransmission (RTO 2x the signalling RTT, at least 5 ms), tens of round trips'
  }
  if (options.write !== false) writeMatrix(cells, result)
  return result
}

function writeMatrix (cells: MatrixCell[], summary: Record<string, unknown>): void {
  const doc = readFileSync(DOC, 'utf8')
  const body = `${START}\nMeasured by \`npm run bench -- traversal\` on ${new Date().toISOString().slice(0, 10)}; first datagram and direct: ms from the synchronised start of the checks; connect() → first datagram: wall clock from that peer's connect() call to the first application datagram from the other peer (gathering, trickle, rendezvous signalling and the other process's start-up included).\n\n${matrixMarkdown(cells)}\n\nSummary: \`${JSON.stringify(summary)}\`\n${END}`
  const next = doc.includes(START) ? doc.replace(new RegExp(`${START}[\\s\\S]*${END}`), body) : `${doc.trimEnd()}\n\n## Connection matrix (issue: traversal)\n\n${body}\n`
  writeFileSync(DOC, next)
}

function round (n: number): number { return Math.round(n * 10) / 10 }

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  console.log(JSON.stringify(await benchTraversal(), null, 2))
}
