#!/usr/bin/env node
// Build natkit's optional native UDP batching addon (native/, Linux only) with node-gyp.
// Never fails the install: it prints one line saying whether the native UDP path was built and, if not, why; natkit
// then uses node:dgram. Skip it with NATKIT_NATIVE=0. Run by hand: `node scripts/build-native.mjs` (-v for the log).
import { spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const nativeDir = join(dirname(fileURLToPath(import.meta.url)), '..', 'native')
const addon = join(nativeDir, 'build', 'Release', 'natkit_udp.node')
const verbose = process.argv.includes('-v') || process.argv.includes('--verbose')

function done (built, why) {
  console.log(built
    ? 'natkit: native UDP batching built (recvmmsg/sendmmsg)'
    : `natkit: native UDP batching not built (${why}); using node:dgram`)
  process.exit(0)
}

/** node-gyp: the one npm runs scripts with, then npm's bundled copy, then a local install. */
function findNodeGyp () {
  const candidates = [
    process.env.npm_config_node_gyp,
    join(dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js')
  ]
  try { candidates.push(createRequire(import.meta.url).resolve('node-gyp/bin/node-gyp.js')) } catch {}
  return candidates.find(p => p !== undefined && p !== '' && existsSync(p))
}

try {
  if (process.env.NATKIT_NATIVE === '0') done(false, 'NATKIT_NATIVE=0')
  if (process.platform !== 'linux') done(false, `needs Linux (recvmmsg/sendmmsg), this is ${process.platform}`)
  const gyp = findNodeGyp()
  if (gyp === undefined) done(false, 'node-gyp not found')
  const args = [gyp, 'rebuild']
  // Build against the headers of the running node when they are installed (offline builds); else node-gyp fetches them.
  const prefix = join(dirname(process.execPath), '..')
  if (process.env.npm_config_nodedir === undefined && existsSync(join(prefix, 'include', 'node', 'node_api.h'))) {
    args.push(`--nodedir=${prefix}`)
  }
  const r = spawnSync(process.execPath, args, { cwd: nativeDir, encoding: 'utf8', timeout: 300_000 })
  if (verbose) process.stderr.write((r.stdout ?? '') + (r.stderr ?? ''))
  if (r.error !== undefined) done(false, `node-gyp did not run: ${r.error.message}`)
  if (r.status !== 0) {
    const lines = `${r.stdout}\n${r.stderr}`.split('\n').map(l => l.trim())
    const why = (lines.find(l => /^gyp ERR! stack Error: /.test(l)) ?? lines.find(l => /error/i.test(l)) ?? `exit ${r.status}`)
      .replace(/^gyp ERR! stack Error: /, '')
    done(false, `node-gyp failed: ${why.slice(0, 200)}; run node scripts/build-native.mjs -v for the log`)
  }
  try {
    createRequire(import.meta.url)(addon)
  } catch (err) {
    done(false, `built but does not load: ${err.message.split('\n')[0]}`)
  }
  done(true)
} catch (err) {
  done(false, `unexpected: ${err?.message ?? err}`)
}
