/**
 * The in-process NAT simulator: hosts, RFC 4787 NATs, and natkit's STUN and TURN cores on simulated hosts, for
 * traversal tests that run in milliseconds without root.
 */
export { SimNetwork, type SimNatPlacement } from './network.js'
export { SimNat, resolveNatOptions, type ResolvedSimNatOptions, type SimMapping } from './nat.js'
export { SimHost, type SimHostOptions } from './host.js'
export { SimSocket } from './socket.js'
export { SIM_NAT_PRESETS, SIM_NAT_PRESET_OPTIONS, natPreset, type SimNatPreset } from './presets.js'
export { createPrng, deriveSeed, type Prng } from './prng.js'
export { SimStunServer, type SimStunServerOptions } from './stun-server.js'
export { SimTurnServer, SIM_PUBLIC_RANGES, type SimTurnServerOptions, type SimTurnServerEvents } from './turn-server.js'
export {
  SIM_DROP_REASONS, type SimBehaviour, type SimDropReason, type SimNatOptions, type SimNetworkOptions, type SimPacketEvent,
  type SimPortAllocation, type SimStats
} from './types.js'
