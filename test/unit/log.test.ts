import { expect } from 'chai'
import { createLogger, setLogSink, type LogRecord } from '../../src/log.js'

describe('log seam (setLogSink)', () => {
  afterEach(() => { setLogSink(undefined) })

  it('hands every level, formatted, to the sink, also for loggers made before it was set', () => {
    const log = createLogger('natcheck:test:seam')
    const got: LogRecord[] = []
    setLogSink((r) => { got.push(r) })
    expect(log.enabled).to.equal(true)
    log('hello %s %d', 'world', 42)
    log.error('bad %o', { a: 1 })
    log.trace('fine')
    expect(got).to.deep.equal([
      { level: 'info', namespace: 'natcheck:test:seam', message: 'hello world 42' },
      { level: 'error', namespace: 'natcheck:test:seam', message: 'bad { a: 1 }' },
      { level: 'trace', namespace: 'natcheck:test:seam', message: 'fine' }
    ])
  })

  it('survives a sink that throws, and stops using it when unset', () => {
    const log = createLogger('natcheck:test:seam')
    let calls = 0
    setLogSink(() => { calls++; throw new Error('sink bug') })
    expect(() => { log('x') }).to.not.throw()
    setLogSink(undefined)
    log('y')
    expect(calls).to.equal(1)
  })
})
