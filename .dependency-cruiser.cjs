/**
 * natkit's layering (docs/architecture.md), checked by dependency-cruiser in `npm test` (test/arch/layers.test.ts):
 *
 *   util, errors, log  <-  net  <-  stun  <-  {discovery, relay, rendezvous, portmap}  <-  traversal  <-  cli
 *   sim and lab sit beside cli: they may use any library part; no library part uses them.
 *
 * Type-only imports count too: a type from a higher layer is still a dependency on it.
 */
const LIBRARY = '^src/(net|stun|discovery|relay|rendezvous|portmap|traversal|util)/'
module.exports = {
  forbidden: [
    { name: 'no-circular', severity: 'error', comment: 'Modules must not import each other at run time, directly or through others (type-only cycles inside a part are allowed: they vanish at compile time).', from: { path: '^src/' }, to: { circular: true, viaOnly: { dependencyTypesNot: ['type-only'] } } },
    { name: 'base-imports-nothing', severity: 'error', comment: 'errors.ts, log.ts and util/ are the base: they import no other part of natkit.', from: { path: '^src/(errors|log)\\.ts$|^src/util/' }, to: { path: '^src/', pathNot: '^src/(errors|log)\\.ts$|^src/util/' } },
    { name: 'net-is-the-bottom', severity: 'error', comment: 'net/ (socket seams) uses only the base.', from: { path: '^src/net/' }, to: { path: '^src/(stun|discovery|relay|rendezvous|portmap|traversal|sim|lab|cli)' } },
    { name: 'stun-uses-only-net', severity: 'error', comment: 'stun/ never imports anything above it.', from: { path: '^src/stun/' }, to: { path: '^src/(discovery|relay|rendezvous|portmap|traversal|sim|lab|cli)' } },
    { name: 'discovery-not-relay', severity: 'error', comment: 'discovery/ is beside relay and rendezvous, below traversal.', from: { path: '^src/discovery/' }, to: { path: '^src/(relay|rendezvous|traversal|sim|lab|cli)' } },
    { name: 'relay-not-traversal', severity: 'error', comment: 'relay/ is beside discovery and rendezvous, below traversal.', from: { path: '^src/relay/' }, to: { path: '^src/(discovery|rendezvous|traversal|sim|lab|cli)' } },
    { name: 'rendezvous-not-relay', severity: 'error', comment: 'rendezvous/ is beside discovery and relay, below traversal.', from: { path: '^src/rendezvous/' }, to: { path: '^src/(discovery|relay|traversal|sim|lab|cli)' } },
    { name: 'portmap-not-above', severity: 'error', from: { path: '^src/portmap/' }, to: { path: '^src/(discovery|relay|rendezvous|traversal|sim|lab|cli)' } },
    { name: 'traversal-not-tools', severity: 'error', comment: 'traversal/ uses the protocol parts, never the simulator, the lab or the CLI.', from: { path: '^src/traversal/' }, to: { path: '^src/(sim|lab|cli)' } },
    { name: 'library-not-tools', severity: 'error', comment: 'No library part uses the simulator, the lab or the CLI.', from: { path: LIBRARY }, to: { path: '^src/(sim|lab|cli)' } },
    { name: 'sim-not-lab-or-cli', severity: 'error', from: { path: '^src/sim/' }, to: { path: '^src/(lab|cli)' } },
    { name: 'nothing-imports-cli', severity: 'error', comment: 'The CLI is the top: only the CLI imports it.', from: { path: '^src/', pathNot: '^src/cli(\\.ts$|/)' }, to: { path: '^src/cli(\\.ts$|/)' } },
    { name: 'src-not-tests', severity: 'error', comment: 'The package never imports tests or benchmarks.', from: { path: '^src/' }, to: { path: '^(test|bench)/' } },
    { name: 'no-dev-deps-in-src', severity: 'error', comment: 'src/ ships: it may not use devDependencies.', from: { path: '^src/' }, to: { dependencyTypes: ['npm-dev'] } }
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' }
  }
}
