/**
 * TCP reachability probes for when UDP is blocked: a plain TCP connect to the STUN server's address on the ports
 * firewalls let out (443, 80). Any answer from the far side proves the path is open, including a refused
 * connection: the server's kernel sent the RST (RFC 9293 §3.10.7.1), so SYNs got there and replies got back.
 * Only silence (or an ICMP unreachable) leaves the host looking offline.
 *
 * Caveat: a firewall configured to REJECT with a TCP reset forges that RST; natcheck cannot tell it from the
 * server's, so "refused" counts as open (the report keeps the outcome per port, so a reader can weigh it).
 */
import { connect as tcpConnect } from 'node:net'
import { InvalidArgumentError } from '../errors.js'

/** Ports probed by default: HTTPS first (where TURN over TLS should go), then HTTP. */
export const TCP_REACH_PORTS = [443, 80] as const

/** What one TCP connect attempt saw. */
export type TcpReachOutcome =
  /** The three-way handshake completed. */
  | 'open'
  /** RST to our SYN: the server answered (the path is open), nothing listens there. */
  | 'refused'
  /** No answer within the timeout: dropped somewhere. */
  | 'timeout'
  /** ICMP unreachable (host, network or administratively prohibited). */
  | 'unreachable'
  /** Anything else (e.g. no route from this host). */
  | 'error'

/** One probe's result. */
export interface TcpPortProbe {
  readonly address: string
  readonly port: number
  readonly outcome: TcpReachOutcome
  /** Time until the outcome, ms. */
  readonly ms: number
}

/** Options of {@link probeTcpPorts}. */
export interface TcpReachOptions {
  /** Ports to try (default {@link TCP_REACH_PORTS}). */
  readonly ports?: readonly number[]
  /** Per-attempt timeout, ms (default 3000). */
  readonly timeoutMs?: number
  /** Local address to connect from. */
  readonly localAddress?: string
  readonly signal?: AbortSignal
}

/** Whether an outcome proves the TCP path to that port is open. */
export function tcpPathOpen (outcome: TcpReachOutcome): boolean {
  return outcome === 'open' || outcome === 'refused'
}

/** The ports whose path is open, in probe order. */
export function openTcpPorts (probes: readonly TcpPortProbe[]): number[] {
  return [...new Set(probes.filter((p) => tcpPathOpen(p.outcome)).map((p) => p.port))]
}

/** Map a connect error code to an outcome. */
export function outcomeForError (code: string | undefined): TcpReachOutcome {
  switch (code) {
    case 'ECONNREFUSED': return 'refused'
    case 'ETIMEDOUT': return 'timeout'
    case 'EHOSTUNREACH': case 'ENETUNREACH': case 'EACCES': case 'EPERM': return 'unreachable'
    default: return 'error'
  }
}

/** One bounded TCP connect; never rejects. */
export async function probeTcpPort (address: string, port: number, opts: TcpReachOptions = {}): Promise<TcpPortProbe> {
  const timeoutMs = opts.timeoutMs ?? 3000
  const started = performance.now()
  const outcome = await new Promise<TcpReachOutcome>((resolve) => {
    const socket = tcpConnect({ host: address, port, localAddress: opts.localAddress })
    let settled = false
    const finish = (o: TcpReachOutcome): void => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      opts.signal?.removeEventListener('abort', onAbort)
      socket.destroy()
      resolve(o)
    }
    const onAbort = (): void => { finish('error') }
    const timer = setTimeout(() => { finish('timeout') }, timeoutMs)
    socket.once('connect', () => { finish('open') })
    socket.once('error', (err: NodeJS.ErrnoException) => { finish(outcomeForError(err.code)) })
    opts.signal?.addEventListener('abort', onAbort, { once: true })
  })
  return { address, port, outcome, ms: Math.round(performance.now() - started) }
}

/**
 * Probe every (address, port) pair in parallel, each bounded by `timeoutMs`; results in input order.
 * @throws InvalidArgumentError for a port outside 1..65535.
 */
export async function probeTcpPorts (addresses: readonly string[], opts: TcpReachOptions = {}): Promise<TcpPortProbe[]> {
  const ports = opts.ports ?? TCP_REACH_PORTS
  for (const p of ports) if (!Number.isInteger(p) || p < 1 || p > 65535) throw new InvalidArgumentError(`TCP probe ports must be in 1..65535; got ${p}`)
  return await Promise.all([...new Set(addresses)].flatMap((a) => ports.map(async (p) => await probeTcpPort(a, p, opts))))
}

/**
 * Whether UDP to a server gets an ICMP port unreachable back: a connected UDP socket sees it as ECONNREFUSED
 * (RFC 1122 §4.1.3.3 passes it to the application). That proves UDP reaches the host and nothing listens there, so
 * silence elsewhere is not "UDP blocked". Sends a few copies of `payload` (e.g. a STUN request); resolves 'refused',
 * 'open' (something answered), or 'timeout'. Never rejects.
 */
export async function probeUdpRefusal (address: string, port: number, payload: Uint8Array, opts: { timeoutMs?: number, localAddress?: string } = {}): Promise<'refused' | 'open' | 'timeout'> {
  const { createSocket } = await import('node:dgram')
  const s = createSocket(address.includes(':') ? 'udp6' : 'udp4')
  return await new Promise((resolve) => {
    let settled = false
    const timers: NodeJS.Timeout[] = []
    const finish = (o: 'refused' | 'open' | 'timeout'): void => {
      if (settled) return
      settled = true
      for (const t of timers) clearTimeout(t)
      try { s.close() } catch { /* already closed */ }
      resolve(o)
    }
    s.on('error', (err: NodeJS.ErrnoException) => { finish(err.code === 'ECONNREFUSED' ? 'refused' : 'timeout') })
    s.on('message', () => { finish('open') })
    const timeoutMs = opts.timeoutMs ?? 1500
    timers.push(setTimeout(() => { finish('timeout') }, timeoutMs))
    s.bind(0, opts.localAddress, () => {
      s.connect(port, address, () => {
        const send = (): void => { if (!settled) s.send(payload, () => {}) }
        send()
        timers.push(setTimeout(send, Math.min(250, timeoutMs / 3)), setTimeout(send, Math.min(750, timeoutMs * 2 / 3)))
      })
    })
  })
}
