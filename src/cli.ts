#!/usr/bin/env node
import { Command } from 'commander'
import { createRequire } from 'node:module'
import { registerConnectCommand } from './cli/connect.js'
import { registerDemo } from './cli/demo.js'
import { registerDiscover, registerPair } from './cli/discover.js'
import { registerLabCommands } from './cli/lab.js'
import { registerRelayCommand } from './cli/relay.js'
import { registerServerCommand } from './cli/server.js'
import { registerStunCommand } from './cli/stun.js'
import { registerTurnCommand } from './cli/turn.js'

const { version } = createRequire(import.meta.url)('../../package.json') as { version: string }

const program = new Command('natcheck')
  .description('natkit: find out what your NAT does, run STUN/TURN servers, connect peers through NATs')
  .version(version)
  .option('--no-color', 'no colour in output')
  .showHelpAfterError()
  // The root command's own options (--json, --server …) belong to discovery; subcommands parse theirs.
  .enablePositionalOptions()
  .exitOverride((err) => {
    // Usage errors exit 1 (the one exit-code map); help and version exit 0.
    process.exit(err.exitCode === 0 ? 0 : 1)
  })

registerDiscover(program)
registerStunCommand(program)
registerServerCommand(program)
registerRelayCommand(program)
registerTurnCommand(program)
registerLabCommands(program)
registerPair(program)
registerConnectCommand(program)
registerDemo(program)

await program.parseAsync(process.argv)
