/** natkit/discovery: NAT behaviour discovery (RFC 5780, RFC 4787) and the pair predictor. */
export type {
  FilteringBehaviour, MappingBehaviour, NatReport, NatType, PortAllocation, ServerReport, Verdict
} from './types.js'
export { DEFAULT_SERVERS, discoverNat, type DiscoverOptions, type DiscoveryProgress } from './discover.js'
export { classicType, reachableFrom, verdictFor } from './classify.js'
export {
  birthdaySprayProbability, estimateBirthdaySpray, predictPair, type DirectTechnique, type PairPrediction, type PeerProfile, type SprayEstimate, type Strategy
} from './predict.js'
export { LIFETIME_CHECKPOINTS_S } from './lifetime.js'
export { probeTcpPorts, TCP_REACH_PORTS, type TcpPortProbe, type TcpReachOptions } from './tcp-reach.js'
