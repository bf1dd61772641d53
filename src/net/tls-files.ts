import { readFile } from 'node:fs/promises'
import { InvalidArgumentError } from '../errors.js'

/** Where a server's TLS certificate chain and private key are (PEM files). */
export interface TlsFiles {
  readonly certFile: string
  readonly keyFile: string
}

/** The PEM certificate chain and key, as a tls.createServer / setSecureContext wants them. */
export interface TlsCredentials {
  readonly cert: Buffer
  readonly key: Buffer
}

/**
 * Read a server's certificate and key (the STUN and TURN servers' TLS listeners, and their reloads). Rejects with
 * InvalidArgumentError naming the file problem.
 */
export async function readTlsFiles (files: TlsFiles): Promise<TlsCredentials> {
  try {
    const [cert, key] = await Promise.all([readFile(files.certFile), readFile(files.keyFile)])
    return { cert, key }
  } catch (err) {
    throw new InvalidArgumentError(`cannot read the TLS certificate or key: ${(err as Error).message}`, { cause: err })
  }
}
