import { InvalidArgumentError } from '../errors.js'
import type { SimNatOptions } from './types.js'

/** The NAT presets, named as the lab's NAT types (src/lab/types.ts LabNatType, without `none`). */
export const SIM_NAT_PRESETS = [
  'full-cone', 'restricted-cone', 'port-restricted-cone', 'symmetric', 'symmetric-sequential', 'udp-blocked'
] as const

/** A preset NAT type: the classic RFC 3489 labels, each an RFC 4787 mapping + filtering pair. */
export type SimNatPreset = typeof SIM_NAT_PRESETS[number]

/**
 * The options of each preset, matching the lab's nftables rules (src/lab/nat-rules.ts):
 * - `full-cone`: EIM + EIF, port preserving.
 * - `restricted-cone`: EIM + ADF, port preserving.
 * - `port-restricted-cone`: EIM + APDF, port preserving.
 * - `symmetric`: APDM + APDF, random ports.
 * - `symmetric-sequential`: APDM + APDF, ports +1 per new mapping from 50000.
 * - `udp-blocked`: no UDP gets out.
 */
export const SIM_NAT_PRESET_OPTIONS: Readonly<Record<SimNatPreset, SimNatOptions>> = Object.freeze({
  'full-cone': { mapping: 'endpoint-independent', filtering: 'endpoint-independent', portAllocation: 'preserving' },
  'restricted-cone': { mapping: 'endpoint-independent', filtering: 'address-dependent', portAllocation: 'preserving' },
  'port-restricted-cone': { mapping: 'endpoint-independent', filtering: 'address-and-port-dependent', portAllocation: 'preserving' },
  symmetric: { mapping: 'address-and-port-dependent', filtering: 'address-and-port-dependent', portAllocation: 'random' },
  'symmetric-sequential': {
    mapping: 'address-and-port-dependent', filtering: 'address-and-port-dependent', portAllocation: 'sequential', sequentialStep: 1
  },
  'udp-blocked': { mapping: 'endpoint-independent', filtering: 'address-and-port-dependent', udpBlocked: true }
})

/** The options of a preset NAT type; spread them to change a detail: `{ ...natPreset('full-cone'), hairpin: true }`. */
export function natPreset (type: SimNatPreset): SimNatOptions {
  const options = (SIM_NAT_PRESET_OPTIONS as Record<string, SimNatOptions | undefined>)[type]
  if (options === undefined) throw new InvalidArgumentError(`unknown NAT preset ${JSON.stringify(type)}: use one of ${SIM_NAT_PRESETS.join(', ')}`)
  return { ...options }
}
