import { expect } from 'chai'

/** Await `p` and assert that it rejects with an instance of `type`; returns the error for further checks. */
export async function expectRejection<E extends Error> (p: Promise<unknown>, type: new (...args: any[]) => E): Promise<E> {
  let value: unknown
  try {
    value = await p
  } catch (err) {
    expect(err).to.be.instanceOf(type)
    return err as E
  }
  throw new Error(`expected a rejection with ${type.name}, but it resolved with ${String(value)}`)
}
