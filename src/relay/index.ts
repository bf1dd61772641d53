/**
 * natkit/relay: the TURN server (RFC 8656, RFC 6062, RFC 6156) — sans-IO core, socket adapter, metrics, admin HTTP —
 * and the TURN client, the TURN URI parser (RFC 7065) and the end-to-end TURN check.
 */
export type { ClientProtocol, ClientTransport, RelayAction, RelayEvent, RelayIgnoreReason, RelayOpenResult } from './types.js'
export type { TurnServerCoreOptions } from './core-options.js'
export { TurnServerCore, type CoreStats } from './server-core.js'
export {
  TurnServer, type TurnServerEvents, type TurnServerOptions, type TurnServerStats, type TurnTlsOptions
} from './turn-server.js'
export { DEFAULT_DENIED_PEERS, PeerPolicy, type PeerPolicyOptions, type PeerVerdict } from './peer-policy.js'
export {
  CredentialStore, restApiPassword, restApiUsername, type CredentialFailure, type CredentialLookup, type CredentialStoreOptions
} from './credentials.js'
export {
  InMemoryRelayMetrics, PrometheusRelayMetrics, RELAY_COUNTERS, RELAY_GAUGES, type PrometheusRelayMetricsOptions,
  type RelayCounter, type RelayGauge, type RelayMetrics, type RelayMetricsSnapshot
} from './metrics.js'
export { AdminServer, type AdminServerOptions } from './admin-server.js'
export { TurnClient, type TurnAllocation, type TurnClientEvents, type TurnClientOptions, type TurnFailoverOptions } from './turn-client.js'
export { restCredentials, type TurnCredentials } from './turn-client-auth.js'
export { parseTurnUri, type TurnUri } from './turn-uri.js'
export { checkTurn, type TurnCheckOptions, type TurnCheckReport, type TurnCheckStep } from './turn-check.js'
