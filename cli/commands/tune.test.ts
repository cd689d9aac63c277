/**
 * `kinfer tune`'s arithmetic: when a measurement is saturated and where its knee is, and the
 * zero inputs it builds from model metadata (the command itself runs against a server in
 * test/integration/cli.test.ts).
 */
import { describe, expect, it } from 'vitest';
import type { KinferClient } from '../../client/index.js';
import { kneeOf, saturated, zeroInputs, type TuneStep } from './tune.js';

const step = (concurrency: number, throughput: number, errors = 0): TuneStep => ({ concurrency, requests: Math.round(throughput), errors, throughput, p50Ms: 1, p99Ms: 2 });

describe('tune', () => {
  it('finds the knee: the smallest concurrency at 90% of the best throughput', () => {
    expect(kneeOf([step(1, 100), step(2, 180), step(4, 250), step(8, 260), step(16, 262)])).toBe(4);
    expect(kneeOf([step(1, 100), step(2, 101), step(4, 99)])).toBe(1);
    // A step with errors (queue full) does not count as throughput.
    expect(kneeOf([step(1, 100), step(2, 190), step(4, 400, 3)])).toBe(2);
  });

  it('calls a measurement saturated once two steps add under 5% over the best before them', () => {
    expect(saturated([step(1, 100), step(2, 180)])).toBe(false);
    expect(saturated([step(1, 100), step(2, 180), step(4, 250)])).toBe(false);
    expect(saturated([step(1, 100), step(2, 180), step(4, 250), step(8, 255), step(16, 260)])).toBe(true);
    expect(saturated([step(1, 100), step(2, 102), step(4, 104)])).toBe(true);
    expect(saturated([step(1, 100), step(2, 102), step(4, 130)])).toBe(false);
  });

  it('builds zero inputs from the metadata, batch dim 1, and asks for -i where a dim is variable', async () => {
    const client = (inputs: { name: string; datatype: string; shape: number[] }[]) => ({ modelMetadata: async () => ({ name: 'm', inputs }) }) as unknown as KinferClient;
    const made = await zeroInputs(client([{ name: 'x', datatype: 'FP32', shape: [-1, 4] }, { name: 's', datatype: 'BYTES', shape: [2] }]), 'm');
    expect(made).toEqual([
      { name: 'x', datatype: 'FP32', shape: [1, 4], data: new Float32Array(4) },
      { name: 's', datatype: 'BYTES', shape: [2], data: ['', ''] },
    ]);
    await expect(zeroInputs(client([{ name: 'img', datatype: 'FP32', shape: [-1, 3, -1, -1] }]), 'm')).rejects.toThrow("input 'img' has variable dims [-1,3,-1,-1]: give it with -i");
    await expect(zeroInputs(client([]), 'echo')).rejects.toThrow("model 'echo' declares no inputs (it takes any): give them with -i");
    await expect(zeroInputs(client([{ name: 'h', datatype: 'BF16', shape: [2] }]), 'm')).rejects.toThrow("input 'h' is BF16, which kinfer cannot make zeros of: give it with -i");
  });
});
