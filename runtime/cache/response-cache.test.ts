import { describe, expect, it } from 'vitest';
import type { Tensor } from '../core/tensor.js';
import { ResponseCache } from './response-cache.js';

const f32 = (name: string, values: number[], shape = [values.length]): Tensor => ({ name, datatype: 'FP32', shape, data: Float32Array.from(values) });

describe('ResponseCache', () => {
  it('keys on the scope, the inputs (names, datatypes, shapes, bytes) and the outputs asked for, not on their order', () => {
    const c = new ResponseCache(1 << 20);
    const a = f32('a', [1, 2]);
    const b: Tensor = { name: 'b', datatype: 'BYTES', shape: [1], data: [Uint8Array.from([1, 2])] };
    const base = c.key('s', [a, b], ['y', 'z']);
    expect(c.key('s', [b, a], ['z', 'y'])).toBe(base);
    const others = [
      c.key('t', [a, b], ['y', 'z']),
      c.key('s', [f32('a', [1, 3]), b], ['y', 'z']),
      c.key('s', [f32('a', [1, 2], [1, 2]), b], ['y', 'z']),
      c.key('s', [{ ...a, datatype: 'INT32', data: Int32Array.from([1, 2]) }, b], ['y', 'z']),
      c.key('s', [f32('A', [1, 2]), b], ['y', 'z']),
      c.key('s', [a, { ...b, data: [Uint8Array.from([1]), Uint8Array.from([2])], shape: [2] }], ['y', 'z']),
      c.key('s', [a, b], ['y']),
      c.key('s', [a, b], []),
    ];
    expect(new Set([base, ...others]).size).toBe(others.length + 1);
  });

  it('hands back a copy of what it stored, counts hits and misses, and forgets a scope', () => {
    const c = new ResponseCache(1 << 20);
    const batchBuffer = Float32Array.from([1, 2, 3, 4]);
    const out: Tensor = { name: 'y', datatype: 'FP32', shape: [2], data: batchBuffer.subarray(2) };
    expect(c.get('k')).toBeUndefined();
    expect(c.set('k', 's1', [out])).toBe(true);
    c.set('k2', 's2', [f32('y', [9])]);
    batchBuffer[2] = -1; // the batch's buffer changes after the insert
    const got = c.get('k')!;
    expect(Array.from(got[0]!.data as Float32Array)).toEqual([3, 4]);
    expect((got[0]!.data as Float32Array).buffer.byteLength).toBe(8); // not the whole batch buffer
    expect([c.hits, c.misses]).toEqual([1, 1]);
    // A BYTES element that is a Buffer view into a request body: the entry keeps only its bytes.
    const body = Buffer.from('....hello....');
    c.set('b', 's1', [{ name: 's', datatype: 'BYTES', shape: [1], data: [body.subarray(4, 9)] }]);
    body.fill(0);
    const kept = (c.get('b')![0]!.data as Uint8Array[])[0]!;
    expect(Buffer.from(kept).toString()).toBe('hello');
    expect(kept.buffer.byteLength).toBe(5);
    c.forget('s1');
    expect(c.get('k')).toBeUndefined();
    expect(c.get('k2')).toBeDefined();
    expect(c.size).toBe(1);
  });

  it('evicts the least recently used entries to fit its bytes, and skips an entry larger than itself', () => {
    const entry = (n: number) => [f32('y', new Array(n).fill(0))];
    const c = new ResponseCache(3 * (256 + 64 + 400)); // three entries of 100 floats
    for (const k of ['a', 'b', 'c']) expect(c.set(k, 's', entry(100))).toBe(true);
    c.get('a'); // a is now the most recent: b goes first
    c.set('d', 's', entry(100));
    expect(['a', 'b', 'c', 'd'].map((k) => c.get(k) !== undefined)).toEqual([true, false, true, true]);
    expect(c.bytes).toBeLessThanOrEqual(c.maxBytes);
    expect(c.set('huge', 's', entry(10_000))).toBe(false);
    expect(c.size).toBe(3);
  });
});
