import { BatchUdpSocket } from './batch-udp.js'
import { nativeUdpAvailable } from './native-addon.js'
import { UdpSocket, type DatagramSocket, type UdpBindOptions } from './udp.js'

export {
  loadNativeUdp, nativeUdpAvailable, nativeUdpUnavailableReason, type NativeUdpBinding, type NativeUdpBuffers,
  type NativeUdpOpened, type NativeUdpStats
} from './native-addon.js'

/** Options for bindDatagramSocket. */
export interface DatagramBindOptions extends UdpBindOptions {
  /**
   * Use the native batched socket when it is available (default true). `false`, or the environment variable
   * `NATKIT_NATIVE=0`, forces the node:dgram socket.
   */
  readonly native?: boolean
}

/** Whether bindDatagramSocket would pick the native socket for these options. */
export function wantsNativeUdp (options: { native?: boolean } = {}): boolean {
  return options.native !== false && process.env.NATKIT_NATIVE !== '0' && nativeUdpAvailable()
}

/**
 * Bind a UDP socket: the native batched socket (BatchUdpSocket) when the addon is built and not disabled, else a
 * node:dgram UdpSocket. Both behave the same, except that BatchUdpSocket hands handlers a `data` view that is valid
 * only during the handler call. Rejects with TransportError when the address cannot be bound.
 */
export async function bindDatagramSocket (options: DatagramBindOptions = {}): Promise<DatagramSocket> {
  if (!wantsNativeUdp(options)) return await UdpSocket.bind(options)
  return await BatchUdpSocket.bind(options)
}
