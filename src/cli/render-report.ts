import { formatEndpoint, type Endpoint } from '../net/endpoint.js'
import type { NatReport } from '../discovery/types.js'
import { styler, table } from './output.js'

function yesNo (v: boolean | null, yes = 'yes', no = 'no'): string {
  return v === null ? 'unknown' : v ? yes : no
}

function ep (e: Endpoint | null): string {
  return e === null ? '—' : formatEndpoint(e)
}

/** The human report: the verdict on top, then the measured facts, then what each server said. */
export function renderReport (r: NatReport, color: boolean): string {
  const s = styler(color)
  const n = r.nat
  const lines: string[] = []
  lines.push(s.bold(`NAT type: ${n.type}`))
  lines.push(r.verdict.summary)
  if (r.verdict.reachableFrom.length > 0) lines.push(`Direct connections work with peers behind: ${r.verdict.reachableFrom.join(', ')}.`)
  for (const a of r.verdict.advice) lines.push(`${s.yellow('→')} ${a}`)
  lines.push('')
  const alloc = n.portAllocation.pattern + (n.portAllocation.delta !== null ? ` (step ${n.portAllocation.delta})` : '')
  const lifetime = n.mappingLifetimeS === null
    ? 'unknown'
    : n.mappingLifetimeIsLowerBound
      ? (n.mappingLifetimeS >= 1 ? `at least ${n.mappingLifetimeS} s (measure with --lifetime)` : 'not measured (use --lifetime)')
      : `${n.mappingLifetimeS} s`
  lines.push(table([
    ['public address', ep(r.publicAddress)],
    ['local address', ep(r.localAddress)],
    ['behind a NAT', yesNo(n.behindNat)],
    ['mapping', n.mapping],
    ['filtering', n.filtering],
    ['hairpinning', yesNo(n.hairpinning)],
    ['port preservation', yesNo(n.portPreservation)],
    ['port allocation', alloc],
    ['varies by dest. IP', yesNo(n.mappingVariesByDestIp)],
    ['ALG rewriting', yesNo(n.alg, 'yes (MAPPED-ADDRESS ≠ XOR-MAPPED-ADDRESS)', 'none seen')],
    ['mapping lifetime', lifetime],
    ['UDP', yesNo(r.udp, 'gets out', 'blocked')],
    ['TCP / TLS', r.tcp === null ? 'not tested (UDP works)' : `${yesNo(r.tcp, 'TCP gets out', 'TCP blocked')}, ${yesNo(r.tls, 'TLS gets out', 'TLS blocked')}`],
    ...(r.tcpPorts !== null ? [['TCP connects', r.tcpPorts.map(p => `${p.address}:${p.port} ${p.outcome}`).join(', ') || 'no server address'] as [string, string]] : []),
    ['IPv6', r.ipv6.available ? (r.ipv6.mapped !== null ? `works (${ep(r.ipv6.mapped)})` : 'global address, but no server answered') : 'no global IPv6 address'],
    ['time', `${r.timings.totalMs} ms`]
  ]).trimEnd())
  lines.push('')
  lines.push(s.dim('servers:'))
  for (const sv of r.servers) {
    const what = sv.answered
      ? `${ep(sv.mapped)} in ${sv.rttMs ?? '?'} ms${sv.rfc5780 ? ', RFC 5780' : ''}${sv.software !== null ? `, ${sv.software}` : ''}`
      : s.red(sv.error ?? 'no answer')
    lines.push(s.dim(`  ${sv.server}: ${what}`))
  }
  return lines.join('\n') + '\n'
}
