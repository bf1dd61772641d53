import { randomFillSync } from 'node:crypto'
import { TRANSACTION_ID_LENGTH } from './constants.js'

/** Transaction ids come from a pool refilled by the CSPRNG 512 ids at a time (RFC 8489 §5: uniformly random). */
const POOL_IDS = 512
let pool = Buffer.allocUnsafe(TRANSACTION_ID_LENGTH * POOL_IDS)
let next = pool.length

/** A fresh, cryptographically random 12-byte transaction id (its own memory). */
export function newTransactionId (): Buffer {
  if (next >= pool.length) {
    pool = randomFillSync(Buffer.allocUnsafe(TRANSACTION_ID_LENGTH * POOL_IDS))
    next = 0
  }
  const id = pool.subarray(next, next + TRANSACTION_ID_LENGTH)
  next += TRANSACTION_ID_LENGTH
  return id
}
