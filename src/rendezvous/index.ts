/**
 * natkit/rendezvous: the signalling server and client through which two peers behind NATs exchange candidates and
 * control messages (JSON over WebSocket, docs/rendezvous.md). Tokens share the TURN REST API secret.
 */
export * from './protocol.js'
export * from './errors.js'
export * from './token.js'
export * from './core-options.js'
export * from './core-types.js'
export * from './core.js'
export * from './queue.js'
export * from './address.js'
export * from './server.js'
export * from './client.js'
export * from './wait.js'
