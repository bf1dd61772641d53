/** natkit: NAT traversal toolkit. The public API; subpaths (`natkit/stun`, …) expose each layer. */
export * from './errors.js'
export * from './net/endpoint.js'
export * from './stun/index.js'
export * from './discovery/index.js'
export * from './relay/index.js'
export * from './lab/index.js'
export * from './rendezvous/index.js'
export * from './traversal/index.js'
