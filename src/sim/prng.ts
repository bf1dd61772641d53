/**
 * A small deterministic PRNG (mulberry32): the simulator's loss, jitter and random ports must replay exactly from a
 * seed, which Math.random cannot do.
 */

/** A uniform generator of numbers in [0, 1). */
export type Prng = () => number

/** mulberry32 seeded with a 32-bit integer. */
export function createPrng (seed: number): Prng {
  let state = seed >>> 0
  return () => {
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/**
 * A seed for an independent stream derived from a base seed and a label (FNV-1a over the label), so that one NAT's
 * random ports do not shift when packets elsewhere draw loss or jitter.
 */
export function deriveSeed (seed: number, label: string): number {
  let h = (0x811c9dc5 ^ (seed >>> 0)) >>> 0
  for (let i = 0; i < label.length; i++) {
    h ^= label.charCodeAt(i)
    h = Math.imul(h, 0x01000193) >>> 0
  }
  return h
}
