/**
 * Two network namespaces on one veth link (a single "LAN" segment, multicast on), for tests that must send multicast
 * or other link-local traffic without touching the host's interfaces. Addresses are from 198.51.100.0/24 (RFC 5737),
 * with a route for 224.0.0.0/4 on the link so multicast has an interface to leave by, and a default route to the other
 * namespace (IP forwarding is off in a new namespace, so nothing is routed beyond the pair).
 */
import { randomBytes } from 'node:crypto'
import { ipBatch, listNetns, netnsPids, run } from '../../../src/lab/netns.js'

/** Two linked namespaces; `down()` kills what still runs in them (by PID) and deletes them. Idempotent. */
export interface LinkedNamespaces {
  readonly names: readonly [string, string]
  readonly addresses: readonly [string, string]
  down (): Promise<void>
}

/** Create the pair; `prefix` must identify the caller's branch/test (e.g. `nkice-`), a random id is added. */
export async function linkedNamespaces (prefix: string): Promise<LinkedNamespaces> {
  const id = `${prefix}${randomBytes(2).toString('hex')}`
  const names = [`${id}-m1`, `${id}-m2`] as const
  const addresses = ['198.51.100.1', '198.51.100.2'] as const
  let gone: Promise<void> | undefined
  const down = async (): Promise<void> => {
    gone ??= (async () => {
      const present = new Set(await listNetns())
      for (const ns of names.filter(n => present.has(n))) {
        for (const pid of await netnsPids(ns)) { try { process.kill(pid, 'SIGKILL') } catch { /* already gone */ } }
        await run('ip', ['netns', 'del', ns])
      }
    })()
    await gone
  }
  try {
    await ipBatch(`netns add ${names[0]}\nnetns add ${names[1]}\nlink add eth0 netns ${names[0]} type veth peer name eth0 netns ${names[1]}\n`)
    for (let i = 0; i < 2; i++) {
      // The default route points at the other namespace (which forwards nothing): a browser picks the interface to
      // gather on by routing towards a public address, so it needs one to exist; packets can still go nowhere else.
      await ipBatch(['link set lo up', `addr add ${addresses[i]}/24 dev eth0`, 'link set eth0 multicast on', 'link set eth0 up',
        'route add 224.0.0.0/4 dev eth0', `route add default via ${addresses[1 - i]}`].join('\n') + '\n', names[i])
    }
  } catch (err) {
    await down()
    throw err
  }
  return { names, addresses, down }
}
