import { AttrType } from '../attr-type.js'
import { bytesCodec, portCodec } from './basic.js'
import { check, type AttributeCodec } from './codec.js'

/** CHANGE-REQUEST flags: answer from the other IP and/or the other port. RFC 5780 §7.2, RFC 3489 §11.2.4. */
export interface ChangeRequestValue {
  readonly ip: boolean
  readonly port: boolean
}

const CHANGE_IP = 0x04
const CHANGE_PORT = 0x02

/** CHANGE-REQUEST. RFC 5780 §7.2. */
export const ChangeRequest: AttributeCodec<ChangeRequestValue> = {
  type: AttrType.ChangeRequest,
  name: 'CHANGE-REQUEST',
  encode (value) {
    const out = Buffer.alloc(4)
    out[3] = (value.ip ? CHANGE_IP : 0) | (value.port ? CHANGE_PORT : 0)
    return out
  },
  decode (value) {
    check(value.length === 4, 'CHANGE-REQUEST', `${value.length} bytes, expected 4`)
    return { ip: (value[3] & CHANGE_IP) !== 0, port: (value[3] & CHANGE_PORT) !== 0 }
  }
}

/** RESPONSE-PORT: send the response to this port instead. RFC 5780 §7.5. */
export const ResponsePort = portCodec(AttrType.ResponsePort, 'RESPONSE-PORT')
/** PADDING: pad the response to the request's size (MTU discovery). RFC 5780 §7.6. */
export const Padding = bytesCodec(AttrType.Padding, 'PADDING')
