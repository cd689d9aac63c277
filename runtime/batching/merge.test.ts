import { describe, expect, it } from 'vitest';
import { Internal, InvalidArgument } from '../core/errors.js';
import type { Tensor } from '../core/tensor.js';
import { mergeInputs, rowsOf, signatureOf, splitOutputs } from './merge.js';

const enc = (s: string) => new TextEncoder().encode(s);
const dec = (b: Uint8Array) => new TextDecoder().decode(b);

describe('signatureOf', () => {
  const a: Tensor = { name: 'a', datatype: 'FP32', shape: [2, 3], data: new Float32Array(6) };
  const b: Tensor = { name: 'b', datatype: 'INT64', shape: [2], data: new BigInt64Array(2) };

  it('ignores dim 0 and input order', () => {
    const a1 = { ...a, shape: [1, 3], data: new Float32Array(3) };
    const b1 = { ...b, shape: [1], data: new BigInt64Array(1) };
    expect(signatureOf([a, b], [])).toBe(signatureOf([b1, a1], []));
  });

  it('differs on inner dims, datatype, names and requested outputs', () => {
    const base = signatureOf([a], []);
    expect(signatureOf([{ ...a, shape: [2, 4], data: new Float32Array(8) }], [])).not.toBe(base);
    expect(signatureOf([{ ...a, datatype: 'FP64', data: new Float64Array(6) }], [])).not.toBe(base);
    expect(signatureOf([{ ...a, name: 'z' }], [])).not.toBe(base);
    expect(signatureOf([a], ['y'])).not.toBe(base);
    expect(signatureOf([a], ['y', 'z'])).toBe(signatureOf([a], ['z', 'y']));
  });
});

describe('rowsOf', () => {
  it('returns the shared dim 0', () => {
    expect(rowsOf([{ name: 'a', datatype: 'FP32', shape: [3, 2], data: new Float32Array(6) }])).toBe(3);
  });

  it('refuses inputs that disagree on dim 0, naming both', () => {
    const err = (() => {
      try {
        rowsOf([
          { name: 'a', datatype: 'FP32', shape: [2, 2], data: new Float32Array(4) },
          { name: 'b', datatype: 'FP32', shape: [3], data: new Float32Array(3) },
        ]);
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(InvalidArgument);
    expect((err as Error).message).toMatch(/input 'b': dim 0 is 3 but input 'a' has 2/);
  });

  it('refuses scalars and data that does not fill the shape', () => {
    expect(() => rowsOf([{ name: 's', datatype: 'FP32', shape: [], data: new Float32Array(1) }])).toThrow(InvalidArgument);
    expect(() => rowsOf([{ name: 'a', datatype: 'FP32', shape: [2, 2], data: new Float32Array(3) }])).toThrow(
      /needs 4 elements, got 3/,
    );
  });
});

describe('mergeInputs / splitOutputs', () => {
  it('concatenates numeric inputs along dim 0 in request order, by name', () => {
    const r1: Tensor[] = [
      { name: 'x', datatype: 'INT64', shape: [1, 2], data: BigInt64Array.from([1n, 2n]) },
      { name: 'm', datatype: 'UINT8', shape: [1], data: Uint8Array.from([7]) },
    ];
    const r2: Tensor[] = [
      { name: 'm', datatype: 'UINT8', shape: [2], data: Uint8Array.from([8, 9]) },
      { name: 'x', datatype: 'INT64', shape: [2, 2], data: BigInt64Array.from([3n, 4n, 5n, 6n]) },
    ];
    const merged = mergeInputs([r1, r2], [1, 2]);
    expect(merged.map((t) => t.name)).toEqual(['x', 'm']);
    expect(merged[0]!.shape).toEqual([3, 2]);
    expect(Array.from(merged[0]!.data as BigInt64Array)).toEqual([1n, 2n, 3n, 4n, 5n, 6n]);
    expect(Array.from(merged[1]!.data as Uint8Array)).toEqual([7, 8, 9]);
    // A copy: callers keep their buffers.
    expect(merged[0]!.data).not.toBe(r1[0]!.data);
  });

  it('concatenates BYTES and splits them back', () => {
    const r1: Tensor[] = [{ name: 's', datatype: 'BYTES', shape: [1], data: [enc('a')] }];
    const r2: Tensor[] = [{ name: 's', datatype: 'BYTES', shape: [2], data: [enc('bb'), enc('ccc')] }];
    const merged = mergeInputs([r1, r2], [1, 2]);
    expect((merged[0]!.data as Uint8Array[]).map(dec)).toEqual(['a', 'bb', 'ccc']);
    const parts = splitOutputs(merged, [1, 2]);
    expect((parts[0]![0]!.data as Uint8Array[]).map(dec)).toEqual(['a']);
    expect((parts[1]![0]!.data as Uint8Array[]).map(dec)).toEqual(['bb', 'ccc']);
    expect(parts[1]![0]!.shape).toEqual([2]);
  });

  it('splits by row offsets with inner dims', () => {
    const out: Tensor = { name: 'y', datatype: 'FP32', shape: [3, 2, 2], data: Float32Array.from({ length: 12 }, (_, i) => i) };
    const parts = splitOutputs([out], [2, 1]);
    expect(parts[0]![0]!.shape).toEqual([2, 2, 2]);
    expect(Array.from(parts[0]![0]!.data as Float32Array)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    expect(Array.from(parts[1]![0]!.data as Float32Array)).toEqual([8, 9, 10, 11]);
  });

  it('fails with Internal naming an output whose dim 0 is not the batch size', () => {
    const ok: Tensor = { name: 'y', datatype: 'FP32', shape: [3], data: new Float32Array(3) };
    const bad: Tensor = { name: 'pooled', datatype: 'FP32', shape: [1, 4], data: new Float32Array(4) };
    expect(() => splitOutputs([ok, bad], [1, 2])).toThrow(Internal);
    expect(() => splitOutputs([ok, bad], [1, 2])).toThrow(/output 'pooled': dim 0 is 1, expected the batch size 3/);
    const scalar: Tensor = { name: 'loss', datatype: 'FP32', shape: [], data: new Float32Array(1) };
    expect(() => splitOutputs([scalar], [1, 2])).toThrow(/output 'loss'/);
  });
});
