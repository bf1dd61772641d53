/** STUN attribute codecs (pion's Setter/Getter, typed): one per IANA attribute, and the factories for custom ones. */
export type { AttributeCodec, CodecContext } from './codec.js'
export { addressCodec, xorAddressCodec } from './address.js'
export { bytesCodec, flagCodec, portCodec, textCodec, uint32Codec, uint64Codec } from './basic.js'
export {
  AlternateServer, ChangedAddress, MappedAddress, OtherAddress, ReflectedFrom, ResponseAddress, ResponseOrigin,
  SourceAddress, XorMappedAddress, XorPeerAddress, XorRelayedAddress
} from './address.js'
export {
  AlternateDomain, ERROR_REASONS, ErrorCode, Fingerprint, MessageIntegrity, MessageIntegritySha256, Nonce,
  PasswordAlgorithm, PasswordAlgorithmId, PasswordAlgorithms, Realm, Software, UnknownAttributes, Userhash, Username,
  type ErrorCodeValue, type PasswordAlgorithmValue
} from './stun.js'
export { ChangeRequest, Padding, ResponsePort, type ChangeRequestValue } from './nat.js'
export {
  AdditionalAddressFamily, AddressErrorCode, ChannelNumber, ConnectionId, Data, DontFragment, EvenPort, Icmp, Lifetime,
  RequestedAddressFamily, RequestedTransport, ReservationToken, TransportProtocol, type AddressErrorCodeValue, type IcmpValue
} from './turn.js'
export { IceControlled, IceControlling, Priority, UseCandidate } from './ice.js'
