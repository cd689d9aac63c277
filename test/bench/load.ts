/**
 * @module test/bench/load
 * Child process for one bounded load run: reads a spec file written by
 * `loadInChild`, runs autocannon, prints the result as one JSON line. Run in
 * its own process so the load generator can be pinned to its own core.
 */
import { loadInProcess, readLoadSpec } from './lib.js';

const file = process.argv[2];
if (!file) {
  process.stderr.write('usage: load.js <spec.json>\n');
  process.exit(2);
}
const result = await loadInProcess(await readLoadSpec(file));
process.stdout.write(`${JSON.stringify(result)}\n`);
