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
