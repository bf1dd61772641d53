import { expect } from 'chai'
import { execFile } from 'node:child_process'
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

/** The repository root (this file runs as dist/test/arch/layers.test.js). */
const ROOT = fileURLToPath(new URL('../../../', import.meta.url))
const DEPCRUISE = join(ROOT, 'node_modules', 'dependency-cruiser', 'bin', 'dependency-cruise.mjs')
const CONFIG = join(ROOT, '.dependency-cruiser.cjs')

interface Violation { rule: { name: string }, from: string, to: string, cycle?: Array<{ name: string }> }

/** Run dependency-cruiser on `dir`/src with natkit's rules; the violations it reports. */
async function cruise (dir: string): Promise<Violation[]> {
  const stdout = await new Promise<string>((resolve, reject) => {
    execFile(process.execPath, [DEPCRUISE, 'src', '--config', CONFIG, '--output-type', 'json'], { cwd: dir, maxBuffer: 64 << 20, timeout: 60_000 }, (err, out, errOut) => {
      // dependency-cruiser exits non-zero when it finds violations; the JSON is still on stdout.
      if (out.trim().startsWith('{')) resolve(out)
      else reject(new Error(`dependency-cruiser failed: ${err?.message ?? ''} ${errOut}`))
    })
  })
  return (JSON.parse(stdout) as { summary: { violations: Violation[] } }).summary.violations
}

const describeViolation = (v: Violation): string => `${v.rule.name}: ${v.from} → ${v.to}${v.cycle !== undefined ? ` (cycle ${v.cycle.map(c => c.name).join(' → ')})` : ''}`

describe('layering (docs/architecture.md, .dependency-cruiser.cjs)', function () {
  this.timeout(120_000)

  it('src/ has no import that breaks the picture', async () => {
    expect((await cruise(ROOT)).map(describeViolation)).to.deep.equal([])
  })

  describe('the rules catch a broken arrow', () => {
    let dir = ''
    before(() => { dir = mkdtempSync(join(tmpdir(), 'natkit-arch-')) })
    after(() => { rmSync(dir, { recursive: true, force: true }) })

    const write = (path: string, text: string): void => {
      mkdirSync(dirname(join(dir, path)), { recursive: true })
      writeFileSync(join(dir, path), text)
    }
    const cases: Array<{ name: string, files: Record<string, string>, rule: string }> = [
      { name: 'stun importing relay', rule: 'stun-uses-only-net', files: { 'src/stun/a.ts': "import { b } from '../relay/b.js'\nexport const a = b\n", 'src/relay/b.ts': 'export const b = 1\n' } },
      { name: 'relay importing traversal', rule: 'relay-not-traversal', files: { 'src/relay/a.ts': "import { b } from '../traversal/b.js'\nexport const a = b\n", 'src/traversal/b.ts': 'export const b = 1\n' } },
      { name: 'rendezvous importing relay', rule: 'rendezvous-not-relay', files: { 'src/rendezvous/a.ts': "import { b } from '../relay/b.js'\nexport const a = b\n", 'src/relay/b.ts': 'export const b = 1\n' } },
      { name: 'traversal importing the simulator', rule: 'traversal-not-tools', files: { 'src/traversal/a.ts': "import { b } from '../sim/b.js'\nexport const a = b\n", 'src/sim/b.ts': 'export const b = 1\n' } },
      { name: 'the lab importing the CLI', rule: 'nothing-imports-cli', files: { 'src/lab/a.ts': "import { b } from '../cli/b.js'\nexport const a = b\n", 'src/cli/b.ts': 'export const b = 1\n' } },
      { name: 'a run-time cycle', rule: 'no-circular', files: { 'src/net/a.ts': "import { b } from './b.js'\nexport const a = () => b\n", 'src/net/b.ts': "import { a } from './a.js'\nexport const b = () => a\n" } }
    ]
    for (const c of cases) {
      it(`fails on ${c.name} (${c.rule})`, async () => {
        rmSync(join(dir, 'src'), { recursive: true, force: true })
        write('tsconfig.json', JSON.stringify({ compilerOptions: { module: 'NodeNext', moduleResolution: 'NodeNext' }, include: ['src/**/*.ts'] }))
        for (const [path, text] of Object.entries(c.files)) write(path, text)
        const rules = (await cruise(dir)).map(v => v.rule.name)
        expect(rules).to.include(c.rule)
      })
    }
  })
})
