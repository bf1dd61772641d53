import { expect } from 'chai'
import { createRelayLog, parseLogFormat } from '../../../src/cli/relay-log.js'

describe('relay log (natcheck relay --log-format)', () => {
  const capture = (format: 'text' | 'json'): { lines: string[], log: ReturnType<typeof createRelayLog> } => {
    const lines: string[] = []
    return { lines, log: createRelayLog(format, (l) => { lines.push(l) }, () => Date.UTC(2026, 0, 2, 3, 4, 5, 678)) }
  }

  it('writes text lines prefixed with the command name', () => {
    const { lines, log } = capture('text')
    log('info', 'allocation', 'allocation 1 user=u', { id: 1 })
    expect(lines).to.deep.equal(['natcheck relay: allocation 1 user=u\n'])
  })

  it('writes one JSON object per line: ts, level, event, msg, then the fields, skipping undefined ones', () => {
    const { lines, log } = capture('json')
    log('warn', 'quota-refused', 'allocation refused (486)', { quota: 'user', limit: 2, user: 'u', relayed: ['a', 'b'], gone: undefined })
    expect(lines).to.have.length(1)
    expect(lines[0].endsWith('\n')).to.equal(true)
    expect(lines[0].slice(0, -1)).to.not.include('\n')
    expect(JSON.parse(lines[0])).to.deep.equal({
      ts: '2026-01-02T03:04:05.678Z', level: 'warn', event: 'quota-refused', msg: 'allocation refused (486)', quota: 'user', limit: 2, user: 'u', relayed: ['a', 'b']
    })
  })

  it('never lets an event field overwrite the stable ones', () => {
    const { lines, log } = capture('json')
    log('info', 'x', 'text', { ts: 'forged', level: 'error', event: 'y', msg: 'm' })
    expect(JSON.parse(lines[0])).to.include({ ts: '2026-01-02T03:04:05.678Z', level: 'info', event: 'x', msg: 'text' })
  })

  it('escapes newlines in values so one event stays one line', () => {
    const { lines, log } = capture('json')
    log('error', 'error', 'line one\nline two', { error: 'a\nb' })
    expect(lines[0].slice(0, -1)).to.not.include('\n')
    expect(JSON.parse(lines[0]).error).to.equal('a\nb')
  })

  const formats: Array<{ value: string | undefined, ok: 'text' | 'json' | undefined }> = [
    { value: undefined, ok: 'text' }, { value: 'text', ok: 'text' }, { value: 'json', ok: 'json' }, { value: 'JSON', ok: undefined }, { value: 'yaml', ok: undefined }
  ]
  for (const f of formats) {
    it(`parses --log-format ${String(f.value)}`, () => {
      if (f.ok === undefined) expect(() => parseLogFormat(f.value)).to.throw(/--log-format .*text or json/)
      else expect(parseLogFormat(f.value)).to.equal(f.ok)
    })
  }
})
