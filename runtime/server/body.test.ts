import { describe, expect, it } from 'vitest';
import { joinAligned } from './body.js';

describe('joinAligned', () => {
  const chunks = [Buffer.from([1, 2, 3]), Buffer.from([4, 5, 6, 7, 8, 9, 10])];

  it('places byte alignAt on an 8-byte boundary and keeps every byte', () => {
    for (const at of [0, 1, 3, 7, 8, 9]) {
      const out = joinAligned(chunks, 10, at);
      expect(Array.from(out)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
      expect((out.byteOffset + at) % 8).toBe(0);
    }
  });

  it('concatenates as is without an alignment request or with a nonsense one', () => {
    for (const at of [undefined, -1, 11, NaN]) expect(Array.from(joinAligned(chunks, 10, at))).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
  });

  it('returns a single already-aligned chunk without copying', () => {
    const one = Buffer.from(new ArrayBuffer(16), 0, 16);
    expect(joinAligned([one], 16, 8)).toBe(one);
  });
});
