import { get } from 'node:http'

/** GET http://127.0.0.1:PORT/PATH (the relay's admin server), the body as text; bounded by `timeoutMs`. */
export async function httpGet (port: number, path: string, timeoutMs = 10_000): Promise<string> {
  return await new Promise((resolve, reject) => {
    const req = get({ host: '127.0.0.1', port, path, timeout: timeoutMs }, (res) => {
      let body = ''
      res.on('data', (d: Buffer) => { body += d.toString() })
      res.on('end', () => { resolve(body) })
    })
    req.on('timeout', () => { req.destroy(new Error('timeout')) })
    req.on('error', reject)
  })
}

/** One sample's value from a Prometheus text exposition (0 when absent). */
export function sample (body: string, series: string): number {
  const line = body.split('\n').find(l => l.startsWith(series + ' '))
  return line === undefined ? 0 : Number(line.slice(series.length + 1))
}
