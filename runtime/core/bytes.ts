/**
 * @module core/bytes
 * Byte views shared by the codecs.
 */

/** A Buffer view of the same bytes (no copy), for Buffer's decoders and checks. */
export function asBuffer(b: Uint8Array): Buffer {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength);
}
