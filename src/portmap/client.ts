/**
 * Port-mapping clients: PCP (RFC 6887), NAT-PMP (RFC 6886) and UPnP IGD v1/v2, each bounded in time. The codecs
 * are in pcp.ts, natpmp.ts and upnp.ts; this file owns the sockets and the retransmissions.
 */
import { createSocket, type Socket } from 'node:dgram'
import { createLogger } from '../log.js'
import { decodeNatPmpResponse, encodeNatPmpExternalRequest, encodeNatPmpMapRequest, NATPMP_PORT, natPmpResultName, type NatPmpResponse } from './natpmp.js'
import { decodePcpResponse, encodePcpMapRequest, pcpNonce, pcpResultName, type PcpResponse } from './pcp.js'
import { fetchWanService, IGD_SEARCH_TARGETS, parseSsdpResponse, soapCall, SSDP_ADDRESS, SSDP_PORT, ssdpSearch, type IgdService } from './upnp.js'

const log = createLogger('natcheck:portmap')

/** The three protocols, in the order natkit prefers their mappings. */
export const PORTMAP_PROTOCOLS = ['pcp', 'nat-pmp', 'upnp'] as const
export type PortMapProtocol = typeof PORTMAP_PROTOCOLS[number]

/** A mapping a gateway granted. */
export interface GrantedMapping {
  protocol: PortMapProtocol
  transport: 'udp' | 'tcp'
  internalIp: string
  internalPort: number
  externalPort: number
  /** The external address the gateway gave with it (null when it would not say). */
  externalIp: string | null
  lifetimeS: number
  /** Gateway epoch (PCP, NAT-PMP) when granted, to notice a restart (RFC 6887 §8.5, RFC 6886 §3.6). */
  epoch: number | null
  /** PCP only: the nonce that owns it. */
  nonce?: Uint8Array
  /** UPnP only: the service that holds it. */
  service?: IgdService
}

/** What one protocol said. */
export interface ProtocolOutcome {
  protocol: PortMapProtocol
  /** The gateway answered in this protocol (even with an error result). */
  speaks: boolean
  /** External address the gateway reported, if it did. */
  externalIp: string | null
  /** The mapping, when one was asked for and granted. */
  mapping: GrantedMapping | null
  /** Why there is no external address or mapping: the protocol's own result name, or a timeout. */
  error: string | null
  /** e.g. the UPnP service type. */
  detail: string | null
  ms: number
}

/** A mapping request. */
export interface MapRequest {
  transport: 'udp' | 'tcp'
  internalPort: number
  /** Suggested external port (default: the internal one). */
  externalPort?: number
  lifetimeS: number
}

/** Context every protocol client needs. */
export interface GatewayContext {
  gateway: string
  /** Our address on the gateway's LAN. */
  localIp: string
  timeoutMs: number
  /** PCP / NAT-PMP server port (default 5351; tests use another). */
  port?: number
}

/**
 * Send `request` to gateway:5351 from a fresh socket, retransmitting at 250 ms doubling (RFC 6886 §3.1, RFC 6887
 * §8.1.1) until `accept` takes an answer or `timeoutMs` passes. Resolves `undefined` on timeout. Never throws.
 */
async function exchange<T> (ctx: GatewayContext, request: Uint8Array, decode: (d: Buffer) => T | undefined, timeoutMs: number): Promise<T | undefined> {
  const s: Socket = createSocket('udp4')
  try {
    await new Promise<void>((resolve, reject) => { s.once('error', reject); s.bind(0, ctx.localIp, () => { s.off('error', reject); resolve() }) })
  } catch {
    s.close()
    return undefined
  }
  return await new Promise<T | undefined>((resolve) => {
    let rto = 250
    let timer: NodeJS.Timeout | undefined
    const send = (): void => {
      s.send(request, ctx.port ?? NATPMP_PORT, ctx.gateway, () => {})
      timer = setTimeout(send, rto)
      rto *= 2
    }
    const deadline = setTimeout(() => { done(undefined) }, timeoutMs)
    function done (v: T | undefined): void {
      clearTimeout(timer); clearTimeout(deadline)
      s.close()
      resolve(v)
    }
    s.on('error', () => { /* ICMP errors: keep waiting until the deadline */ })
    s.on('message', (d, rinfo) => {
      if (rinfo.address !== ctx.gateway || rinfo.port !== (ctx.port ?? NATPMP_PORT)) return
      try {
        const v = decode(d)
        if (v !== undefined) done(v)
      } catch (err) {
        log('ignoring a malformed answer from %s: %s', rinfo.address, (err as Error).message)
      }
    })
    send()
  })
}

/** PCP: one MAP request (also the way to learn the external address, §11.6). `lifetimeS` 0 deletes. */
export async function pcpMap (ctx: GatewayContext, req: MapRequest & { nonce?: Uint8Array, externalIp?: string }): Promise<{ response: PcpResponse | undefined, nonce: Uint8Array }> {
  const nonce = req.nonce ?? pcpNonce()
  const request = encodePcpMapRequest({ clientIp: ctx.localIp, nonce, protocol: req.transport, internalPort: req.internalPort, externalPort: req.externalPort ?? req.internalPort, externalIp: req.externalIp, lifetimeS: req.lifetimeS })
  const response = await exchange(ctx, request, (d) => {
    const r = decodePcpResponse(d)
    // A MAP answer must echo our nonce (§11.3); a version-0 answer is a NAT-PMP server refusing PCP.
    if (r.version === 2 && (r.map === undefined || !Buffer.from(r.map.nonce).equals(Buffer.from(nonce)))) return undefined
    return r
  }, ctx.timeoutMs)
  return { response, nonce }
}

/** NAT-PMP: the external address request (§3.2). */
export async function natPmpExternal (ctx: GatewayContext): Promise<NatPmpResponse | undefined> {
  return await exchange(ctx, encodeNatPmpExternalRequest(), (d) => { const r = decodeNatPmpResponse(d); return r.kind === 'external' ? r : undefined }, ctx.timeoutMs)
}

/** NAT-PMP: one mapping request (§3.3); lifetime 0 deletes (§3.4). */
export async function natPmpMap (ctx: GatewayContext, req: MapRequest): Promise<NatPmpResponse | undefined> {
  const request = encodeNatPmpMapRequest({ protocol: req.transport, internalPort: req.internalPort, externalPort: req.lifetimeS === 0 ? 0 : req.externalPort ?? req.internalPort, lifetimeS: req.lifetimeS })
  return await exchange(ctx, request, (d) => {
    const r = decodeNatPmpResponse(d)
    return r.kind === 'map' && r.protocol === req.transport && (r.result !== 0 || r.internalPort === req.internalPort) ? r : undefined
  }, ctx.timeoutMs)
}

/** UPnP: SSDP search for an IGD, answered within `timeoutMs`; the first LOCATION wins. */
export async function ssdpDiscover (ctx: GatewayContext): Promise<{ location: string, st: string } | undefined> {
  const s = createSocket({ type: 'udp4', reuseAddr: true })
  try {
    await new Promise<void>((resolve, reject) => { s.once('error', reject); s.bind(0, ctx.localIp, () => { s.off('error', reject); resolve() }) })
  } catch {
    s.close()
    return undefined
  }
  return await new Promise((resolve) => {
    const timers: NodeJS.Timeout[] = []
    const finish = (v: { location: string, st: string } | undefined): void => { for (const t of timers) clearTimeout(t); s.close(); resolve(v) }
    s.on('error', () => {})
    s.on('message', (d) => { const r = parseSsdpResponse(d); if (r !== undefined) finish(r) })
    const search = (): void => { for (const st of IGD_SEARCH_TARGETS) s.send(ssdpSearch(st, 1), SSDP_PORT, SSDP_ADDRESS, () => {}) }
    search()
    timers.push(setTimeout(search, Math.min(500, ctx.timeoutMs / 3)))
    timers.push(setTimeout(() => { finish(undefined) }, ctx.timeoutMs))
  })
}

/** UPnP: find the gateway's WAN connection service (SSDP, then the description). */
export async function upnpService (ctx: GatewayContext): Promise<{ service: IgdService | undefined, error: string | null }> {
  const found = await ssdpDiscover(ctx)
  if (found === undefined) return { service: undefined, error: 'no SSDP answer' }
  try {
    return { service: await fetchWanService(found.location, ctx.timeoutMs), error: null }
  } catch (err) {
    return { service: undefined, error: (err as Error).message }
  }
}

/** UPnP: map a port, AddAnyPortMapping on IGD v2 (the gateway picks a free port), else AddPortMapping. */
export async function upnpMap (ctx: GatewayContext, service: IgdService, req: MapRequest, description = 'natkit'): Promise<{ externalPort: number | null, error: string | null }> {
  const ext = req.externalPort ?? req.internalPort
  const args = (action: string): Array<[string, string | number]> => [['NewRemoteHost', ''], ['NewExternalPort', ext], ['NewProtocol', req.transport.toUpperCase()],
    ['NewInternalPort', req.internalPort], ['NewInternalClient', ctx.localIp], ['NewEnabled', 1], ['NewPortMappingDescription', `${description} ${action}`], ['NewLeaseDuration', req.lifetimeS]]
  if (service.version === 2) {
    const r = await soapCall(service, 'AddAnyPortMapping', args('AddAnyPortMapping'), ctx.timeoutMs)
    if (r.ok) {
      const port = Number(r.values.NewReservedPort)
      return Number.isInteger(port) && port > 0 ? { externalPort: port, error: null } : { externalPort: null, error: 'AddAnyPortMapping gave no NewReservedPort' }
    }
    log('AddAnyPortMapping failed (%d %s); trying AddPortMapping', r.errorCode, r.errorDescription)
  }
  const r = await soapCall(service, 'AddPortMapping', args('AddPortMapping'), ctx.timeoutMs)
  return r.ok ? { externalPort: ext, error: null } : { externalPort: null, error: `UPnP error ${r.errorCode} ${r.errorDescription}` }
}

/** UPnP: DeletePortMapping. */
export async function upnpUnmap (ctx: GatewayContext, service: IgdService, transport: 'udp' | 'tcp', externalPort: number): Promise<boolean> {
  const r = await soapCall(service, 'DeletePortMapping', [['NewRemoteHost', ''], ['NewExternalPort', externalPort], ['NewProtocol', transport.toUpperCase()]], ctx.timeoutMs)
  return r.ok
}

/** UPnP: GetExternalIPAddress. */
export async function upnpExternalIp (ctx: GatewayContext, service: IgdService): Promise<{ ip: string | null, error: string | null }> {
  const r = await soapCall(service, 'GetExternalIPAddress', [], ctx.timeoutMs)
  if (!r.ok) return { ip: null, error: `UPnP error ${r.errorCode} ${r.errorDescription}` }
  const ip = r.values.NewExternalIPAddress ?? ''
  return ip === '' ? { ip: null, error: 'GetExternalIPAddress returned no address' } : { ip, error: null }
}

/** Ask one protocol for the external address and, when `map` is given, a mapping. Bounded; never throws. */
export async function tryProtocol (protocol: PortMapProtocol, ctx: GatewayContext, map?: MapRequest): Promise<ProtocolOutcome> {
  const t0 = performance.now()
  const out = (o: Omit<ProtocolOutcome, 'protocol' | 'ms'>): ProtocolOutcome => ({ protocol, ...o, ms: Math.round(performance.now() - t0) })
  switch (protocol) {
    case 'pcp': {
      // §11.6: a MAP is how PCP tells the external address (a lifetime-0 request would delete instead). Without a
      // mapping wanted, ask for a short one on a random high port and delete it at once.
      const req: MapRequest = map ?? { transport: 'udp', internalPort: 49152 + Math.floor(Math.random() * 16000), lifetimeS: 30 }
      const { response: r, nonce } = await pcpMap(ctx, req)
      if (r === undefined) return out({ speaks: false, externalIp: null, mapping: null, error: 'no answer', detail: null })
      if (r.version !== 2) return out({ speaks: false, externalIp: null, mapping: null, error: `answered with version ${r.version} (${r.version === 0 ? 'NAT-PMP only' : 'old PCP'})`, detail: null })
      if (r.result !== 0 || r.map === undefined) return out({ speaks: true, externalIp: null, mapping: null, error: pcpResultName(r.result), detail: null })
      const externalIp = r.map.externalIp
      if (map === undefined) {
        await pcpMap(ctx, { ...req, nonce, lifetimeS: 0 })
        return out({ speaks: true, externalIp, mapping: null, error: null, detail: null })
      }
      return out({ speaks: true, externalIp, error: null, detail: null, mapping: { protocol, transport: req.transport, internalIp: ctx.localIp, internalPort: req.internalPort, externalPort: r.map.externalPort, externalIp, lifetimeS: r.lifetimeS, epoch: r.epoch, nonce } })
    }
    case 'nat-pmp': {
      const e = await natPmpExternal(ctx)
      if (e === undefined || e.kind !== 'external') return out({ speaks: false, externalIp: null, mapping: null, error: 'no answer', detail: null })
      const externalIp = e.result === 0 ? e.externalIp : null
      const extError = e.result === 0 ? null : natPmpResultName(e.result)
      if (map === undefined) return out({ speaks: true, externalIp, mapping: null, error: extError, detail: null })
      const m = await natPmpMap(ctx, map)
      if (m === undefined || m.kind !== 'map') return out({ speaks: true, externalIp, mapping: null, error: 'no answer to the mapping request', detail: null })
      if (m.result !== 0) return out({ speaks: true, externalIp, mapping: null, error: natPmpResultName(m.result), detail: null })
      return out({ speaks: true, externalIp, error: extError, detail: null, mapping: { protocol, transport: map.transport, internalIp: ctx.localIp, internalPort: map.internalPort, externalPort: m.externalPort, externalIp, lifetimeS: m.lifetimeS, epoch: m.epoch } })
    }
    case 'upnp': {
      const { service, error } = await upnpService(ctx)
      if (service === undefined) return out({ speaks: false, externalIp: null, mapping: null, error, detail: null })
      const detail = service.serviceType.replace('urn:schemas-upnp-org:service:', '')
      const ext = await upnpExternalIp(ctx, service)
      if (map === undefined) return out({ speaks: true, externalIp: ext.ip, mapping: null, error: ext.error, detail })
      const m = await upnpMap(ctx, service, map)
      if (m.externalPort === null) return out({ speaks: true, externalIp: ext.ip, mapping: null, error: m.error, detail })
      return out({ speaks: true, externalIp: ext.ip, error: ext.error, detail, mapping: { protocol, transport: map.transport, internalIp: ctx.localIp, internalPort: map.internalPort, externalPort: m.externalPort, externalIp: ext.ip, lifetimeS: map.lifetimeS, epoch: null, service } })
    }
  }
}

/** Remove a mapping the way it was made (PCP/NAT-PMP lifetime 0, UPnP DeletePortMapping). Bounded; never throws. */
export async function removeMapping (ctx: GatewayContext, m: GrantedMapping): Promise<boolean> {
  try {
    switch (m.protocol) {
      case 'pcp': {
        const { response } = await pcpMap(ctx, { transport: m.transport, internalPort: m.internalPort, externalPort: m.externalPort, lifetimeS: 0, nonce: m.nonce })
        return response?.result === 0
      }
      case 'nat-pmp': {
        const r = await natPmpMap(ctx, { transport: m.transport, internalPort: m.internalPort, lifetimeS: 0 })
        return r?.result === 0
      }
      case 'upnp':
        return m.service !== undefined && await upnpUnmap(ctx, m.service, m.transport, m.externalPort)
    }
  } catch (err) {
    log('removing %s mapping %d failed: %s', m.protocol, m.externalPort, (err as Error).message)
    return false
  }
}

