/** natkit/traversal: candidates, connectivity checks, relay-first sessions that upgrade to direct paths (RFC 8445). */
export {
  TYPE_PREFERENCE, candidateFromSdp, candidatePriority, candidateToSdp, makeCandidate, type Candidate,
  type CandidateTransport, type CandidateType, type TcpType
} from './candidate.js'
export type { CandidatePair, CheckOutcome, PairState } from './ice-core/check-list.js'
export type { GatherAttempt, PortMappingOptions, TurnServerConfig } from './gather.js'
export {
  MAX_PREDICTED_PORTS, PREDICTED_PORTS, predictPorts, type AllocationSample, type PortPrediction, type PortPredictionOptions, type PredictionReason
} from './port-prediction.js'
export type { BirthdaySpray, BirthdaySprayReport } from './birthday-spray.js'
export {
  MAX_SPRAY_PROBES, MAX_SPRAY_SOCKETS, SPRAY_PORT_RANGE, SPRAY_PROBES, SPRAY_RATE, SPRAY_SOCKETS, planSpray, type BirthdaySprayOptions,
  type SprayAnnouncement, type SprayMapping, type SprayPlan, type SprayReason, type SprayRole
} from './spray-plan.js'
export { Agent, type AgentEvents, type AgentOptions, type MdnsResolution, type PathInfo } from './agent.js'
export { DEFAULT_MDNS_TIMEOUT_MS, isMdnsName, resolveMdns, type MdnsResolveOptions, type MdnsResolver } from './mdns.js'
export { publishMdns, type MdnsPublication, type MdnsPublisher } from './mdns-responder.js'
export { channelPair, type SignalChannel, type SignalMessage } from './signal-channel.js'
export {
  ConnectError, PeerSession, connect, type ConnectAttempt, type ConnectOptions, type ConnectReport, type PeerSessionEvents
} from './session.js'
export { rendezvousChannel, roleFor } from './rendezvous-channel.js'
export type { IceRole } from './ice-core/check-messages.js'
export { classifyIceDatagram, isStunDatagram, type IceDatagramKind } from './ice-core/app-demux.js'
export { RFC4571_MAX_FRAME, Rfc4571Decoder, frameRfc4571 } from './rfc4571.js'
export type { TcpPunchOutcome } from './tcp-punch.js'
export type { TcpPunchAttempt, TcpPunchReport, TcpPunchResult, TcpSimultaneousOpenOptions } from './tcp-punch-link.js'
export { buildIceSdp, formatSdpLines, parseIceSdp, type IceSdpSection, type ParsedIceSdp } from './sdp.js'
