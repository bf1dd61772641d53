import type { Session } from './core-session.js'
import type { RendezvousAction } from './core-types.js'

/** Who watches whom (the `watch` frame): the presence part of RendezvousCore. */
export class Watches {
  /** Watched id → the sessions watching it. */
  private readonly watchers = new Map<string, Set<Session>>()

  /** `session` watches `id` from now on. */
  add (session: Session, id: string): void {
    session.watches.add(id)
    let set = this.watchers.get(id)
    if (set === undefined) { set = new Set(); this.watchers.set(id, set) }
    set.add(session)
  }

  /** `session` stops watching `id`. */
  remove (session: Session, id: string): void {
    session.watches.delete(id)
    const set = this.watchers.get(id)
    if (set === undefined) return
    set.delete(session)
    if (set.size === 0) this.watchers.delete(id)
  }

  /** `session` stops watching anything. */
  removeAll (session: Session): void {
    for (const id of session.watches) this.remove(session, id)
  }

  /** A `presence` frame for every connected watcher of `id`. */
  presence (id: string, online: boolean): RendezvousAction[] {
    const out: RendezvousAction[] = []
    for (const s of this.watchers.get(id) ?? []) if (s.conn !== undefined) out.push({ type: 'send', conn: s.conn.id, frame: { type: 'presence', id, online } })
    return out
  }
}
