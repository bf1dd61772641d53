/** Where an id is online at another rendezvous node, and since when (that node's registration time). */
export interface Elsewhere { readonly node: string, readonly at: number }

/**
 * The ids online at other rendezvous nodes, as they announced them (fed by the server from its RendezvousRemote):
 * RendezvousCore's directory of the cluster.
 */
export class RemoteDirectory {
  private readonly entries = new Map<string, Elsewhere>()

  /** Where `id` is online elsewhere, if anywhere. */
  where (id: string): Elsewhere | undefined { return this.entries.get(id) }
  has (id: string): boolean { return this.entries.has(id) }
  set (id: string, node: string, at: number): void { this.entries.set(id, { node, at }) }
  delete (id: string): void { this.entries.delete(id) }
  /** Ids online elsewhere. */
  get size (): number { return this.entries.size }

  /** The ids online at `node`. */
  idsAt (node: string): string[] {
    const out: string[] = []
    for (const [id, where] of this.entries) if (where.node === node) out.push(id)
    return out
  }
}
