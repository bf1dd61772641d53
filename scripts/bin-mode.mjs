// tsc writes dist/src/cli.js without the execute bit; `npx natcheck` in a clone of this repository runs the package's
// own bin directly (no node_modules/.bin link is made for it), so the README's first command needs the bit set.
import { chmodSync } from 'node:fs'
chmodSync(new URL('../dist/src/cli.js', import.meta.url), 0o755)
