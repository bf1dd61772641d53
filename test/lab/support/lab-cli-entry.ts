/** A stand-in for src/cli.ts that wires only `lab`, so the lab CLI can be tested before it is wired in. */
import { Command } from 'commander'
import { registerLabCommands } from '../../../src/cli/lab.js'

const program = new Command('natcheck')
  .enablePositionalOptions()
  .exitOverride((err) => { process.exit(err.exitCode === 0 ? 0 : 1) })
registerLabCommands(program)
await program.parseAsync(process.argv)
