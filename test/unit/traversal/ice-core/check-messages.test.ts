import { expect } from 'chai'
import {
  buildCheckRequest, buildCheckResponse, isAuthenticCheck, resolveRoleConflict, type IceRole
} from '../../../../src/traversal/ice-core/check-messages.js'
import {
  ErrorCode, IceControlled, IceControlling, MessageClass, Priority, StunMessage, UseCandidate, Username, XorMappedAddress,
  shortTermKey
} from '../../../../src/stun/index.js'

const A = { ufrag: 'aaaa', key: shortTermKey('password-of-a-0123456789') }
const B = { ufrag: 'bbbb', key: shortTermKey('password-of-b-0123456789') }

function checkFromA (role: IceRole, tiebreaker: bigint, nominate = false): StunMessage {
  return StunMessage.decode(buildCheckRequest({ localUfrag: A.ufrag, remoteUfrag: B.ufrag, remoteKey: B.key, priority: 1862270975, role, tiebreaker, nominate }))
}

describe('connectivity-check messages (RFC 8445 §7.2.2, §7.3)', () => {
  it('carry USERNAME remote:local, PRIORITY, the role attribute, USE-CANDIDATE when nominating, integrity and fingerprint', () => {
    const m = checkFromA('controlling', 42n, true)
    expect(m.get(Username)).to.equal('bbbb:aaaa')
    expect(m.get(Priority)).to.equal(1862270975)
    expect(m.get(IceControlling)).to.equal(42n)
    expect(m.get(IceControlled)).to.equal(undefined)
    expect(m.get(UseCandidate)).to.equal(true)
    expect(m.verifyFingerprint()).to.equal(true)
    expect(isAuthenticCheck(m, B.ufrag, B.key)).to.equal(true)
  })

  it('are not authentic for the wrong fragment or the wrong key', () => {
    const m = checkFromA('controlled', 1n)
    expect(isAuthenticCheck(m, 'cccc', B.key)).to.equal(false)
    expect(isAuthenticCheck(m, B.ufrag, A.key)).to.equal(false)
  })

  const conflicts: Array<{ ours: IceRole, our: bigint, theirs: IceRole, their: bigint, want: string }> = [
    { ours: 'controlling', our: 10n, theirs: 'controlled', their: 99n, want: 'none' },
    { ours: 'controlled', our: 10n, theirs: 'controlling', their: 99n, want: 'none' },
    { ours: 'controlling', our: 99n, theirs: 'controlling', their: 10n, want: 'respond-487' },
    { ours: 'controlling', our: 10n, theirs: 'controlling', their: 99n, want: 'switch' },
    { ours: 'controlled', our: 99n, theirs: 'controlled', their: 10n, want: 'switch' },
    { ours: 'controlled', our: 10n, theirs: 'controlled', their: 99n, want: 'respond-487' }
  ]
  for (const c of conflicts) {
    it(`role conflict §7.3.1.1: we ${c.ours} (${c.our}), they ${c.theirs} (${c.their}) → ${c.want}`, () => {
      expect(resolveRoleConflict(checkFromA(c.theirs, c.their), c.ours, c.our)).to.equal(c.want)
    })
  }

  it('answer with XOR-MAPPED-ADDRESS of the source, or 487, with our integrity', () => {
    const req = checkFromA('controlling', 1n)
    const from = { address: '198.51.100.7', port: 40000 }
    const ok = StunMessage.decode(buildCheckResponse(req, from, B.key))
    expect(ok.cls).to.equal(MessageClass.SuccessResponse)
    expect(ok.get(XorMappedAddress)).to.deep.equal(from)
    expect(ok.verifyIntegrity(B.key)).to.equal(true)
    expect(ok.transactionId).to.deep.equal(req.transactionId)
    const conflict = StunMessage.decode(buildCheckResponse(req, from, B.key, true))
    expect(conflict.require(ErrorCode).code).to.equal(487)
  })
})
