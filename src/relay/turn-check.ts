import { AbortError, ERROR_CODES, NatError, RelaySilentError, ResolveError, StunErrorResponse, StunTimeoutError, TransportError } from '../errors.js'
import { formatEndpoint, type Endpoint } from '../net/endpoint.js'
import { bindDatagramSocket } from '../net/native.js'
import { resolveServer, type Transport } from '../net/resolve.js'
import type { TlsClientOptions } from '../net/stream.js'
import { stunBinding } from '../stun/client.js'
import { TurnClient, type TurnAllocation } from './turn-client.js'
import type { TurnCredentials } from './turn-client-auth.js'

/** One step of the check. */
export interface TurnCheckStep {
  readonly step: 'resolve' | 'reach' | 'allocate' | 'permission' | 'relay-send' | 'relay-channel' | 'refresh' | 'release'
  readonly ok: boolean
  readonly ms: number
  readonly detail: string
}

/** What `natcheck turn` reports. */
export interface TurnCheckReport {
  readonly server: string
  readonly transport: Transport
  readonly ok: boolean
  readonly steps: TurnCheckStep[]
  readonly allocation: TurnAllocation | null
  /** Median round trip peer → relay → client → relay → peer, ms. */
  readonly rttMs: number | null
  /** Fraction of echo datagrams that did not come back (0-1). */
  readonly loss: number | null
  /** Echo payload throughput through the relay, both ways, in megabits per second. */
  readonly throughputMbps: number | null
  /** When a step failed: what it means and what to fix. */
  readonly failure: { readonly step: string, readonly code: string, readonly message: string, readonly fix: string } | null
}

/** Options for checkTurn. */
export interface TurnCheckOptions {
  readonly server: string
  readonly transport?: Transport
  readonly credentials: TurnCredentials
  readonly tls?: TlsClientOptions
  /** Echo datagrams per phase (default 50). */
  readonly count?: number
  /** Payload size for the throughput phase (default 1000 bytes). */
  readonly size?: number
  readonly timeoutMs?: number
  readonly signal?: AbortSignal
  readonly onStep?: (step: TurnCheckStep) => void
}

/**
 * The check an operator runs when "STUN works but TURN doesn't": resolve, reach the server, allocate with the given
 * credentials, install a permission for this host's own public address, then play the peer from a plain UDP socket —
 * datagrams sent to the relayed address must reach the client and the client's echoes must come back through the
 * relay — first with Send/Data indications, then over a channel. It names the step that failed and what to fix.
 */
export async function checkTurn (o: TurnCheckOptions): Promise<TurnCheckReport> {
  const transport = o.transport ?? 'udp'
  const count = o.count ?? 50
  const size = o.size ?? 1000
  const timeoutMs = o.timeoutMs ?? 5000
  const steps: TurnCheckStep[] = []
  let allocation: TurnAllocation | null = null
  let rtts: number[] = []
  let loss: number | null = null
  let throughputMbps: number | null = null
  let client: TurnClient | undefined
  let failure: TurnCheckReport['failure'] = null
  const record = (step: TurnCheckStep['step'], ok: boolean, started: number, detail: string): void => {
    const s = { step, ok, ms: Math.round(performance.now() - started), detail }
    steps.push(s); o.onStep?.(s)
  }
  const peer = await bindDatagramSocket({ address: '0.0.0.0', native: false })
  let step: TurnCheckStep['step'] = 'resolve'
  let t = performance.now()
  try {
    const [target] = await resolveServer(o.server, { transport, service: 'turn' })
    record('resolve', true, t, `${o.server} is ${formatEndpoint(target)}`)
    step = 'reach'; t = performance.now()
    const b = await stunBinding(formatEndpoint(target), { transport, timeoutMs, tls: o.tls, signal: o.signal })
    record('reach', true, t, `STUN Binding over ${transport.toUpperCase()} answered in ${b.rttMs.toFixed(1)} ms; this host is ${formatEndpoint(b.mapped)}`)
    step = 'allocate'; t = performance.now()
    client = await TurnClient.allocate({ server: formatEndpoint(target), transport, credentials: o.credentials, tls: o.tls, signal: o.signal, retransmit: { rtoMs: 250, rc: 4, rm: 8 } })
    allocation = client.allocation
    record('allocate', true, t, `relayed address ${formatEndpoint(allocation.relayed)}, lifetime ${allocation.lifetimeS} s`)
    // The peer is a plain socket on this host: the relay sees it at this host's public (mapped) IP.
    const peerSeenAs = { address: allocation.mapped.address, port: peer.local.port }
    step = 'permission'; t = performance.now()
    await client.createPermission(peerSeenAs, o.signal)
    record('permission', true, t, `permission for ${peerSeenAs.address}`)
    // Echo: the client sends back whatever the peer sends, to wherever the relay says it came from.
    client.on('data', (data, from) => { client?.send(data, from) })
    step = 'relay-send'; t = performance.now()
    const first = await echoRound(peer, allocation.relayed, count, 100, timeoutMs)
    if (first.received === 0) throw new RelaySilentError(`none of ${count} datagrams sent to the relayed address ${formatEndpoint(allocation.relayed)} came back`)
    rtts = first.rtts
    record('relay-send', true, t, `${first.received}/${count} echoed through Send/Data indications`)
    step = 'relay-channel'; t = performance.now()
    await client.bindChannel({ address: allocation.mapped.address, port: peer.local.port }, o.signal)
    const second = await echoRound(peer, allocation.relayed, count * 4, size, timeoutMs)
    rtts = rtts.concat(second.rtts)
    loss = 1 - (first.received + second.received) / (count * 5)
    throughputMbps = Math.round(second.bytes * 2 * 8 / Math.max(second.seconds, 0.001) / 1e6 * 100) / 100
    record('relay-channel', second.received > 0, t, `${second.received}/${count * 4} echoed over a channel, ${throughputMbps} Mbit/s`)
    step = 'refresh'; t = performance.now()
    await client.refresh(o.signal)
    record('refresh', true, t, 'allocation refreshed')
  } catch (err) {
    if (err instanceof AbortError) throw err
    failure = diagnose(step, err, o, transport)
    record(step, false, t, failure.message)
  } finally {
    if (client !== undefined) {
      t = performance.now()
      await client.close()
      record('release', true, t, 'allocation released (LIFETIME 0)')
    }
    await peer.close()
  }
  const sorted = [...rtts].sort((a, b) => a - b)
  return {
    server: o.server,
    transport,
    ok: failure === null,
    steps,
    allocation,
    rttMs: sorted.length > 0 ? Math.round(sorted[Math.floor(sorted.length / 2)] * 100) / 100 : null,
    loss: loss === null ? null : Math.round(loss * 1000) / 1000,
    throughputMbps,
    failure
  }
}

/** Send `count` numbered datagrams from the peer socket to the relayed address and time their echoes. */
async function echoRound (peer: Awaited<ReturnType<typeof bindDatagramSocket>>, relayed: Endpoint, count: number, size: number, timeoutMs: number): Promise<{ received: number, rtts: number[], bytes: number, seconds: number }> {
  const sent = new Map<number, number>()
  const rtts: number[] = []
  let bytes = 0
  const started = performance.now()
  let last = started
  let done: () => void = () => {}
  const finished = new Promise<void>(resolve => { done = resolve })
  peer.onMessage((data) => {
    if (data.length !== size) return
    const n = data.readUInt32BE(0)
    const at = sent.get(n)
    if (at === undefined) return
    sent.delete(n)
    last = performance.now()
    rtts.push(last - at); bytes += data.length
    if (rtts.length === count) done()
  })
  for (let i = 0; i < count; i++) {
    const b = Buffer.alloc(size, 0x6e); b.writeUInt32BE(i, 0)
    sent.set(i, performance.now())
    peer.send(b, relayed)
    // Paced (32 datagrams per millisecond at most) so the check measures the relay, not socket-buffer overflow.
    if (i % 32 === 31) await new Promise(resolve => setTimeout(resolve, 1))
  }
  const timer = setTimeout(done, Math.min(timeoutMs, 3000))
  await finished
  clearTimeout(timer)
  return { received: rtts.length, rtts, bytes, seconds: (last - started) / 1000 }
}

/** Turn a failure into what it means and what to fix. */
function diagnose (step: string, err: unknown, o: TurnCheckOptions, transport: Transport): NonNullable<TurnCheckReport['failure']> {
  const message = err instanceof Error ? err.message : String(err)
  const code = err instanceof NatError ? err.code : ERROR_CODES.INTERNAL
  const usesSecret = 'authSecret' in o.credentials
  let fix = 'Run with DEBUG=natcheck:* for a protocol trace.'
  if (err instanceof ResolveError) fix = 'Check the host name (DNS) or give an IP address.'
  else if (err instanceof StunTimeoutError || err instanceof TransportError) {
    fix = step === 'reach'
      ? `Nothing answered over ${transport.toUpperCase()}: check the address and port, that the server runs, and that the firewall lets ${transport === 'udp' ? 'UDP' : 'TCP'} to it through${transport === 'udp' ? ' (or try --transport tcp / tls)' : ''}.`
      : 'The server stopped answering mid-way: check its logs.'
  } else if (err instanceof StunErrorResponse) {
    switch (err.errorCode) {
      case 401: fix = usesSecret
        ? 'Wrong credentials: the auth secret differs from the server\'s --static-auth-secret, or this host\'s clock is far off (REST usernames carry an expiry time).'
        : 'Wrong credentials: check the user name and password, and that the server\'s realm has this user.'
        break
      case 403: fix = 'The server refused the peer address (its peer policy denies this range): an operator opens it with --allow-peer CIDR.'; break
      case 437: fix = 'Allocation mismatch: a stale allocation from this address; wait for it to expire or use another local port.'; break
      case 440: fix = 'The server has no relay address of that family: configure --relay-ip.'; break
      case 442: fix = 'The server does not relay this transport (UDP/TCP).'; break
      case 486: fix = '486 Allocation Quota Reached: the server refused a new allocation because a quota is full — allocations per user name (natcheck relay --user-quota N, coturn user-quota) or in total (--total-quota N, coturn total-quota). Clients sharing one static credential need no per-user quota (remove --user-quota or raise it); otherwise close other allocations (they live for their lifetime, default 600 s, unless refreshed to 0) or raise the quota. The relay\'s log names the quota that refused.'; break
      case 508: fix = 'The server is out of relay ports or draining: widen --ports or try again later.'; break
      default: fix = `The server answered ${err.errorCode} ${err.reason}.`
    }
  } else if (code === ERROR_CODES.RELAY_SILENT) {
    fix = 'Allocation works but relayed traffic does not: the relay port range (--ports, default 49152-65535) is blocked by a firewall in front of the server, or --external-ip is wrong.'
  }
  return { step, code, message, fix }
}
