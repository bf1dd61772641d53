import { expect } from 'chai'
import { readdirSync, readFileSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import {
  AbortError, ERROR_CODES, InvalidArgumentError, LabError, NatError, NoPathError, RelaySilentError, ResolveError,
  SignallingTimeoutError, StunDecodeError, StunErrorResponse, StunIntegrityError, StunTimeoutError, TransportError
} from '../../src/errors.js'
import { ExitCode, exitCodeFor } from '../../src/cli/exit-codes.js'
import { RendezvousRemoteError, RendezvousTimeoutError } from '../../src/rendezvous/errors.js'

/** The repository's src/ (this file runs as dist/test/unit/errors.test.js). */
const SRC = fileURLToPath(new URL('../../../src/', import.meta.url))

function sources (dir: string): string[] {
  return readdirSync(dir).flatMap(name => {
    const p = join(dir, name)
    return statSync(p).isDirectory() ? sources(p) : p.endsWith('.ts') ? [p] : []
  })
}

describe('one error model', () => {
  it('defines every error code literal in src/errors.ts and nowhere else', () => {
    const offenders: string[] = []
    for (const file of sources(SRC)) {
      if (file.endsWith(join('src', 'errors.ts'))) continue
      // Code, not comments (TSDoc may name a code).
      const text = readFileSync(file, 'utf8').split('\n').filter(l => !/^\s*(\*|\/\/|\/\*)/.test(l)).join('\n')
      for (const m of text.matchAll(/['"`](ERR_[A-Z0-9_]+|ABORT_ERR)['"`]/g)) offenders.push(`${file.slice(SRC.length)}: ${m[1]}`)
    }
    expect(offenders, 'use ERROR_CODES from src/errors.ts').to.deep.equal([])
  })

  it('gives each error class its code, a message and its name', () => {
    const cases: Array<[NatError, string]> = [
      [new InvalidArgumentError('x'), ERROR_CODES.INVALID_ARGUMENT],
      [new StunDecodeError('header', 'short'), ERROR_CODES.STUN_DECODE],
      [new StunIntegrityError('bad'), ERROR_CODES.STUN_INTEGRITY],
      [new StunTimeoutError('s', 1), ERROR_CODES.STUN_TIMEOUT],
      [new StunErrorResponse(401, 'Unauthorized'), ERROR_CODES.STUN_ERROR_RESPONSE],
      [new AbortError(), ERROR_CODES.ABORT],
      [new TransportError('x'), ERROR_CODES.TRANSPORT],
      [new ResolveError('h', 'x'), ERROR_CODES.RESOLVE],
      [new LabError('x'), ERROR_CODES.LAB],
      [new NoPathError(), ERROR_CODES.NO_PATH],
      [new SignallingTimeoutError('answer'), ERROR_CODES.SIGNALLING_TIMEOUT],
      [new RelaySilentError('x'), ERROR_CODES.RELAY_SILENT],
      [new RendezvousTimeoutError('ping', 5), ERROR_CODES.RENDEZVOUS_TIMEOUT]
    ]
    for (const [err, code] of cases) {
      expect(err.code, err.name).to.equal(code)
      expect(err.message).to.not.equal('')
      expect(err.name).to.equal(err.constructor.name)
    }
    expect(new Set(Object.values(ERROR_CODES)).size).to.equal(Object.keys(ERROR_CODES).length)
  })

  describe('exitCodeFor (the one exit-code map)', () => {
    const cases: Array<[string, unknown, ExitCode, ExitCode]> = [
      ['a bad argument', new InvalidArgumentError('x'), ExitCode.Usage, ExitCode.Usage],
      ['a STUN timeout', new StunTimeoutError('s', 1), ExitCode.Inconclusive, ExitCode.Inconclusive],
      ['a transport error (a client: network; a server: its listen address)', new TransportError('x'), ExitCode.Inconclusive, ExitCode.Usage],
      ['a resolve error', new ResolveError('h', 'x'), ExitCode.Inconclusive, ExitCode.Usage],
      ['no path', new NoPathError(), ExitCode.Inconclusive, ExitCode.Inconclusive],
      ['a signalling timeout', new SignallingTimeoutError('offer'), ExitCode.Inconclusive, ExitCode.Inconclusive],
      ['a silent relay', new RelaySilentError('x'), ExitCode.Inconclusive, ExitCode.Inconclusive],
      ['a rendezvous server error', new RendezvousRemoteError('rate_limited', 'slow down'), ExitCode.Inconclusive, ExitCode.Inconclusive],
      ['a decode error (a bug if it escapes)', new StunDecodeError('header', 'x'), ExitCode.Internal, ExitCode.Internal],
      ['a plain Error', new Error('bug'), ExitCode.Internal, ExitCode.Internal],
      ['a thrown string', 'bug', ExitCode.Internal, ExitCode.Internal]
    ]
    for (const [name, err, client, server] of cases) {
      it(`maps ${name} to ${client} for clients and ${server} for servers`, () => {
        expect(exitCodeFor(err)).to.equal(client)
        expect(exitCodeFor(err, 'server')).to.equal(server)
      })
    }
  })
})
