/**
 * UPnP IGD v1/v2 client parts: SSDP search (UPnP Device Architecture 1.1 §1.3.2), the device description (§2)
 * and the WANIPConnection / WANPPPConnection SOAP actions (§3.2) natkit needs: GetExternalIPAddress,
 * AddPortMapping, AddAnyPortMapping (v2 only), DeletePortMapping. Message building and parsing are pure; the
 * HTTP calls use Node's fetch with a deadline.
 *
 * The XML is a gateway's small, flat documents; natkit reads the handful of elements it needs with bounded regular
 * expressions rather than taking an XML parser dependency for them.
 */
import { PortMapDecodeError } from '../errors.js'

/** SSDP multicast group and port. */
export const SSDP_ADDRESS = '239.255.255.250'
export const SSDP_PORT = 1900
/** Search targets, IGD v2 first (a v2 device also answers v1 searches). */
export const IGD_SEARCH_TARGETS = ['urn:schemas-upnp-org:device:InternetGatewayDevice:2', 'urn:schemas-upnp-org:device:InternetGatewayDevice:1'] as const
/** Connection service types natkit can drive, best first. */
export const WAN_SERVICE_TYPES = [
  'urn:schemas-upnp-org:service:WANIPConnection:2',
  'urn:schemas-upnp-org:service:WANIPConnection:1',
  'urn:schemas-upnp-org:service:WANPPPConnection:1'
] as const

/** An M-SEARCH request for one search target; `mxS` is the answer spread the devices may use (1..5). */
export function ssdpSearch (st: string, mxS = 1): Uint8Array {
  return Buffer.from(`M-SEARCH * HTTP/1.1\r\nHOST: ${SSDP_ADDRESS}:${SSDP_PORT}\r\nMAN: "ssdp:discover"\r\nMX: ${mxS}\r\nST: ${st}\r\n\r\n`)
}

/** The LOCATION and ST of an SSDP search response, or `undefined` when it is not one. Never throws. */
export function parseSsdpResponse (data: Uint8Array): { location: string, st: string } | undefined {
  const text = Buffer.from(data).toString('latin1')
  if (!/^HTTP\/1\.[01] 200/.test(text)) return undefined
  const header = (name: string): string | undefined => new RegExp(`^${name}:[ \\t]*(.*?)\\s*$`, 'im').exec(text)?.[1]
  const location = header('LOCATION')
  const st = header('ST') ?? ''
  if (location === undefined || !/^http:\/\//i.test(location)) return undefined
  return { location, st }
}

/** A WAN connection service from a device description. */
export interface IgdService {
  serviceType: string
  /** Absolute control URL. */
  controlUrl: string
  /** 2 for WANIPConnection:2 (AddAnyPortMapping), else 1. */
  version: 1 | 2
}

function unescapeXml (s: string): string {
  return s.replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&quot;/g, '"').replace(/&apos;/g, "'").replace(/&amp;/g, '&')
}

function escapeXml (s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;')
}

/**
 * The best WAN connection service in a device description (§2.3), its control URL resolved against URLBase or the
 * description's own URL.
 * @throws PortMapDecodeError when the description has none.
 */
export function findWanService (xml: string, location: string): IgdService {
  if (xml.length > 200_000) throw new PortMapDecodeError('UPnP description', 'larger than 200 kB')
  const base = /<URLBase>\s*([^<]+?)\s*<\/URLBase>/i.exec(xml)?.[1] ?? location
  const services = [...xml.matchAll(/<service>([\s\S]*?)<\/service>/gi)].map((m) => m[1])
  for (const type of WAN_SERVICE_TYPES) {
    for (const s of services) {
      const st = /<serviceType>\s*([^<]+?)\s*<\/serviceType>/i.exec(s)?.[1]
      const control = /<controlURL>\s*([^<]+?)\s*<\/controlURL>/i.exec(s)?.[1]
      if (st === type && control !== undefined) {
        return { serviceType: type, controlUrl: new URL(unescapeXml(control), base).toString(), version: type.endsWith(':2') ? 2 : 1 }
      }
    }
  }
  throw new PortMapDecodeError('UPnP description', 'no WANIPConnection or WANPPPConnection service')
}

/** A SOAP request body and SOAPAction header for one action (§3.2.1). */
export function soapRequest (serviceType: string, action: string, args: ReadonlyArray<[string, string | number]>): { body: string, soapAction: string } {
  const inner = args.map(([k, v]) => `<${k}>${escapeXml(String(v))}</${k}>`).join('')
  const body = '<?xml version="1.0"?>\r\n<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" s:encodingStyle="http://schemas.xmlsoap.org/soap/encoding/">' +
    `<s:Body><u:${action} xmlns:u="${serviceType}">${inner}</u:${action}></s:Body></s:Envelope>`
  return { body, soapAction: `"${serviceType}#${action}"` }
}

/** Outcome of a SOAP call: the response's out-arguments, or the UPnP error (§3.2.2). */
export type SoapOutcome = { ok: true, values: Record<string, string> } | { ok: false, errorCode: number, errorDescription: string }

/** Parse a SOAP response body (HTTP 200 or 500). Never throws: an unreadable body is error code -1. */
export function parseSoapResponse (status: number, xml: string): SoapOutcome {
  if (status === 200) {
    const values: Record<string, string> = {}
    const body = /<(?:\w+:)?Body[^>]*>([\s\S]*)<\/(?:\w+:)?Body>/i.exec(xml)?.[1] ?? ''
    for (const m of body.matchAll(/<(New\w+)>([^<]*)<\/\1>/g)) values[m[1]] = unescapeXml(m[2])
    return { ok: true, values }
  }
  const code = /<errorCode>\s*(\d+)\s*<\/errorCode>/i.exec(xml)?.[1]
  const desc = /<errorDescription>\s*([^<]*?)\s*<\/errorDescription>/i.exec(xml)?.[1]
  return { ok: false, errorCode: code !== undefined ? Number(code) : -1, errorDescription: desc !== undefined ? unescapeXml(desc) : `HTTP ${status}` }
}

/** POST one SOAP action to a control URL, bounded by `timeoutMs`. Never throws for HTTP or UPnP errors. */
export async function soapCall (service: IgdService, action: string, args: ReadonlyArray<[string, string | number]>, timeoutMs: number): Promise<SoapOutcome> {
  const { body, soapAction } = soapRequest(service.serviceType, action, args)
  try {
    const res = await fetch(service.controlUrl, {
      method: 'POST',
      headers: { 'Content-Type': 'text/xml; charset="utf-8"', SOAPAction: soapAction },
      body,
      signal: AbortSignal.timeout(timeoutMs)
    })
    return parseSoapResponse(res.status, (await res.text()).slice(0, 100_000))
  } catch (err) {
    return { ok: false, errorCode: -1, errorDescription: (err as Error).message }
  }
}

/** Fetch and read a device description, bounded by `timeoutMs`. */
export async function fetchWanService (location: string, timeoutMs: number): Promise<IgdService> {
  const res = await fetch(location, { signal: AbortSignal.timeout(timeoutMs) })
  if (res.status !== 200) throw new PortMapDecodeError('UPnP description', `HTTP ${res.status} from ${location}`)
  return findWanService((await res.text()).slice(0, 200_001), location)
}
