import { readFileSync } from 'node:fs'
import { pathToFileURL } from 'node:url'

/**
 * `node dist/bench/heap-diff.js BEFORE.heapsnapshot AFTER.heapsnapshot [N]`: what grew between two V8 heap snapshots
 * of one process (`node --heapsnapshot-signal=SIGUSR2`, or v8.writeHeapSnapshot; each snapshot collects garbage
 * first, so only retained objects count). Objects are grouped by type and constructor (strings by kind); prints the
 * N groups (default 25) that grew most in retained self size and in count, and the totals. Used to look for the
 * soak's RSS growth (docs/relay.md).
 */

interface Group { count: number, size: number }

export function heapGroups (file: string): Map<string, Group> {
  const j = JSON.parse(readFileSync(file, 'utf8')) as { snapshot: { meta: { node_fields: string[], node_types: [string[]] } }, nodes: number[], strings: string[] }
  const fields = j.snapshot.meta.node_fields; const types = j.snapshot.meta.node_types[0]
  const width = fields.length; const iType = fields.indexOf('type'); const iName = fields.indexOf('name'); const iSize = fields.indexOf('self_size')
  const out = new Map<string, Group>()
  for (let i = 0; i < j.nodes.length; i += width) {
    const type = types[j.nodes[i + iType]]
    if (type === 'hidden' || type === 'code' || type === 'number' || type === 'synthetic') continue
    const name = type.endsWith('string') ? `(${type})` : `${type}:${j.strings[j.nodes[i + iName]]}`.slice(0, 100)
    const g = out.get(name) ?? { count: 0, size: 0 }
    g.count++; g.size += j.nodes[i + iSize]
    out.set(name, g)
  }
  return out
}

export function heapDiff (before: Map<string, Group>, after: Map<string, Group>): Array<{ name: string, countDelta: number, sizeDelta: number, count: number }> {
  const rows = []
  for (const name of new Set([...before.keys(), ...after.keys()])) {
    const a = before.get(name) ?? { count: 0, size: 0 }; const b = after.get(name) ?? { count: 0, size: 0 }
    rows.push({ name, countDelta: b.count - a.count, sizeDelta: b.size - a.size, count: b.count })
  }
  return rows
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const [fa, fb, n] = process.argv.slice(2)
  if (fa === undefined || fb === undefined) { console.error('usage: heap-diff BEFORE.heapsnapshot AFTER.heapsnapshot [N]'); process.exit(1) }
  const a = heapGroups(fa); const b = heapGroups(fb)
  const rows = heapDiff(a, b); const top = Number(n ?? 25)
  const total = (m: Map<string, Group>): number => [...m.values()].reduce((s, g) => s + g.size, 0)
  console.log(`retained self size: ${total(a)} → ${total(b)} bytes (${total(b) - total(a) >= 0 ? '+' : ''}${total(b) - total(a)})`)
  console.log('grew most in size (bytes, count, now):')
  for (const r of [...rows].sort((x, y) => y.sizeDelta - x.sizeDelta).slice(0, top)) console.log(`  ${r.sizeDelta}\t${r.countDelta}\t${r.count}\t${r.name}`)
  console.log('grew most in count (count, bytes, now):')
  for (const r of [...rows].sort((x, y) => y.countDelta - x.countDelta).slice(0, top)) console.log(`  ${r.countDelta}\t${r.sizeDelta}\t${r.count}\t${r.name}`)
}
