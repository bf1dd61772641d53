/**
 * natkit/net: the socket seams every natkit protocol object talks to — the DatagramSocket interface that options such
 * as `StunClientOptions.socket` take, the node:dgram and native (recvmmsg/sendmmsg) sockets, endpoints, the STUN/TURN
 * server resolver (RFC 8489 §8) and the host-interfaces seam of NAT discovery.
 */
export {
  formatEndpoint, ipFamily, parseEndpoint, parseHostPort, sameEndpoint, type Endpoint
} from './endpoint.js'
export { UdpSocket, type DatagramSocket, type UdpBindOptions } from './udp.js'
export { BatchUdpSocket, type BatchUdpStats } from './batch-udp.js'
export {
  bindDatagramSocket, nativeUdpAvailable, nativeUdpUnavailableReason, wantsNativeUdp, type DatagramBindOptions
} from './native.js'
export { defaultPort, resolveServer, type ResolveOptions, type ResolvedServer, type Transport } from './resolve.js'
export { systemInterfaces, type HostInterfaces } from './interfaces.js'
export type { TlsClientOptions } from './stream.js'
