/** natkit/traversal: candidates, connectivity checks, relay-first sessions that upgrade to direct paths. */
export * from './candidate.js'
export * from './check-list.js'
export * from './gather.js'
export * from './socket-mux.js'
export * from './relay-socket.js'
export * from './agent.js'
export * from './signal-channel.js'
export * from './session.js'
