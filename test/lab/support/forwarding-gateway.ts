/**
 * A PCP/NAT-PMP gateway for a lab router that really forwards: the loopback test gateway, bound to the router's LAN
 * address on port 5351, turning its table into nftables rules (table `ip nkhn_pm`) on every change: a DNAT of the
 * external port to the internal endpoint, and a SNAT of the internal endpoint's outbound UDP to that external port
 * (a PCP MAP is endpoint-independent both ways, RFC 6887 §11; miniupnpd adds such SNAT rules too). The SNAT chain runs
 * before the lab NAT's own (priority srcnat - 10), so even behind a symmetric NAT the mapped socket keeps one public
 * port. Stands in for a port-mapping router where the lab's miniupnpd will not grant (RFC 5737 external address).
 * Prints `ready`.
 * `node forwarding-gateway.js '{"bind":"10.0.1.1","externalIp":"198.51.100.1"}'`
 */
import { execFileSync } from 'node:child_process'
import { FakeGateway } from '../../integration/portmap/fake-gateway.js'

const spec = JSON.parse(process.argv[2] ?? '{}') as { bind: string, externalIp: string }
const nft = (text: string): void => { execFileSync('nft', ['-f', '-'], { input: text }) }
nft('table ip nkhn_pm {\n chain pre { type nat hook prerouting priority dstnat - 10; policy accept; }\n chain post { type nat hook postrouting priority srcnat - 10; policy accept; }\n}\n')
const gw = await FakeGateway.start(spec.externalIp, { address: spec.bind, port: 5351 })
gw.onChange = () => {
  const live = gw.live()
  const pre = live.map((m) => `add rule ip nkhn_pm pre iifname "wan" ${m.transport === 17 ? 'udp' : 'tcp'} dport ${m.externalPort} dnat to ${m.internalIp}:${m.internalPort}`)
  const post = live.map((m) => `add rule ip nkhn_pm post oifname "wan" ip saddr ${m.internalIp} ${m.transport === 17 ? 'udp' : 'tcp'} sport ${m.internalPort} snat to ${spec.externalIp}:${m.externalPort}`)
  nft(['flush chain ip nkhn_pm pre', 'flush chain ip nkhn_pm post', ...pre, ...post].join('\n') + '\n')
}
process.stdout.write('ready\n')
process.on('SIGTERM', () => { void gw.close().then(() => process.exit(0)) })
