import { pathToFileURL } from 'node:url'
import {
  MessageBuilder, MessageClass, Method, StunMessage, XorMappedAddress, newTransactionId, shortTermKey
} from '../src/stun/index.js'

/** Targets from the STUN core issue, on this 2-core machine. */
export const CODEC_TARGETS = { plainPerSec: 2_000_000, integrityPerSec: 300_000 } as const

interface Case { name: string, target: number, run: () => void }

const key = shortTermKey('VOkJxbRl1RmTxUk/WvJxBt')
const mapped = { address: '192.0.2.1', port: 32853 }

const cases: Case[] = [
  {
    name: 'Binding request (plain): encode + decode',
    target: CODEC_TARGETS.plainPerSec,
    run: () => {
      const bytes = new MessageBuilder(Method.Binding, MessageClass.Request, newTransactionId()).build()
      const m = StunMessage.decode(bytes, { copy: false })
      if (m.method !== Method.Binding) throw new Error('decode failed')
    }
  },
  {
    name: 'Binding success + XOR-MAPPED-ADDRESS + MESSAGE-INTEGRITY + FINGERPRINT: encode + decode + verify',
    target: CODEC_TARGETS.integrityPerSec,
    run: () => {
      const bytes = new MessageBuilder(Method.Binding, MessageClass.SuccessResponse, newTransactionId())
        .add(XorMappedAddress, mapped).integrity(key).fingerprint().build()
      const m = StunMessage.decode(bytes, { copy: false })
      if (!m.verifyFingerprint() || !m.verifyIntegrity(key) || m.get(XorMappedAddress)?.port !== mapped.port) throw new Error('verify failed')
    }
  }
]

/** Run `fn` repeatedly for about `ms` milliseconds; return operations per second. */
function measure (fn: () => void, ms: number): number {
  for (let i = 0; i < 20_000; i++) fn() // warm up the JIT
  let ops = 0
  const start = performance.now()
  let now = start
  while (now - start < ms) {
    for (let i = 0; i < 1000; i++) fn()
    ops += 1000
    now = performance.now()
  }
  return ops / ((now - start) / 1000)
}

/** Codec throughput against the targets; best of three rounds per case. */
export function benchCodec (msPerRound = 700): Array<{ name: string, perSec: number, target: number, ratio: number }> {
  return cases.map(c => {
    const best = Math.max(...[0, 1, 2].map(() => measure(c.run, msPerRound)))
    return { name: c.name, perSec: Math.round(best), target: c.target, ratio: Math.round(best / c.target * 100) / 100 }
  })
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  for (const r of benchCodec()) console.log(`${r.name}: ${(r.perSec / 1000).toFixed(0)} k/s (target ${(r.target / 1000).toFixed(0)} k/s, ratio ${r.ratio})`)
}
