/**
 * NAT lab: real Linux kernel NATs (nftables + conntrack) in network namespaces, for end-to-end tests
 * of NAT behaviour discovery and traversal. Linux and root only.
 */
export { Lab, labDown, labSupported, listLabs } from './lab.js'
export type { LabExecOptions, LabExecResult, LabStatus } from './lab.js'
export { LAB_NAT_FILTERING, LAB_NAT_MAPPING, LAB_NAT_TYPES, LAB_NODES } from './types.js'
export type { LabInfo, LabNatType, LabNode, LabOptions, LabSite, LabSiteInfo } from './types.js'
export { natRuleset, isEndpointIndependentMapping, NAT_TABLE } from './nat-rules.js'
export type { NatRulesetOptions } from './nat-rules.js'
export { DEFAULT_UDP_TIMEOUT_S, planLab, resolveLabOptions } from './topology.js'
export type { ResolvedLabOptions } from './topology.js'
export { LAB_RENDEZVOUS_PORT, LAB_SECRET, LAB_STUN_ALT_PORT, LAB_STUN_PORT, LAB_TURN_PORT, labServiceArgv, startLabServices, stopLabServices } from './services.js'
export type { LabServiceProcess, LabServices } from './services.js'
