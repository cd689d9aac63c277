import { describe, expect, it } from 'vitest';
import { classificationCount, classify, fixed6 } from './classification.js';
import { InvalidArgument } from './errors.js';
import type { Tensor } from './tensor.js';

const text = (t: Tensor) => (t.data as Uint8Array[]).map((b) => new TextDecoder().decode(b));

describe('classification (Triton extension)', () => {
  it("the spec's example: top 2 of a UINT32 [1, 5, 10, 4] is 10:2 then 5:1", () => {
    const t: Tensor = { name: 'y', datatype: 'UINT32', shape: [4], data: Uint32Array.of(1, 5, 10, 4) };
    const c = classify(t, 2, false);
    expect(c).toMatchObject({ name: 'y', datatype: 'BYTES', shape: [2] });
    expect(text(c)).toEqual(['10:2', '5:1']);
  });

  it('ranks each batch row on its own, prints floats with 6 decimals, adds labels, keeps ties in index order', () => {
    const t: Tensor = { name: 'p', datatype: 'FP32', shape: [2, 3], data: Float32Array.of(0.1, 0.7, 0.2, 0.5, 0.5, NaN) };
    const c = classify(t, 2, true, ['cat', 'dog']);
    expect(c.shape).toEqual([2, 2]);
    expect(text(c)).toEqual(['0.700000:1:dog', '0.200000:2', '0.500000:0:cat', '0.500000:1:dog']);
  });

  it('clamps the count to the elements of a row, and compares INT64 exactly', () => {
    const big = 2n ** 60n;
    const t: Tensor = { name: 'q', datatype: 'INT64', shape: [1, 2], data: BigInt64Array.of(big, big + 1n) };
    const c = classify(t, 5, true);
    expect(c.shape).toEqual([1, 2]);
    expect(text(c)).toEqual([`${big + 1n}:1`, `${big}:0`]);
  });

  it("prints floats as printf('%f') does (Triton's std::to_string), where toFixed differs", () => {
    expect([0.0078125, 0.0234375, -0.0078125, 2.5e-7, 1.5].map(fixed6)).toEqual(['0.007812', '0.023438', '-0.007812', '0.000000', '1.500000']);
    expect([Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, -0, -1e-9].map(fixed6)).toEqual(['nan', 'inf', '-inf', '-0.000000', '-0.000000']);
    expect(fixed6(1e21)).toBe('1000000000000000000000.000000');
    expect(fixed6(0.1)).toBe('0.100000');
  });

  it('refuses datatypes Triton does not rank, and bad counts; 0 means no classification', () => {
    const half: Tensor = { name: 'h', datatype: 'FP16', shape: [1], data: Uint16Array.of(0) };
    expect(() => classify(half, 1, false)).toThrow(/output 'h': class result not available for datatype FP16/);
    expect(classificationCount('y', { classification: 0 })).toBe(0);
    expect(classificationCount('y', undefined)).toBe(0);
    expect(classificationCount('y', { classification: 3 })).toBe(3);
    for (const bad of [-1, 1.5, '2', true]) {
      expect(() => classificationCount('y', { classification: bad })).toThrow(InvalidArgument);
    }
  });
});
