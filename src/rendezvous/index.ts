/**
 * natkit/rendezvous: the signalling server and client through which two peers behind NATs exchange candidates and
 * control messages (JSON over WebSocket, docs/rendezvous.md). Tokens share the TURN REST API secret.
 */
export {
  MAX_ID_LENGTH, RENDEZVOUS_ERROR_CODES, RENDEZVOUS_PATH, isValidPeerId, type ObservedAddress, type RendezvousErrorCode
} from './protocol.js'
export {
  RendezvousClosedError, RendezvousError, RendezvousOutboxFullError, RendezvousRemoteError, RendezvousTimeoutError
} from './errors.js'
export {
  DEFAULT_TOKEN_SKEW_S, rendezvousToken, verifyRendezvousToken, type TokenFailure, type TokenVerification,
  type VerifyTokenOptions
} from './token.js'
export type { RendezvousCoreOptions, RendezvousRateLimit } from './core-options.js'
export {
  DROP_REASONS, type ConnId, type DropReason, type HandedOverDelivery, type RemoteMessage, type RendezvousAction, type RendezvousEvent,
  type RendezvousStats, type SessionHandover, type SessionRequest
} from './core-types.js'
export type { RendezvousRemote, RendezvousRemoteHandlers } from './remote.js'
export { RedisRendezvousRemote, type RedisRendezvousRemoteOptions } from './redis-remote.js'
export { RendezvousCore } from './core.js'
export type { OfflineQueueLimits } from './queue.js'
export {
  RendezvousServer, type RendezvousServerEvents, type RendezvousServerOptions, type RendezvousServerStats
} from './server.js'
export {
  RendezvousClient, type RendezvousClientEvents, type RendezvousClientOptions, type RendezvousMessageInfo,
  type RendezvousReconnectOptions, type RendezvousRequestOptions
} from './client.js'
export { waitForMessage, type ReceivedMessage, type WaitForMessageOptions } from './wait.js'
