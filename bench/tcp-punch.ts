import { pathToFileURL } from 'node:url'
import { Lab, LAB_STUN_PORT } from '../src/lab/index.js'
import type { LabNatType } from '../src/lab/index.js'
import { WORKER_PATH, type PeerTask, type PeerWorkerResult } from '../src/lab/worker.js'
import { canRunLab, median } from './support.js'

interface Run { direct: boolean, attempts: number | null, connectedMs: number | null, directFromStartMs: number | null, firstPathFromStartMs: number | null }

/**
 * TCP simultaneous open on real kernel NATs (`npm run bench -- tcp-punch`): for tcp-only × tcp-only and tcp-only ×
 * port-restricted-cone, K fresh pairs of peer processes with `tcpSimultaneousOpen` (TURN over TCP available too, as a
 * deployment has it): how often both sides end on the direct TCP path, how many attempts it took, the time from the
 * checks' start to the authenticated TCP path (`connectedMs`) and from connect() being called to the direct path;
 * beside it, one pair without the option and its time to the first (relayed) path.
 */
export async function benchTcpPunch (options: { runs?: number } = {}): Promise<Record<string, unknown>> {
  const why = canRunLab()
  if (why !== undefined) return { skipped: why }
  const runs = options.runs ?? 10
  const out: Record<string, unknown> = { runs }
  for (const natB of ['tcp-only', 'port-restricted-cone'] as LabNatType[]) {
    const lab = await Lab.up({ natA: 'tcp-only', natB, servers: true, prefix: `nktpb-${natB === 'tcp-only' ? 't' : 'c'}${process.pid % 10000}-` })
    try {
      const punched: Run[] = []
      for (let i = 0; i < runs; i++) punched.push(runOf(...await peers(lab, `p${i}`, true)))
      const [ra, rb] = await peers(lab, 'relay', false)
      out[`tcp-only × ${natB}`] = {
        ...summary(punched),
        withoutOption: { path: `${ra.path?.type ?? 'failed'}/${rb.path?.type ?? 'failed'}`, firstPathFromStartMs: ra.timings === null ? null : (ra.timings as { firstPathFromStartMs?: number | null }).firstPathFromStartMs ?? null }
      }
    } finally { await lab.down() }
  }
  out.note = 'lab round trips are ~0.1-1 ms; connectedMs counts from the coordinated moment both peers start checks'
  return out
}

function runOf (a: PeerWorkerResult, b: PeerWorkerResult): Run {
  const t = a.timings as { directFromStartMs?: number | null, firstPathFromStartMs?: number | null } | null
  return {
    direct: a.transport === 'tcp' && b.transport === 'tcp' && a.path?.type === 'direct' && b.path?.type === 'direct' && a.delivered === b.delivered && a.delivered > 0,
    attempts: a.tcpPunch?.attempts.length ?? null,
    connectedMs: a.tcpPunch?.connectedMs ?? null,
    directFromStartMs: t?.directFromStartMs ?? null,
    firstPathFromStartMs: t?.firstPathFromStartMs ?? null
  }
}

function summary (rs: Run[]): Record<string, unknown> {
  return {
    direct: `${rs.filter(r => r.direct).length}/${rs.length}`,
    attempts: stats(rs.map(r => r.attempts)),
    connectedMs: stats(rs.map(r => r.connectedMs)),
    directFromStartMs: stats(rs.map(r => r.directFromStartMs))
  }
}

function stats (xs: Array<number | null>): { median: number, max: number } | null {
  const v = xs.filter((x): x is number => x !== null)
  return v.length === 0 ? null : { median: Math.round(median(v) * 10) / 10, max: Math.round(Math.max(...v) * 10) / 10 }
}

async function peers (lab: Lab, tag: string, punch: boolean): Promise<[PeerWorkerResult, PeerWorkerResult]> {
  const s = lab.services
  if (s === undefined) throw new Error('the lab has no servers')
  const task = (me: string, peer: string): PeerTask => ({
    task: 'peer', rendezvous: s.rendezvous, id: me, peer, secret: s.secret, turn: s.turn, count: 5, timeoutMs: 20_000, settleMs: 3000,
    stun: [`${lab.info.server.primaryIp}:${LAB_STUN_PORT}`], ...(punch ? { tcpSimultaneousOpen: true } : {})
  })
  const one = async (site: 'a' | 'b', t: PeerTask): Promise<PeerWorkerResult> => {
    const r = await lab.exec(site, [process.execPath, WORKER_PATH, JSON.stringify(t)], { timeoutMs: 60_000 })
    return JSON.parse(r.stdout) as PeerWorkerResult
  }
  return await Promise.all([one('a', task(`${tag}-a`, `${tag}-b`)), one('b', task(`${tag}-b`, `${tag}-a`))])
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  console.log(JSON.stringify(await benchTcpPunch(), null, 2))
}
