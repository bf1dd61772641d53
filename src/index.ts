/** natkit: NAT traversal toolkit. The public API; subpaths (`natkit/stun`, …) expose each layer. */
export * from './errors.js'
export * from './net/endpoint.js'
export * from './stun/index.js'
