/**
 * Lab state files: one JSON document per running lab, so `down`, `exec` and `status` work from another
 * process and after a crash. Directory: `$NATKIT_LAB_STATE_DIR`, else `/run/natkit-lab`.
 */
import { mkdir, readFile, readdir, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { LabServiceProcess, LabServices } from './services.js'
import type { LabInfo } from './types.js'

/** Version of the state-file layout. */
export const LAB_STATE_SCHEMA_VERSION = 1

/** Contents of a state file. */
export interface LabState {
  schemaVersion: number
  createdAt: string
  info: LabInfo
  /** The servers `lab up` started in the server namespace (absent with `--no-servers`). */
  services?: LabServices
  /** miniupnpd processes on site routers (`upnp`). */
  upnp?: LabServiceProcess[]
}

/** The state directory in use. */
export function labStateDir (): string {
  return process.env.NATKIT_LAB_STATE_DIR ?? '/run/natkit-lab'
}

function fileFor (prefix: string): string {
  return join(labStateDir(), `${prefix}.json`)
}

/** Record a lab. */
export async function writeLabState (info: LabInfo, services?: LabServices, upnp?: LabServiceProcess[]): Promise<void> {
  await mkdir(labStateDir(), { recursive: true, mode: 0o755 })
  const state: LabState = { schemaVersion: LAB_STATE_SCHEMA_VERSION, createdAt: new Date().toISOString(), info, services, upnp }
  await writeFile(fileFor(info.prefix), JSON.stringify(state, null, 2) + '\n')
}

/** The recorded lab of a prefix, or `undefined`. */
export async function readLabState (prefix: string): Promise<LabState | undefined> {
  try {
    const state = JSON.parse(await readFile(fileFor(prefix), 'utf8')) as LabState
    return state.schemaVersion === LAB_STATE_SCHEMA_VERSION && state.info?.prefix === prefix ? state : undefined
  } catch {
    return undefined
  }
}

/** Every recorded lab. */
export async function listLabStates (): Promise<LabState[]> {
  let names: string[]
  try {
    names = await readdir(labStateDir())
  } catch {
    return []
  }
  const out: LabState[] = []
  for (const name of names) {
    if (!name.endsWith('.json')) continue
    try {
      const state = JSON.parse(await readFile(join(labStateDir(), name), 'utf8')) as LabState
      if (state.schemaVersion === LAB_STATE_SCHEMA_VERSION) out.push(state)
    } catch { /* a torn or foreign file is not a lab */ }
  }
  return out
}

/** Forget a lab (no error when it was not recorded). */
export async function removeLabState (prefix: string): Promise<void> {
  await rm(fileFor(prefix), { force: true })
}
