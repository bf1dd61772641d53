'use strict'
// Mocha's spec reporter, plus the plain closing line that CI reads: `tests: N passed, N failed, N skipped`.
const Mocha = require('mocha')
const { EVENT_RUN_END, EVENT_TEST_PASS, EVENT_TEST_FAIL, EVENT_TEST_PENDING } = Mocha.Runner.constants

class NatkitReporter extends Mocha.reporters.Spec {
  constructor (runner, options) {
    super(runner, options)
    let passed = 0; let failed = 0; let skipped = 0
    runner.on(EVENT_TEST_PASS, () => { passed++ })
    runner.on(EVENT_TEST_FAIL, () => { failed++ })
    runner.on(EVENT_TEST_PENDING, () => { skipped++ })
    runner.once(EVENT_RUN_END, () => {
      // Registered after the spec reporter's own epilogue, so this is the last line printed.
      process.stdout.write(`tests: ${passed} passed, ${failed} failed, ${skipped} skipped\n`)
    })
  }
}
module.exports = NatkitReporter
