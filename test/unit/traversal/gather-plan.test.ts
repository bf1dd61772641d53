import { expect } from 'chai'
import { planRelayAttempts, type TurnServerConfig } from '../../../src/traversal/gather.js'

describe('planRelayAttempts (happy-eyeballs order of TURN transports)', () => {
  const credentials = { username: 'u', password: 'p' }
  const show = (configs: TurnServerConfig[]): string[] => planRelayAttempts(configs).map(a => `${a.config.server}/${a.config.transport}${a.delayed ? ' later' : ''}`)

  const cases: Array<{ name: string, configs: TurnServerConfig[], want: string[] }> = [
    { name: 'UDP only: at once', configs: [{ server: 'a:3478', credentials }], want: ['a:3478/udp'] },
    { name: 'a turn: URI without transport: UDP at once, TCP on the same host and port later', configs: [{ server: 'a:443', tcpFallback: true, credentials }], want: ['a:443/udp', 'a:443/tcp later'] },
    { name: 'TCP and TLS servers wait for the UDP one', configs: [{ server: 'a:3478', credentials }, { server: 'b:443', transport: 'tcp', credentials }, { server: 'c:5349', transport: 'tls', credentials }], want: ['a:3478/udp', 'b:443/tcp later', 'c:5349/tls later'] },
    { name: 'no UDP server: TCP and TLS at once', configs: [{ server: 'b:443', transport: 'tcp', credentials }, { server: 'c:5349', transport: 'tls', credentials }], want: ['b:443/tcp', 'c:5349/tls'] },
    { name: 'an explicit TCP server gets no second fallback', configs: [{ server: 'b:443', transport: 'tcp', tcpFallback: true, credentials }], want: ['b:443/tcp'] }
  ]
  for (const c of cases) it(c.name, () => { expect(show(c.configs)).to.deep.equal(c.want) })
})
