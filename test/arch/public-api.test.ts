import { expect } from 'chai'
import { readdirSync, readFileSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

/** The public surface: what `natkit` and its subpaths export (issue 11: curated, no internals). */

const ROOT = fileURLToPath(new URL('../../../', import.meta.url))

function walk (dir: string, ext: string): string[] {
  return readdirSync(dir).flatMap(name => {
    const p = join(dir, name)
    return statSync(p).isDirectory() ? walk(p, ext) : p.endsWith(ext) ? [p] : []
  })
}

/** Names that are implementation details and must not be importable from any entry point. */
const INTERNAL = [
  'check', 'view', 'Sha1HmacKey', 'HmacKey', 'Allocation', 'fiveTupleKey', 'TokenBucket', 'KeyedTokenBuckets', 'NonceIssuer',
  'RequestAuthenticator', 'CheckList', 'SocketMux', 'RelaySocket', 'DATA_PREFIX', 'parseClientFrame', 'closeCodeFor',
  'resolveCoreOptions', 'resolveRendezvousOptions', 'StreamTransactions', 'buildBindingRequest', 'parseBindingResponse',
  'clientProbe', 'ArrivalWatch', 'OfflineQueues', 'ByteBudget', 'writeErrorTriple', 'readErrorTriple', 'loadNativeUdp'
]

describe('public API', () => {
  it('names every export one by one (no `export *` in src)', () => {
    const offenders = walk(join(ROOT, 'src'), '.ts').filter(f => /^export \*(?! as)/m.test(readFileSync(f, 'utf8')))
    expect(offenders.map(f => f.slice(ROOT.length))).to.deep.equal([])
  })

  const entries = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { exports: Record<string, string | { default: string }> }
  for (const [subpath, target] of Object.entries(entries.exports)) {
    if (typeof target === 'string') continue
    it(`${subpath === '.' ? 'natkit' : `natkit/${subpath.slice(2)}`} exports no internals`, async () => {
      const m = await import(join(ROOT, target.default)) as Record<string, unknown>
      expect(Object.keys(m).filter(k => INTERNAL.includes(k))).to.deep.equal([])
    })
  }

  it('offers what options already take, and the tools the CLI uses', async () => {
    const root = await import(join(ROOT, 'dist/src/index.js')) as Record<string, unknown>
    const net = await import(join(ROOT, 'dist/src/net/index.js')) as Record<string, unknown>
    const relay = await import(join(ROOT, 'dist/src/relay/index.js')) as Record<string, unknown>
    for (const [m, names] of [[root, ['bindDatagramSocket', 'parseTurnUri', 'checkTurn', 'setLogSink', 'discoverNat', 'connect', 'ERROR_CODES']], [net, ['bindDatagramSocket', 'UdpSocket', 'resolveServer']], [relay, ['parseTurnUri', 'checkTurn', 'TurnServerCore']]] as const) {
      for (const n of names) expect(m[n], n).to.not.equal(undefined)
    }
    expect(Object.keys(root).length).to.be.below(100)
  })

  it('ships no @internal declaration (stripInternal)', () => {
    const leaks = walk(join(ROOT, 'dist', 'src'), '.d.ts').filter(f => readFileSync(f, 'utf8').includes('@internal'))
    expect(leaks.map(f => f.slice(ROOT.length))).to.deep.equal([])
  })
})
