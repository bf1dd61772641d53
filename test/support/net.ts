import { createSocket } from 'node:dgram'
import { createServer } from 'node:net'

/** A port free on `address` for both UDP and TCP right now (bound and released; a small race remains). */
export async function freePort (address = '127.0.0.1'): Promise<number> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const udp = createSocket('udp4')
    const port = await new Promise<number>((resolve, reject) => {
      udp.once('error', reject)
      udp.bind(0, address, () => { resolve(udp.address().port) })
    })
    const tcpOk = await new Promise<boolean>((resolve) => {
      const server = createServer()
      server.once('error', () => { resolve(false) })
      server.listen(port, address, () => { server.close(() => { resolve(true) }) })
    })
    await new Promise<void>(resolve => { udp.close(() => { resolve() }) })
    if (tcpOk) return port
  }
  throw new Error('no free port found in 20 attempts')
}

/**
 * The first port of a random window of `size` relay ports below Linux's ephemeral range (32768-60999 by default).
 * The relay holds a RESERVATION-TOKEN's port (EVEN-PORT R=1) in its pool, not in the OS: inside the ephemeral range,
 * any client socket the test opens (uclient opens dozens) may take that port first and the second Allocate gets 508.
 * Operators are told the same in docs/relay.md.
 */
export function relayPortBase (size = 500): number {
  return 20000 + Math.floor(Math.random() * (32768 - 20000 - size))
}
