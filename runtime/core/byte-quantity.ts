/**
 * @module core/byte-quantity
 * Byte counts written the way Kubernetes writes memory and storage quantities:
 * plain bytes, binary suffixes (Ki, Mi, Gi, Ti, Pi) and decimal ones (k or K,
 * M, G, T, P). Used for size settings read from the environment.
 *
 * @example
 * parseByteQuantity('2Gi'); // 2147483648
 * parseByteQuantity('500M'); // 500000000
 * parseByteQuantity('lots'); // undefined
 */

import { InvalidArgument } from './errors.js';

const MULTIPLIERS: Record<string, number> = {
  '': 1,
  k: 1e3,
  K: 1e3,
  M: 1e6,
  G: 1e9,
  T: 1e12,
  P: 1e15,
  Ki: 2 ** 10,
  Mi: 2 ** 20,
  Gi: 2 ** 30,
  Ti: 2 ** 40,
  Pi: 2 ** 50,
};

/** What the parser accepts, for error messages. */
const BYTE_QUANTITY_FORMS = 'a byte count such as 1073741824, 500Mi, 2Gi or 1G';

/**
 * The whole number of bytes `text` names (a fraction such as `1.5Gi` is rounded down), or
 * undefined when it is not a quantity or does not fit a safe integer. Suffixes are case
 * sensitive, as in Kubernetes (`m` would be milli, so it is refused), except that `K` is taken as `k`.
 */
export function parseByteQuantity(text: string): number | undefined {
  const m = /^\s*(\d+(?:\.\d+)?|\.\d+)\s*([kKMGTP]i?)?\s*$/.exec(text);
  if (!m) return undefined;
  const mult = MULTIPLIERS[m[2] ?? '']; // 'ki' matches the pattern but is no unit
  if (mult === undefined) return undefined;
  const n = Math.floor(Number(m[1]) * mult);
  return Number.isSafeInteger(n) ? n : undefined;
}

/** A positive byte quantity, or InvalidArgument naming the forms it takes (and `setting`, when given). */
export function positiveByteQuantity(text: string, setting?: string): number {
  const n = parseByteQuantity(text);
  if (n === undefined || n <= 0) throw new InvalidArgument(`${setting ? `${setting}: ` : ''}expected ${BYTE_QUANTITY_FORMS} (more than 0), got ${JSON.stringify(text)}`);
  return n;
}
