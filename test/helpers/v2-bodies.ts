/**
 * @module protocol/v2/test-helpers
 * Builders for v2 request bodies used by the codec tests: JSON bodies and
 * binary-extension bodies written byte by byte, independently of `encode.ts`.
 */

const enc = new TextEncoder();

export function jsonBody(value: unknown): Uint8Array {
  return enc.encode(JSON.stringify(value));
}

/** A JSON header followed by binary chunks; returns the body and the header length as the client would send it. */
export function binaryBody(header: unknown, chunks: Uint8Array[]): { body: Uint8Array; headerLength: string } {
  const head = enc.encode(JSON.stringify(header));
  let total = head.byteLength;
  for (const c of chunks) total += c.byteLength;
  const body = new Uint8Array(total);
  body.set(head, 0);
  let offset = head.byteLength;
  for (const c of chunks) {
    body.set(c, offset);
    offset += c.byteLength;
  }
  return { body, headerLength: String(head.byteLength) };
}

/** Little-endian bytes of numbers written with DataView (independent of the host's TypedArray layout). */
export function le(kind: 'u8' | 'i8' | 'u16' | 'i16' | 'u32' | 'i32' | 'u64' | 'i64' | 'f32' | 'f64', values: (number | bigint)[]): Uint8Array {
  const size = { u8: 1, i8: 1, u16: 2, i16: 2, u32: 4, i32: 4, u64: 8, i64: 8, f32: 4, f64: 8 }[kind];
  const out = new Uint8Array(values.length * size);
  const v = new DataView(out.buffer);
  values.forEach((x, i) => {
    const o = i * size;
    switch (kind) {
      case 'u8': v.setUint8(o, Number(x)); break;
      case 'i8': v.setInt8(o, Number(x)); break;
      case 'u16': v.setUint16(o, Number(x), true); break;
      case 'i16': v.setInt16(o, Number(x), true); break;
      case 'u32': v.setUint32(o, Number(x), true); break;
      case 'i32': v.setInt32(o, Number(x), true); break;
      case 'u64': v.setBigUint64(o, BigInt(x), true); break;
      case 'i64': v.setBigInt64(o, BigInt(x), true); break;
      case 'f32': v.setFloat32(o, Number(x), true); break;
      case 'f64': v.setFloat64(o, Number(x), true); break;
    }
  });
  return out;
}

/** BYTES elements framed as the extension says: 4-byte LE length, then the bytes. */
export function framed(elements: (string | Uint8Array)[]): Uint8Array {
  const parts = elements.map((e) => (typeof e === 'string' ? enc.encode(e) : e));
  const out = new Uint8Array(parts.reduce((n, p) => n + 4 + p.byteLength, 0));
  const v = new DataView(out.buffer);
  let o = 0;
  for (const p of parts) {
    v.setUint32(o, p.byteLength, true);
    out.set(p, o + 4);
    o += 4 + p.byteLength;
  }
  return out;
}

/** Deterministic PRNG (mulberry32) so fuzz failures reproduce. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
