import { createHmac, timingSafeEqual } from 'node:crypto'

/**
 * Stateless RESERVATION-TOKENs (RFC 8656 §7.2, EVEN-PORT with R=1), for a relay whose worker processes share one
 * secret: any worker can check a token another worker issued, so the client's second Allocate (the kernel may hash
 * it to another worker, or it comes over another TCP connection) finds its port. The 8 bytes (§18.9 "RESERVATION-
 * TOKEN ... contains a token that uniquely identifies a relayed transport address being held in reserve") are the
 * reserved port (2), the address family (1) and a 40-bit HMAC-SHA256 over both and the 30-second time slot. A token
 * is good in its slot and the next (30-60 s, "about 30 seconds"). Single use is the OS's doing: the reserved port
 * stays bound while the allocation that claimed it lives.
 */

/** Time slot of a token: RFC 8656 §7.2 holds a reserved port "for about 30 seconds". */
export const RESERVATION_SLOT_MS = 30_000

function mac (secret: Uint8Array, port: number, family: 4 | 6, slot: number): Buffer {
  return createHmac('sha256', secret).update(`natkit-reservation|${port}|${family}|${slot}`).digest().subarray(0, 5)
}

/** The token for `port` of `family`, issued at `now` (ms). */
export function reservationToken (secret: Uint8Array, family: 4 | 6, port: number, now: number): Buffer {
  const out = Buffer.alloc(8)
  out.writeUInt16BE(port, 0)
  out[2] = family
  mac(secret, port, family, Math.floor(now / RESERVATION_SLOT_MS)).copy(out, 3)
  return out
}

/** The reservation a token names, if its MAC is good and it has not expired at `now`; undefined otherwise. */
export function checkReservationToken (secret: Uint8Array, token: Uint8Array, now: number): { family: 4 | 6, port: number, expiresAt: number } | undefined {
  if (token.length !== 8) return undefined
  const b = Buffer.from(token)
  const port = b.readUInt16BE(0)
  const family = b[2]
  if ((family !== 4 && family !== 6) || port === 0) return undefined
  const slot = Math.floor(now / RESERVATION_SLOT_MS)
  for (const s of [slot, slot - 1]) {
    if (timingSafeEqual(mac(secret, port, family, s), b.subarray(3))) return { family, port, expiresAt: (s + 2) * RESERVATION_SLOT_MS }
  }
  return undefined
}
