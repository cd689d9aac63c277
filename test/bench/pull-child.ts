/**
 * @module test/bench/pull-child
 * Child process for the storage scenario: `pull-child.js <uri> <dest>` runs
 * kinfer's `pull()` once (no cache, no retries, no progress logs) and prints
 * {"ms", "bytes", "maxRssMB"}; the peak RSS is this whole process's.
 */
import { pino } from 'pino';
import { pull } from '../../runtime/storage/pull.js';

const [uri, dest] = process.argv.slice(2);
if (!uri || !dest) {
  process.stderr.write('usage: pull-child.js <uri> <dest>\n');
  process.exit(2);
}
const t0 = performance.now();
const r = await pull(uri, { dest, env: {}, retries: 0, progressIntervalMs: 0, logger: pino({ level: 'silent' }) });
const ms = performance.now() - t0;
process.stdout.write(`${JSON.stringify({ ms, bytes: r.bytes, maxRssMB: process.resourceUsage().maxRSS / 1024 })}\n`);
