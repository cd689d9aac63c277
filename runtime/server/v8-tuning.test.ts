/**
 * The serving tier-up budget. Its effect is checked in fresh processes (V8
 * flags are per process) on the built module (dist/, from test/global-setup.ts),
 * with natives syntax to read a function's optimisation status, and
 * synchronous optimisation so that a count of calls is deterministic.
 */
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { packageRoot } from '../config.js';
import { tempDir } from '../../test/helpers/server.js';
import { INTERRUPT_BUDGET, tuneV8ForServing } from './v8-tuning.js';

const BUILT = join(packageRoot(), 'dist', 'runtime', 'server', 'v8-tuning.js');

const SCRIPT = `
const { tuneV8ForServing } = await import(process.argv[2]);
const set = process.argv[3] === 'tune' ? tuneV8ForServing(process.execArgv, {}) : [];
function f(a) { let s = 0; for (let i = 0; i < a.length; i++) s += a[i] * i; return s; }
const arr = [1, 2, 3, 4];
let calls = 0, sink = 0;
while (calls < 1000000 && !(%GetOptimizationStatus(f) & 16)) { sink += f(arr); calls++; }
console.log(JSON.stringify({ set, calls, optimized: (%GetOptimizationStatus(f) & 16) !== 0, sink: sink > 0 }));
`;

/** Calls of a small function until TurboFan has optimised it, in a fresh node. */
async function callsToOptimise(tune: boolean, extraFlags: string[] = []): Promise<{ set: string[]; calls: number; optimized: boolean }> {
  const tmp = await tempDir('kinfer-v8-');
  const file = join(tmp.dir, 'tier.mjs');
  writeFileSync(file, SCRIPT);
  const out = execFileSync(process.execPath, ['--allow-natives-syntax', '--no-concurrent-recompilation', ...extraFlags, file, BUILT, tune ? 'tune' : 'none'], {
    encoding: 'utf8',
    timeout: 20_000,
  });
  await tmp.cleanup();
  return JSON.parse(out) as never;
}

describe('tuneV8ForServing', () => {
  it('makes TurboFan optimise a hot function after fewer calls', async () => {
    const base = await callsToOptimise(false);
    const tuned = await callsToOptimise(true);
    expect(base.optimized && tuned.optimized).toBe(true);
    expect(tuned.set).toEqual([`--interrupt-budget=${INTERRUPT_BUDGET}`]);
    // Node 20: 426 calls at the default budget, 138 at 8192 (the IC-update wait keeps it from 8x).
    expect(tuned.calls).toBeLessThan(base.calls * 0.6);
  });

  it('leaves a budget given on the command line alone', async () => {
    const given = await callsToOptimise(true, ['--interrupt-budget=67584']);
    const base = await callsToOptimise(false);
    expect(given.set).toEqual([]);
    expect(given.calls).toBe(base.calls);
  });

  it('sets nothing when NODE_OPTIONS names the flag or in the build\'s code-cache training run', () => {
    expect(tuneV8ForServing([], { NODE_OPTIONS: '--max-old-space-size=512 --interrupt-budget=20000' })).toEqual([]);
    expect(tuneV8ForServing([], { KINFER_WRITE_CODE_CACHE: '1' })).toEqual([]);
    expect(tuneV8ForServing(['--interrupt-budget=1000'], {})).toEqual([]);
  });
});
