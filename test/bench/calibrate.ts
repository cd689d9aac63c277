/**
 * @module test/bench/calibrate
 * The machine's phase, measured on the server's core at the start and the end
 * of a run: `calibrate.js` prints {"cpuMs", "memGBps"}.
 *
 * This VM's speed drifts by up to 2x over minutes to hours (in-process
 * onnxruntime at 45-51 against ~95 items/s between two full runs of the same
 * code). The ratios in the tables pair their sides against that drift; these
 * two numbers say which phase a run fell in, so runs can be compared:
 * - cpuMs: a fixed integer loop (xorshift32, 2^24 steps), median of 5, ms;
 * - memGBps: reading a 64 MiB Float64Array (past the last-level cache),
 *   median of 5 passes, GB/s.
 */

import { median } from './lib.js';

const CPU_STEPS = 1 << 24;
const MEM_BYTES = 64 << 20;
const PASSES = 5;

export interface Calibration {
  cpuMs: number;
  memGBps: number;
}

function cpuLoop(): number {
  let x = 2463534242;
  for (let i = 0; i < CPU_STEPS; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
  }
  return x;
}

function memPass(a: Float64Array): number {
  let sum = 0;
  for (let i = 0; i < a.length; i += 8) sum += a[i]!; // one read per 64-byte line
  return sum;
}

export function calibrate(): Calibration {
  let sink = cpuLoop(); // tier up before timing
  const cpu: number[] = [];
  for (let k = 0; k < PASSES; k++) {
    const t0 = performance.now();
    sink ^= cpuLoop();
    cpu.push(performance.now() - t0);
  }
  const a = new Float64Array(MEM_BYTES / 8).fill(1);
  sink ^= memPass(a);
  const mem: number[] = [];
  for (let k = 0; k < PASSES; k++) {
    const t0 = performance.now();
    sink ^= memPass(a);
    mem.push(MEM_BYTES / 1e9 / ((performance.now() - t0) / 1000));
  }
  if (sink === 0.5) process.stderr.write(''); // keeps the loops' results live
  return { cpuMs: median(cpu), memGBps: median(mem) };
}

if (process.argv[1]?.endsWith('calibrate.js')) process.stdout.write(`${JSON.stringify(calibrate())}\n`);
