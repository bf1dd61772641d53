import { expect } from 'chai'
import { createHash } from 'node:crypto'
import { CredentialStore } from '../../../src/relay/credentials.js'
import { longTermKey } from '../../../src/stun/index.js'

describe('CredentialStore keySource (users held as keys, e.g. coturn\'s Redis database)', () => {
  const md5 = createHash('md5').update('gorst:north.gov:hero').digest()
  const source = (name: string, algorithm: 'md5' | 'sha256'): Buffer | undefined => name === 'gorst' && algorithm === 'md5' ? md5 : undefined

  it('finds a user there, with the key as stored (coturn\'s own example value)', () => {
    const store = new CredentialStore({ realm: 'north.gov', keySource: source })
    const r = store.lookup('gorst', 'md5', Date.now())
    expect(r.ok && r.keys.map(k => k.toString('hex'))).to.deep.equal(['7da2270ccfa49786e0115366d3a3d14d'])
    expect(md5.equals(longTermKey('gorst', 'north.gov', 'hero', 'md5'))).to.equal(true)
  })

  it('answers unknown-user for names and algorithms it does not hold', () => {
    const store = new CredentialStore({ realm: 'north.gov', keySource: source })
    expect(store.lookup('gorst', 'sha256', Date.now())).to.deep.equal({ ok: false, reason: 'unknown-user' })
    expect(store.lookup('logen', 'md5', Date.now())).to.deep.equal({ ok: false, reason: 'unknown-user' })
  })

  it('lets static users win over the source', () => {
    const store = new CredentialStore({ realm: 'north.gov', users: { gorst: 'other' }, keySource: source })
    const r = store.lookup('gorst', 'md5', Date.now())
    expect(r.ok && r.keys[0].equals(longTermKey('gorst', 'north.gov', 'other', 'md5'))).to.equal(true)
  })
})
