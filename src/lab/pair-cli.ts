import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { PairPrediction } from '../discovery/predict.js'
import type { NatType } from '../discovery/types.js'
import type { Lab, LabExecResult } from './lab.js'

/** The built natcheck CLI, run in the sites as a user runs it. */
const CLI = fileURLToPath(new URL('../cli.js', import.meta.url))

/** What `natcheck pair --json` prints. */
export interface CliPairPrediction extends PairPrediction { readonly a: NatType, readonly b: NatType }

/** The `natcheck pair` process (exit code, stdout, stderr) and what it printed, parsed (undefined: no JSON document). */
export interface CliPairRun extends LabExecResult {
  readonly prediction: CliPairPrediction | undefined
}

/**
 * As a user does: `natcheck --json` in both sites against the lab's STUN server (NAT discovery and the gateway probe),
 * each report saved to a file, then `natcheck pair` on the two files in site A. The connection matrix and the lab
 * tests of `natcheck pair` use it.
 */
export async function pairWithCli (lab: Lab): Promise<CliPairRun> {
  const dir = mkdtempSync(join(tmpdir(), 'natkit-pair-'))
  try {
    const files = await Promise.all((['a', 'b'] as const).map(async (site) => {
      const r = await lab.exec(site, [process.execPath, CLI, '--server', lab.info.server.primaryIp, '--json', '--timeout', '1500'], { timeoutMs: 60_000 })
      const file = join(dir, `${site}.json`)
      writeFileSync(file, r.stdout)
      return file
    }))
    const r = await lab.exec('a', [process.execPath, CLI, 'pair', ...files, '--json'], { timeoutMs: 15_000 })
    let prediction: CliPairPrediction | undefined
    try { prediction = JSON.parse(r.stdout) as CliPairPrediction } catch { prediction = undefined }
    return { ...r, prediction }
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}
