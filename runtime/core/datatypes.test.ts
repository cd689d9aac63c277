import { describe, expect, it } from 'vitest';
import { fromHalf, toHalf } from './datatypes.js';

describe('toHalf', () => {
  it('rounds once, from the double: values just past a half-way point round up, ties go to even', () => {
    // Through float32 first, each of these rounded a second time (to 1, Infinity and 0).
    expect(toHalf(1 + 2 ** -11 + 2 ** -40)).toBe(0x3c01);
    expect(toHalf(65519.99999999999)).toBe(0x7bff);
    expect(fromHalf(toHalf(2.980232238769532e-8))).toBe(2 ** -24);
    // Exact ties.
    expect(toHalf(1 + 2 ** -11)).toBe(0x3c00);
    expect(toHalf(1 + 3 * 2 ** -11)).toBe(0x3c02);
    expect(toHalf(65520)).toBe(0x7c00);
    expect(toHalf(2 ** -25)).toBe(0);
    expect(toHalf(3 * 2 ** -25)).toBe(2);
    // Specials and the edges of the range.
    expect([toHalf(Infinity), toHalf(-Infinity), toHalf(-0), toHalf(0)]).toEqual([0x7c00, 0xfc00, 0x8000, 0]);
    expect(Number.isNaN(fromHalf(toHalf(NaN)))).toBe(true);
    expect([toHalf(65504), toHalf(-65504), toHalf(2 ** -14), toHalf(2 ** -24), toHalf(2 ** -14 - 2 ** -25)]).toEqual([0x7bff, 0xfbff, 0x0400, 0x0001, 0x0400]);
    expect(toHalf(1e300)).toBe(0x7c00);
    expect(toHalf(-1e-300)).toBe(0x8000);
  });

  it('gives the nearest half for seeded values across the whole range (ties to even)', () => {
    let seed = 0x5eed;
    const random = () => {
      seed = (seed * 1103515245 + 12345) >>> 0;
      return seed / 2 ** 32;
    };
    for (let i = 0; i < 20_000; i++) {
      const v = (random() < 0.5 ? -1 : 1) * 2 ** (random() * 42 - 26) * (1 + random());
      const h = toHalf(v);
      const magnitude = h & 0x7fff;
      expect(h & 0x8000 ? v < 0 : v >= 0).toBe(true);
      const a = Math.abs(v);
      if (magnitude === 0x7c00) {
        expect(a).toBeGreaterThanOrEqual(65520);
        continue;
      }
      const err = Math.abs(a - fromHalf(magnitude));
      // The neighbours (positive halves order as their bits) are no closer, and a tie keeps the even one.
      for (const n of [magnitude - 1, magnitude + 1]) {
        if (n < 0 || n >= 0x7c00) continue;
        const other = Math.abs(a - fromHalf(n));
        expect(err).toBeLessThanOrEqual(other);
        if (err === other) expect(magnitude % 2).toBe(0);
      }
    }
  });
});
