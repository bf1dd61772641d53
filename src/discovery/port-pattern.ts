import type { PortAllocation } from './types.js'

/**
 * Classify how a NAT allocates external ports from samples of new mappings, in the order they were made, each with
 * the local port it came from. `preserving`: every external port equals its local port. `sequential`: the most
 * common step between consecutive samples is shared by at least two thirds of the steps (so one stray mapping made
 * by other traffic does not hide the pattern) and is not zero. `random` otherwise. Fewer than three samples:
 * `unknown`.
 */
export function classifyPortPattern (samples: Array<{ local: number, external: number }>): PortAllocation {
  const external = samples.map(s => s.external)
  if (samples.length === 0) return { pattern: 'unknown', delta: null, samples: external }
  if (samples.every(s => s.local === s.external)) return { pattern: 'preserving', delta: null, samples: external }
  if (samples.length < 3) return { pattern: 'unknown', delta: null, samples: external }
  const deltas: number[] = []
  for (let i = 1; i < external.length; i++) deltas.push(external[i] - external[i - 1])
  const counts = new Map<number, number>()
  for (const d of deltas) counts.set(d, (counts.get(d) ?? 0) + 1)
  let best = 0; let bestCount = 0
  for (const [d, n] of counts) if (n > bestCount) { best = d; bestCount = n }
  if (best !== 0 && bestCount * 3 >= deltas.length * 2) return { pattern: 'sequential', delta: best, samples: external }
  return { pattern: 'random', delta: null, samples: external }
}
