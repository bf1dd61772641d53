import { expect } from 'chai'
import { allOnLoopback } from '../../../src/cli/discover.js'

describe('natcheck: when the default gateway is asked for port mappings', () => {
  it('skips it when every server is a loopback address', () => {
    expect(allOnLoopback(['127.0.0.1:3478'])).to.equal(true)
    expect(allOnLoopback(['127.0.0.1:3478', '127.0.0.2:3479', 'localhost', '[::1]:3478'])).to.equal(true)
  })

  it('asks it for the default servers, any non-loopback server, or a mix', () => {
    expect(allOnLoopback(undefined)).to.equal(false)
    expect(allOnLoopback([])).to.equal(false)
    expect(allOnLoopback(['stun.example.net'])).to.equal(false)
    expect(allOnLoopback(['127.0.0.1:3478', '203.0.113.5:3478'])).to.equal(false)
    expect(allOnLoopback(['128.0.0.1'])).to.equal(false)
  })
})
