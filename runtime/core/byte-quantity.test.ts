import { describe, expect, it } from 'vitest';
import { parseByteQuantity } from './byte-quantity.js';

describe('parseByteQuantity', () => {
  it('reads plain bytes, binary and decimal suffixes', () => {
    expect(parseByteQuantity('1048576')).toBe(1048576);
    expect(parseByteQuantity('500Mi')).toBe(500 * 2 ** 20);
    expect(parseByteQuantity('2Gi')).toBe(2 * 2 ** 30);
    expect(parseByteQuantity('1G')).toBe(1e9);
    expect(parseByteQuantity('64k')).toBe(64_000);
    expect(parseByteQuantity('64K')).toBe(64_000);
    expect(parseByteQuantity('1.5Ki')).toBe(1536);
    expect(parseByteQuantity(' 3Ti ')).toBe(3 * 2 ** 40);
  });

  it('refuses what is not a byte quantity', () => {
    for (const bad of ['', 'lots', '-1', '1e9', '500m', '2GB', '2gi', '1ki', '1 Gi x', '9Pi9', '100000Pi']) {
      expect(parseByteQuantity(bad), bad).toBeUndefined();
    }
  });
});
