/**
 * @module test/bench/instructions.test
 * Instruction counting under callgrind: reading callgrind's output, and
 * (where valgrind is installed; skipped with a message otherwise) live counts
 * of the bare floor server, which must grow with the work a request asks for.
 * Never the speed: that is `npm run bench`'s job.
 */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { callgrindTotal, callgrindVersion, countInstructions } from './instructions.js';
import { DIST_BENCH, floats, v2JsonBody } from './lib.js';

describe('callgrind output', () => {
  it('reads the instruction total from the summary line, or from totals', () => {
    const dump = 'version: 1\ncreator: callgrind-3.19.0\ncmd: node x.js\npart: 1\n\nevents: Ir\n\nsummary: 2354445204\n\nfn=(1)\n0 3\ntotals: 2354445204\n';
    expect(callgrindTotal(dump)).toBe(2354445204);
    expect(callgrindTotal('events: Ir\ntotals: 42\n')).toBe(42);
    expect(callgrindTotal('events: Ir\n')).toBeUndefined();
  });
});

const version = callgrindVersion();
if (!version) console.warn('instructions.test: valgrind is not installed (apt-get install valgrind); skipping the live callgrind counts');

describe.skipIf(!version)('callgrind counts of a live server', () => {
  it('counts more instructions per request for a request with ten times the data', async () => {
    const count = (n: number) =>
      countInstructions({
        args: [join(DIST_BENCH, 'bare-server.js'), '{PORT}'],
        path: '/infer',
        body: v2JsonBody('input0', [1, n], floats(n)),
        headers: { 'content-type': 'application/json' },
        connections: 4,
        warmUpRequests: 150,
        requests: 100,
        rounds: 2,
      });
    const small = await count(100);
    const large = await count(1000);
    for (const c of [small, large]) {
      expect(c.requests).toBe(100);
      expect(c.perRequest).toHaveLength(2);
      // A Node request through node:http is hundreds of thousands of instructions; a count of the idle process would be far less.
      for (const n of c.perRequest) expect(n).toBeGreaterThan(100_000);
    }
    // Parse, convert and stringify ten times the floats: the count follows the work, whatever the machine's noise.
    expect(large.perRequest[1]! / small.perRequest[1]!).toBeGreaterThan(2);
  }, 240_000);
});
