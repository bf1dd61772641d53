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
