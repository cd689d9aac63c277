/**
 * @module test/bench/pull-child
 * Child process for the storage scenario: `pull-child.js <uri> <dest>` runs
 * kinfer's `pull()` once (no cache, no retries, no progress logs) and prints
 * {"ms", "bytes", "maxRssMB"}; the peak RSS is this whole process's. The
 * pull's env (S3 endpoint and keys) is the JSON object in `KINFER_PULL_ENV`,
 * empty without it.
 */
import { readFileSync } from 'node:fs';
import { pino } from 'pino';
import { pull } from '../../runtime/storage/pull.js';

const [uri, dest] = process.argv.slice(2);
if (!uri || !dest) {
  process.stderr.write('usage: pull-child.js <uri> <dest>\n');
  process.exit(2);
}
const env = JSON.parse(process.env.KINFER_PULL_ENV ?? '{}') as NodeJS.ProcessEnv;
const t0 = performance.now();
const r = await pull(uri, { dest, env, retries: 0, progressIntervalMs: 0, logger: pino({ level: 'silent' }) });
const ms = performance.now() - t0;
process.stdout.write(`${JSON.stringify({ ms, bytes: r.bytes, maxRssMB: peakRssMB() })}\n`);

/**
 * This process's peak RSS: VmHWM, which exec resets. getrusage's maxRSS is not:
 * Linux carries over the RSS of the forked parent copy, so a pull spawned by a
 * 250 MB parent reported 252 MB before it had read a byte (VmHWM: 105 MB).
 */
function peakRssMB(): number {
  try {
    const kb = /^VmHWM:\s+(\d+) kB$/m.exec(readFileSync('/proc/self/status', 'utf8'))?.[1];
    if (kb) return Number(kb) / 1024;
  } catch {
    /* not Linux */
  }
  return process.resourceUsage().maxRSS / 1024;
}
