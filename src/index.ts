/**
 * natkit: NAT traversal toolkit. The names most applications need; each layer's subpath (`natkit/net`, `natkit/stun`,
 * `natkit/discovery`, `natkit/relay`, `natkit/rendezvous`, `natkit/traversal`, `natkit/lab`) has the rest.
 */
export {
  AbortError, ERROR_CODES, InvalidArgumentError, LabError, NatError, NoPathError, RelaySilentError, ResolveError,
  SignallingTimeoutError, StunDecodeError, StunErrorResponse, StunIntegrityError, StunTimeoutError, TcpPunchError, TransportError,
  type NatErrorCode
} from './errors.js'
export { setLogSink, type LogRecord, type LogSink } from './log.js'
export {
  bindDatagramSocket, formatEndpoint, parseEndpoint, UdpSocket, type DatagramBindOptions, type DatagramSocket,
  type Endpoint, type UdpBindOptions
} from './net/index.js'
export {
  MessageBuilder, MessageClass, Method, StunClient, StunMessage, StunServer, stunBinding, XorMappedAddress,
  type BindingResult, type StunBindingOptions, type StunBindingResult, type StunClientOptions, type StunServerOptions
} from './stun/index.js'
export {
  DEFAULT_SERVERS, discoverNat, predictPair, type DiscoverOptions, type DiscoveryProgress, type NatReport, type NatType,
  type PairPrediction, type Strategy
} from './discovery/index.js'
export {
  checkTurn, parseTurnUri, TurnClient, TurnServer, type TurnCheckOptions, type TurnCheckReport, type TurnClientOptions,
  type TurnCredentials, type TurnServerOptions, type TurnUri
} from './relay/index.js'
export {
  RendezvousClient, RendezvousServer, rendezvousToken, type RendezvousClientOptions, type RendezvousServerOptions
} from './rendezvous/index.js'
export {
  ConnectError, PeerSession, candidateFromSdp, candidateToSdp, channelPair, connect, rendezvousChannel, roleFor,
  type Candidate, type ConnectOptions, type ConnectReport, type SignalChannel, type SignalMessage
} from './traversal/index.js'
export {
  PortMapper, probePortMapping, removeOnSignals, type PortMapperEvents, type PortMapperOptions, type PortMapProbeOptions, type PortMapReport
} from './portmap/index.js'
