import { pathToFileURL } from 'node:url'
import { Lab, LAB_STUN_PORT, type LabNatType } from '../src/lab/index.js'
import { WORKER_PATH, type PeerTask, type PeerWorkerResult } from '../src/lab/worker.js'
import { canRunLab, median } from './support.js'

interface Run { direct: boolean, directMs: number | null, connectToFirstDatagramMs: number | null, portUsed: number | null }

/**
 * Hard-NAT techniques on real kernel NATs, each pair of the issue that relays without them (`npm run bench -- hardnat`):
 * - port prediction: symmetric-sequential × port-restricted cone, both agents with `portPrediction` (12 ports);
 *   how often it goes direct, the time to the direct path (ms from the checks' start, and connect() → first datagram),
 *   and which predicted port the NAT gave (1 = the first predicted: the ports the peer spent checking before the hit);
 * - port prediction at both ends: symmetric-sequential × symmetric-sequential, both predicting (each side's first checks
 *   go to the other's predicted ports in order); direct share, time, and which predicted port pair was used;
 * - port mapping: symmetric × port-restricted cone, the symmetric side's router running a real miniupnpd (PCP, NAT-PMP,
 *   UPnP IGD; src/lab/miniupnpd.ts), the agent with `portMapping` asking all three at once (the default, first grant
 *   wins); how often direct and how fast.
 * - birthday spray: symmetric (random ports, `fully-random`) × port-restricted cone, both agents with `birthdaySpray`
 *   (256 sockets × up to 2048 probes at 2000/s); over `sprayRuns` runs the success rate against the probability computed
 *   beforehand, the time to the direct path, and the packets, probed ports and sockets spent per success.
 * Each run is a fresh pair of processes in the same lab.
 */
export async function benchHardNat (options: { runs?: number, sprayRuns?: number } = {}): Promise<Record<string, unknown>> {
  const why = canRunLab()
  if (why !== undefined) return { skipped: why }
  const runs = options.runs ?? 5
  const sprayRuns = options.sprayRuns ?? 20
  const mapping: Run[] = []
  const spray: SprayRun[] = []
  // First: a lab router without miniupnpd installed fails here (LabError), before the longer runs.
  {
    const lab = await Lab.up({ natA: 'symmetric', natB: 'port-restricted-cone', upnp: ['a'], servers: true })
    try {
      for (let i = 0; i < runs; i++) {
        const [a, b] = await peers(lab, `m${i}`, { portMapping: { gateway: lab.info.a.lanGateway } }, {})
        mapping.push(runOf(a, b, null))
      }
    } finally { await lab.down() }
  }
  {
    const lab = await Lab.up({ natA: 'symmetric', natB: 'port-restricted-cone', servers: true })
    try {
      const opts = { birthdaySpray: { sockets: SPRAY.sockets, probes: SPRAY.probes, rate: SPRAY.rate } }
      for (let i = 0; i < sprayRuns; i++) {
        const [a, b] = await peers(lab, `s${i}`, opts, opts)
        spray.push({ ...runOf(a, b, null), a: a.spray ?? null, b: b.spray ?? null })
      }
    } finally { await lab.down() }
  }
  const prediction = await predictionRuns('port-restricted-cone', 'p', runs)
  const both = await predictionRuns('symmetric-sequential', 'q', runs)
  return {
    runs,
    portPrediction: { pair: 'symmetric-sequential × port-restricted-cone', ...summary(prediction), predictedPortUsed: stats(prediction.map(r => r.portUsed)), portsOffered: 12 },
    portPredictionBothEnds: { pair: 'symmetric-sequential × symmetric-sequential', ...summary(both), predictedPortUsed: stats(both.map(r => r.portUsed)), portsOffered: 12 },
    portMapping: { pair: 'symmetric (router runs miniupnpd) × port-restricted-cone', gateway: 'miniupnpd (Debian), PCP + NAT-PMP + UPnP IGD asked at once', ...summary(mapping) },
    birthdaySpray: spraySummary(spray),
    note: 'without the technique every pair relays (test/lab/port-prediction, test/lab/portmap-candidate, test/lab/birthday-spray); lab round trips are ~0.1-1 ms'
  }
}

/** The spray's caps in the bench (the agent's defaults, at twice the default pace). */
const SPRAY = { sockets: 256, probes: 2048, rate: 2000 }

interface SprayRun extends Run { a: PeerWorkerResult['spray'] | null, b: PeerWorkerResult['spray'] | null }

function spraySummary (rs: SprayRun[]): Record<string, unknown> {
  const hits = rs.filter(r => r.direct && r.a?.state === 'spray-hit')
  const per = (f: (r: SprayRun) => number | null | undefined): { median: number, max: number } | null => stats(hits.map(r => f(r) ?? null))
  return {
    pair: 'symmetric (random ports) × port-restricted-cone',
    caps: { ...SPRAY, portRange: 64512 },
    probabilityComputed: rs.find(r => r.a?.probability != null)?.a?.probability ?? null,
    successRate: `${hits.length}/${rs.length}`,
    outcomes: rs.map(r => `${r.a?.state ?? 'none'}/${r.b?.state ?? 'none'}`),
    directMs: per(r => r.directMs),
    connectToFirstDatagramMs: per(r => r.connectToFirstDatagramMs),
    sprayMs: per(r => r.b?.ms),
    perSuccess: {
      packets: per(r => (r.a?.packets ?? 0) + (r.b?.packets ?? 0)),
      portsProbed: per(r => r.b?.portsProbed),
      socketsOpened: per(r => r.a?.socketsOpened),
      symmetricSideChecks: per(r => r.a?.packets)
    },
    expectedProbes: Math.round((1 - Math.pow(1 - SPRAY.sockets / 64512, SPRAY.probes)) * 64512 / SPRAY.sockets)
  }
}

function runOf (a: PeerWorkerResult, b: PeerWorkerResult, portUsed: number | null): Run {
  const direct = a.path?.type === 'direct' && b.path?.type === 'direct'
  return { direct, directMs: a.timings?.directMs ?? null, connectToFirstDatagramMs: a.timings?.firstMessageFromStartMs ?? null, portUsed }
}

function summary (rs: Run[]): Record<string, unknown> {
  return { direct: `${rs.filter(r => r.direct).length}/${rs.length}`, directMs: stats(rs.map(r => r.directMs)), connectToFirstDatagramMs: stats(rs.map(r => r.connectToFirstDatagramMs)) }
}

function stats (xs: Array<number | null>): { median: number, max: number } | null {
  const v = xs.filter((x): x is number => x !== null)
  return v.length === 0 ? null : { median: Math.round(median(v) * 10) / 10, max: Math.round(Math.max(...v) * 10) / 10 }
}

/**
 * `runs` runs of both peers predicting 12 ports in a fresh symmetric-sequential × `natB` lab; `portUsed` is which of
 * A's predicted ports B reached (1 = the first).
 */
async function predictionRuns (natB: LabNatType, tag: string, runs: number): Promise<Run[]> {
  const out: Run[] = []
  const lab = await Lab.up({ natA: 'symmetric-sequential', natB, servers: true })
  try {
    for (let i = 0; i < runs; i++) {
      const [a, b] = await peers(lab, `${tag}${i}`, { portPrediction: { ports: 12 } }, { portPrediction: { ports: 12 } })
      const port = Number((b.path?.remote.split(' ')[1] ?? '').split(':')[1])
      const used = a.prediction?.ports.indexOf(port) ?? -1
      out.push(runOf(a, b, used >= 0 ? used + 1 : null))
    }
  } finally { await lab.down() }
  return out
}

async function peers (lab: Lab, tag: string, a: Partial<PeerTask>, b: Partial<PeerTask>): Promise<[PeerWorkerResult, PeerWorkerResult]> {
  const s = lab.services
  if (s === undefined) throw new Error('the lab has no servers')
  const task = (me: string, peer: string, extra: Partial<PeerTask>): PeerTask => ({
    task: 'peer', rendezvous: s.rendezvous, id: me, peer, secret: s.secret, turn: [s.turn[0]], count: 5, timeoutMs: 20_000, settleMs: 4000,
    stun: [`${lab.info.server.primaryIp}:${LAB_STUN_PORT}`], ...extra
  })
  const one = async (site: 'a' | 'b', t: PeerTask): Promise<PeerWorkerResult> => {
    const r = await lab.exec(site, [process.execPath, WORKER_PATH, JSON.stringify(t)], { timeoutMs: 60_000 })
    return JSON.parse(r.stdout) as PeerWorkerResult
  }
  return await Promise.all([one('a', task(`${tag}-a`, `${tag}-b`, a)), one('b', task(`${tag}-b`, `${tag}-a`, b))])
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  console.log(JSON.stringify(await benchHardNat(), null, 2))
}
