/** natkit/stun: the STUN codec, credentials, transactions, client and server (RFC 8489, RFC 5780). */
export {
  FINGERPRINT_XOR, HEADER_LENGTH, MAGIC_COOKIE, MessageClass, Method, TRANSACTION_ID_LENGTH, decodeMessageType,
  describeType, encodeMessageType
} from './constants.js'
export { AttrType, attrName, isComprehensionRequired, isKnownAttr } from './attr-type.js'
export {
  AdditionalAddressFamily, AddressErrorCode, AlternateDomain, AlternateServer, ChangeRequest, ChangedAddress, ChannelNumber,
  ConnectionId, Data, DontFragment, ERROR_REASONS, ErrorCode, EvenPort, Fingerprint, Icmp, IceControlled, IceControlling,
  Lifetime, MappedAddress, MessageIntegrity, MessageIntegritySha256, Nonce, OtherAddress, Padding, PasswordAlgorithm,
  PasswordAlgorithmId, PasswordAlgorithms, Priority, Realm, ReflectedFrom, RequestedAddressFamily, RequestedTransport,
  ReservationToken, ResponseAddress, ResponseOrigin, ResponsePort, Software, SourceAddress, TransportProtocol,
  UnknownAttributes, UseCandidate, Userhash, Username, XorMappedAddress, XorPeerAddress, XorRelayedAddress,
  addressCodec, bytesCodec, flagCodec, portCodec, textCodec, uint32Codec, uint64Codec, xorAddressCodec,
  type AddressErrorCodeValue, type AttributeCodec, type ChangeRequestValue, type CodecContext, type ErrorCodeValue,
  type IcmpValue, type PasswordAlgorithmValue
} from './attributes/index.js'
export { StunMessage, integrityLengthValid, type DecodeOptions, type RawAttribute } from './message.js'
export { MessageBuilder } from './builder.js'
export type { IntegrityHash } from './integrity.js'
export { longTermKey, prepareCredential, shortTermKey, userhash, type PasswordAlgorithmName } from './credentials.js'
export { NONCE_COOKIE, decodeNonceCookie, encodeNonceCookie, type SecurityFeatures } from './nonce-cookie.js'
export {
  CHANNEL_MAX, CHANNEL_MIN, LEGACY_CHANNEL_MAX, decodeChannelData, encodeChannelData, isAcceptedChannel, isValidChannel,
  type ChannelData, type ChannelDataOptions
} from './channel-data.js'
export { classifyPacket, readStreamFrame, type PacketKind, type StreamFrame } from './demux.js'
export { newTransactionId } from './transaction-id.js'
export { RETRANSMIT_DEFAULTS, type RetransmitOptions } from './retransmit.js'
export { StunTransactions, type RequestOptions, type StunResponse, type StunTransactionsOptions } from './transactions.js'
export {
  StunClient, stunBinding, type BindingRequestOptions, type BindingResult, type StunBindingOptions, type StunBindingResult,
  type StunClientOptions
} from './client.js'
export {
  StunServerCore, type IgnoreReason, type StunServerAction, type StunServerCoreOptions, type StunServerStats
} from './server-core.js'
export { StunServer, type StunServerAddresses, type StunServerEvents, type StunServerOptions, type StunTlsOptions } from './server.js'
