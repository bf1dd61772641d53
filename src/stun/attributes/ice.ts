import { AttrType } from '../attr-type.js'
import { flagCodec, uint32Codec, uint64Codec } from './basic.js'

/** PRIORITY of the peer-reflexive candidate a check would create. RFC 8445 §16.1. */
export const Priority = uint32Codec(AttrType.Priority, 'PRIORITY')
/** USE-CANDIDATE: the controlling agent nominates this pair. RFC 8445 §16.1. */
export const UseCandidate = flagCodec(AttrType.UseCandidate, 'USE-CANDIDATE')
/** ICE-CONTROLLED with the sender's tie-breaker. RFC 8445 §16.1. */
export const IceControlled = uint64Codec(AttrType.IceControlled, 'ICE-CONTROLLED')
/** ICE-CONTROLLING with the sender's tie-breaker. RFC 8445 §16.1. */
export const IceControlling = uint64Codec(AttrType.IceControlling, 'ICE-CONTROLLING')
