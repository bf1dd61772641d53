import { expect } from 'chai'
import { execFile } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { publint } from 'publint'
import type { Endpoint } from '../../src/net/endpoint.js'
import { UdpSocket } from '../../src/net/udp.js'
import { TurnServer } from '../../src/relay/turn-server.js'
import { RendezvousClient } from '../../src/rendezvous/client.js'
import { RendezvousServer } from '../../src/rendezvous/server.js'
import { rendezvousToken } from '../../src/rendezvous/token.js'
import { StunServer } from '../../src/stun/server.js'
import { rendezvousChannel } from '../../src/traversal/rendezvous-channel.js'
import { connect, type PeerSession } from '../../src/traversal/session.js'

/**
 * The package as users get it: `npm pack` holds only what they need, @arethetypeswrong/cli and publint find nothing
 * wrong, and a project outside the repository installs the tarball, type-checks the README's library snippet against
 * it and runs it against loopback STUN, TURN and rendezvous servers this test starts.
 */

const ROOT = fileURLToPath(new URL('../../../', import.meta.url))
const BIN = join(ROOT, 'node_modules', '.bin')

interface Run { code: number | null, stdout: string, stderr: string }

async function run (cmd: string, args: string[], o: { cwd: string, env?: NodeJS.ProcessEnv, timeoutMs: number }): Promise<Run> {
  return await new Promise((resolve) => {
    execFile(cmd, args, { cwd: o.cwd, env: { ...process.env, ...o.env }, timeout: o.timeoutMs, maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : 1, stdout, stderr })
    })
  })
}

/** What may be in the tarball: the compiled public parts, the native sources and their build script. */
const ALLOWED = [
  /^package\.json$/, /^README\.md$/, /^LICENSE$/,
  /^dist\/src\/(?!sim\/|cli\/|cli\.d\.ts).+\.(js|d\.ts)$/, /^dist\/src\/cli(\.js|\/[^/]+\.js)$/,
  /^native\/binding\.gyp$/, /^native\/[a-z0-9_]+\.[ch]$/, /^scripts\/build-native\.mjs$/
]

describe('the npm package', function () {
  this.timeout(300_000)
  let dir = ''
  let tarball = ''
  let files: string[] = []

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'natkit-pack-'))
    // --ignore-scripts: pack the build this test run made (prepack would rebuild dist/src under the running tests).
    const r = await run('npm', ['pack', '--json', '--ignore-scripts', '--pack-destination', dir], { cwd: ROOT, timeoutMs: 120_000 })
    expect(r.code, r.stderr).to.equal(0)
    const [info] = JSON.parse(r.stdout) as Array<{ filename: string, files: Array<{ path: string }> }>
    tarball = join(dir, info.filename)
    files = info.files.map(f => f.path)
  })
  after(() => { if (dir !== '') rmSync(dir, { recursive: true, force: true }) })

  it("leaves the bin executable after a build, so the README's `npx natcheck` runs in a clone", () => {
    expect(statSync(join(ROOT, 'dist/src/cli.js')).mode & 0o111, 'dist/src/cli.js mode').to.equal(0o111)
  })

  it('holds only what users need', () => {
    const extra = files.filter(f => !ALLOWED.some(re => re.test(f)))
    expect(extra, 'files that should not ship').to.deep.equal([])
    // Every packed module has its source (a stale build of a moved module would not).
    const stale = files.filter(f => f.startsWith('dist/src/') && f.endsWith('.js')).filter(f => !existsSync(join(ROOT, f.replace(/^dist\//, '').replace(/\.js$/, '.ts'))))
    expect(stale, 'compiled files without a source').to.deep.equal([])
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { exports: Record<string, string | { types: string, default: string }>, bin: Record<string, string> }
    for (const target of Object.values(pkg.exports).flatMap(e => typeof e === 'string' ? [e] : [e.types, e.default])) {
      expect(files, target).to.include(target.replace(/^\.\//, ''))
    }
    expect(files).to.include(Object.values(pkg.bin)[0])
    expect(files).to.include('native/binding.gyp')
  })

  it('passes @arethetypeswrong/cli (ESM-only package)', async () => {
    const r = await run(join(BIN, 'attw'), [tarball, '--profile', 'esm-only', '--format', 'ascii'], { cwd: ROOT, timeoutMs: 120_000 })
    expect(r.code, r.stdout + r.stderr).to.equal(0)
  })

  it('passes publint with no error or warning', async () => {
    const bytes = readFileSync(tarball)
    const { messages } = await publint({ pkgDir: 'package', pack: { tarball: bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) }, level: 'warning' })
    expect(messages.map(m => `${m.type} ${m.code} ${m.path.join('.')}`)).to.deep.equal([])
  })

  describe('an example project outside the repository', () => {
    let project = ''
    const closers: Array<() => Promise<void>> = []
    after(async () => { for (const c of closers.reverse()) await c().catch(() => {}) })

    it('installs the tarball', async () => {
      project = join(dir, 'example')
      mkdirSync(project)
      writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'natkit-example', private: true, type: 'module' }))
      // NATKIT_NATIVE=0: the install script skips the (slow, optional) native addon build; natkit uses node:dgram.
      const r = await run('npm', ['install', tarball, '--prefer-offline', '--no-audit', '--no-fund', '--loglevel=error'], { cwd: project, env: { NATKIT_NATIVE: '0' }, timeoutMs: 240_000 })
      expect(r.code, r.stdout + r.stderr).to.equal(0)
      expect(existsSync(join(project, 'node_modules', 'natkit', 'dist', 'src', 'index.d.ts'))).to.equal(true)
    })

    it("type-checks and runs the README's library snippet against loopback servers", async function () {
      if (project === '') this.skip()
      const readme = readFileSync(join(ROOT, 'README.md'), 'utf8')
      const block = /## The library\s+```ts\n([\s\S]*?)```/.exec(readme)?.[1]
      expect(block, 'the README has a ```ts block under "## The library"').to.be.a('string')

      // Servers on loopback; the TURN server may relay to loopback peers here.
      const stun = await StunServer.start({ listen: { address: '127.0.0.1', port: 0 } })
      closers.push(async () => { await stun.close() })
      const turnServer = await TurnServer.start({ listen: [{ address: '127.0.0.1', port: 0 }], realm: 'example', users: { alice: 'secret' }, allowPeer: ['127.0.0.0/8'] })
      closers.push(async () => { await turnServer.close() })
      const rendezvous = await RendezvousServer.start({ listen: { address: '127.0.0.1', port: 0 }, authSecret: 'example-secret' })
      closers.push(async () => { await rendezvous.close() })
      const peer = await UdpSocket.bind({ address: '127.0.0.1' })
      closers.push(async () => { await peer.close() })
      const atPeer: string[] = []
      peer.onMessage((d) => { atPeer.push(d.toString()) })

      const url = rendezvous.url as string
      const stunAt = `127.0.0.1:${stun.addresses().udp[0].port}`
      const turnAt = `127.0.0.1:${turnServer.addresses.udp[0].port}`
      const snippet = (block as string)
        .replaceAll("'stun.example.org'", `'${stunAt}'`)
        .replaceAll("'turn.example.org'", `'${turnAt}'`)
      const [importLine, ...rest] = snippet.split('\n')
      const source = [
        importLine,
        '// The values the README leaves to the reader, from the test.',
        'const { username, password, url, token, peer } = JSON.parse(process.env.NATKIT_EXAMPLE as string) as',
        '  { username: string, password: string, url: string, token: string, peer: { address: string, port: number } }',
        'const credentials = { username, password }',
        ...rest,
        '// Wait for the echo of "hello" through the session, then report and close.',
        'const reply = await new Promise<string>((resolve) => { session.once(\'message\', (d) => { resolve(d.toString()) }) })',
        'console.log(JSON.stringify({ udp: report.udp, behindNat: report.nat.behindNat, reply, relayed: turn.allocation.relayed }))',
        'await session.close(); await turn.close(); await signalling.close()'
      ].join('\n')
      writeFileSync(join(project, 'example.ts'), source)
      writeFileSync(join(project, 'tsconfig.json'), JSON.stringify({
        compilerOptions: {
          target: 'ES2022', module: 'NodeNext', moduleResolution: 'NodeNext', strict: true, skipLibCheck: false, outDir: 'out',
          types: ['node'], typeRoots: [join(ROOT, 'node_modules', '@types')]
        },
        files: ['example.ts']
      }))
      const tsc = await run(process.execPath, [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.json'], { cwd: project, timeoutMs: 120_000 })
      expect(tsc.code, `${tsc.stdout}${tsc.stderr}\n--- example.ts\n${source}`).to.equal(0)

      // Bob, the other side of the snippet's session, echoes what he gets. Started once the example is compiled, so his
      // wait for the offer does not include the type-check.
      const bob = await RendezvousClient.connect({ url, id: 'bob', token: rendezvousToken('example-secret', 'bob', 600) })
      closers.push(async () => { await bob.close() })
      const bobSession: Promise<PeerSession> = connect({ channel: rendezvousChannel(bob, 'alice'), role: 'controlled', bindAddress: '127.0.0.1', includeLoopback: true, timeoutMs: 60_000 })
      void bobSession.then((s) => { closers.push(async () => { await s.close() }); s.on('message', (d) => { s.send(d) }) }, () => {})

      const env = { NATKIT_NATIVE: '0', NATKIT_EXAMPLE: JSON.stringify({ username: 'alice', password: 'secret', url, token: rendezvousToken('example-secret', 'alice', 600), peer: peer.local satisfies Endpoint }) }
      const r = await run(process.execPath, ['out/example.js'], { cwd: project, env, timeoutMs: 60_000 })
      expect(r.code, r.stdout + r.stderr).to.equal(0)
      const out = JSON.parse(r.stdout.trim().split('\n').pop() as string) as { udp: boolean, behindNat: boolean, reply: string, relayed: Endpoint }
      expect([out.udp, out.behindNat]).to.deep.equal([true, false])
      expect(out.relayed.address).to.equal('127.0.0.1')
      expect(out.reply).to.equal('hello')
      expect(atPeer).to.include('hi')
    })
  })
})
