/**
 * STUN attribute type numbers (IANA "STUN Attributes" registry). Types below 0x8000 are
 * comprehension-required: a receiver that does not understand one answers 420 (RFC 8489 §14).
 */
export const AttrType = {
  // RFC 8489 §14
  MappedAddress: 0x0001,
  Username: 0x0006,
  MessageIntegrity: 0x0008,
  ErrorCode: 0x0009,
  UnknownAttributes: 0x000a,
  Realm: 0x0014,
  Nonce: 0x0015,
  MessageIntegritySha256: 0x001c,
  PasswordAlgorithm: 0x001d,
  Userhash: 0x001e,
  XorMappedAddress: 0x0020,
  PasswordAlgorithms: 0x8002,
  AlternateDomain: 0x8003,
  Software: 0x8022,
  AlternateServer: 0x8023,
  Fingerprint: 0x8028,
  // RFC 3489 §11.2 (classic STUN)
  ResponseAddress: 0x0002,
  ChangeRequest: 0x0003, // also RFC 5780 §7.2
  SourceAddress: 0x0004,
  ChangedAddress: 0x0005,
  ReflectedFrom: 0x000b,
  // RFC 5780 §7
  Padding: 0x0026,
  ResponsePort: 0x0027,
  ResponseOrigin: 0x802b,
  OtherAddress: 0x802c,
  // RFC 8656 §18, RFC 6156, RFC 6062 §6.2
  ChannelNumber: 0x000c,
  Lifetime: 0x000d,
  XorPeerAddress: 0x0012,
  Data: 0x0013,
  XorRelayedAddress: 0x0016,
  RequestedAddressFamily: 0x0017,
  EvenPort: 0x0018,
  RequestedTransport: 0x0019,
  DontFragment: 0x001a,
  ReservationToken: 0x0022,
  ConnectionId: 0x002a,
  AdditionalAddressFamily: 0x8000,
  AddressErrorCode: 0x8001,
  Icmp: 0x8004,
  // RFC 8445 §16.1 (ICE)
  Priority: 0x0024,
  UseCandidate: 0x0025,
  IceControlled: 0x8029,
  IceControlling: 0x802a
} as const
export type AttrType = typeof AttrType[keyof typeof AttrType]

const NAMES = new Map<number, string>(Object.entries(AttrType).map(([name, value]) => [
  value,
  name.replace(/([a-z0-9])([A-Z])/g, '$1-$2').toUpperCase()
]))

/** The IANA name of an attribute type (`XOR-MAPPED-ADDRESS`), or `0x1234` when unknown. */
export function attrName (type: number): string {
  return NAMES.get(type) ?? `0x${type.toString(16).padStart(4, '0')}`
}

/** Whether natkit's codec knows this attribute type. */
export function isKnownAttr (type: number): boolean {
  return NAMES.has(type)
}

/** Comprehension-required attributes are 0x0000-0x7FFF (RFC 8489 §14). */
export function isComprehensionRequired (type: number): boolean {
  return type < 0x8000
}
