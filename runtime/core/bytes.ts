/**
 * @module core/bytes
 * Byte views and copies shared by the codecs, backends and caches.
 */
import type { NumericArray } from './datatypes.js';

/** A Buffer view of the same bytes (no copy), for Buffer's decoders and checks. */
export function asBuffer(b: Uint8Array): Buffer {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength);
}

/** A copy with a buffer of its own: Buffer's `slice` (unlike Uint8Array's) returns a view. */
export function ownCopy<T extends NumericArray>(v: T): T {
  return (Buffer.isBuffer(v) ? new Uint8Array(v) : v.slice()) as T;
}

/** True when `text` uses only the standard base64 alphabet, with at most two `=` at the end (Buffer's decoder skips anything else silently). */
export function isBase64Text(text: string): boolean {
  return /^[A-Za-z0-9+/]*={0,2}$/.test(text);
}
