/**
 * @module batching/ownership.test
 * Which buffers a backend may take: only whole buffers the batcher merged, once.
 */
import { describe, expect, it } from 'vitest';
import { mergeInputs } from './merge.js';
import { handOver, takeOver } from './ownership.js';

describe('buffer hand-over', () => {
  it('lets a backend take a merged buffer once, and never a caller\'s buffer or a partial view', () => {
    const a = new Float32Array([1, 2]);
    const b = new Float32Array([3, 4]);
    const [m] = mergeInputs([[{ name: 'x', datatype: 'FP32', shape: [1, 2], data: a }], [{ name: 'x', datatype: 'FP32', shape: [1, 2], data: b }]], [1, 1]);
    const data = m!.data as Float32Array;
    expect(Array.from(data)).toEqual([1, 2, 3, 4]);
    expect(takeOver(data.subarray(1))).toBe(false);
    expect(takeOver(data)).toBe(true);
    expect(takeOver(data)).toBe(false); // taken already
    expect(takeOver(a)).toBe(false);
    const marked = new Float32Array(4);
    handOver(marked.buffer);
    expect(takeOver(marked)).toBe(true);
  });
});
