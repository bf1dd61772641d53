import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { run } from './process.js'

/** A throw-away self-signed certificate for 127.0.0.1 / ::1 / localhost, made with openssl. */
export interface TestCert {
  readonly certFile: string
  readonly keyFile: string
  readonly cert: Buffer
  remove (): void
}

/** Make a self-signed certificate in a temporary directory (call `remove()` when done). */
export async function makeTestCert (): Promise<TestCert> {
  const dir = mkdtempSync(join(tmpdir(), 'natkit-cert-'))
  const certFile = join(dir, 'cert.pem')
  const keyFile = join(dir, 'key.pem')
  const r = await run('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1',
    '-subj', '/CN=localhost', '-addext', 'subjectAltName=IP:127.0.0.1,IP:::1,DNS:localhost',
    '-keyout', keyFile, '-out', certFile
  ], { timeoutMs: 15_000 })
  if (r.code !== 0) throw new Error(`openssl failed: ${r.stderr}`)
  return { certFile, keyFile, cert: readFileSync(certFile), remove: () => { rmSync(dir, { recursive: true, force: true }) } }
}
