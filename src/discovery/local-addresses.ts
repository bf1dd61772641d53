/** The host's addresses, read through the net seam (src/net/interfaces.ts); kept for existing imports. */
export { hasGlobalIPv6, localAddresses, sourceAddressFor } from '../net/interfaces.js'
