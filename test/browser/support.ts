import { chmodSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { chromium, type BrowserContext } from 'playwright-core'
import { TurnServer } from '../../src/relay/turn-server.js'
import { requireOrSkip } from '../support/env.js'
import { relayPortBase } from '../support/net.js'
import { freePort } from '../integration/relay/support.js'

/** Debian's chromium package. */
export const CHROMIUM = '/usr/bin/chromium'

const ARGS = ['--no-sandbox', '--headless', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
  '--disable-component-update', '--disable-sync']

/** The credential the loopback relay of these tests accepts. */
export const WEB_USER = { username: 'web', credential: 'webpass' }

/** Skip (fail under CI) when Debian's Chromium is not installed. */
export function requireChromium (ctx: Mocha.Context): void {
  requireOrSkip(ctx, existsSync(CHROMIUM), `${CHROMIUM} not installed (Debian package chromium)`)
}

/** A headless Chromium with a throw-away profile; `netns` runs it inside that network namespace (via a wrapper). */
export class HeadlessChromium {
  private constructor (readonly context: BrowserContext, private readonly dir: string) {}

  static async launch (prefix: string, options: { netns?: string } = {}): Promise<HeadlessChromium> {
    const dir = mkdtempSync(join(tmpdir(), prefix))
    try {
      let executablePath = CHROMIUM
      if (options.netns !== undefined) {
        executablePath = join(dir, 'chromium-in-netns')
        writeFileSync(executablePath, `#!/bin/sh\nexec ip netns exec ${options.netns} ${CHROMIUM} "$@"\n`)
        chmodSync(executablePath, 0o755)
      }
      const context = await chromium.launchPersistentContext(join(dir, 'profile'), { executablePath, headless: true, args: ARGS, timeout: 30_000 })
      return new HeadlessChromium(context, dir)
    } catch (err) {
      rmSync(dir, { recursive: true, force: true })
      throw err
    }
  }

  async close (): Promise<void> {
    try {
      await this.context.close()
    } finally {
      rmSync(this.dir, { recursive: true, force: true })
    }
  }
}

/** natkit's TURN relay on 127.0.0.1 with the `web` user, relaying only to loopback peers. */
export async function startLoopbackRelay (): Promise<TurnServer> {
  const port = await freePort()
  const base = relayPortBase()
  return await TurnServer.start({
    realm: 'natkit.test', users: { [WEB_USER.username]: WEB_USER.credential }, listen: [{ address: '127.0.0.1', port }],
    allowPeer: ['127.0.0.0/8'], portRange: [base, base + 199]
  })
}

/** A data-channel answer around natkit's ICE lines. DTLS is the app's business: the fingerprint is a placeholder. */
export function answerSdp (iceLines: string[]): string {
  const fingerprint = Array.from({ length: 32 }, (_, i) => (i * 7 + 1).toString(16).padStart(2, '0').toUpperCase()).join(':')
  return ['v=0', 'o=- 4215775240449105457 2 IN IP4 127.0.0.1', 's=-', 't=0 0', 'a=group:BUNDLE 0', 'a=msid-semantic: WMS',
    'm=application 9 UDP/DTLS/SCTP webrtc-datachannel', 'c=IN IP4 0.0.0.0', 'a=mid:0', ...iceLines,
    `a=fingerprint:sha-256 ${fingerprint}`, 'a=setup:passive', 'a=sctp-port:5000', 'a=max-message-size:262144'].join('\r\n') + '\r\n'
}

/**
 * Page script: an offering RTCPeerConnection (kept as `window.pc`) with a data channel; resolves to its SDP once
 * gathering ends (at most 10 s). `config` is the RTCConfiguration as JSON.
 */
export function offerScript (config: object): string {
  return `(async (config) => {
    const pc = new RTCPeerConnection(config)
    window.pc = pc
    pc.createDataChannel('natkit')
    const gathered = new Promise((resolve) => { pc.onicecandidate = (e) => { if (e.candidate === null) resolve() } })
    await pc.setLocalDescription(await pc.createOffer())
    await Promise.race([gathered, new Promise((resolve) => setTimeout(resolve, 10000))])
    return pc.localDescription.sdp
  })(${JSON.stringify(config)})`
}

/** Page script: applies the answer to `window.pc`, waits (15 s at most) for ICE, resolves to iceConnectionState. */
export function answerAndWaitScript (sdp: string): string {
  return `(async (sdp) => {
    const pc = window.pc
    await pc.setRemoteDescription({ type: 'answer', sdp })
    const deadline = Date.now() + 15000
    while (!['connected', 'completed'].includes(pc.iceConnectionState) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20))
    return pc.iceConnectionState
  })(${JSON.stringify(sdp)})`
}
