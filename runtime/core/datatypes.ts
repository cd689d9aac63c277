/**
 * @module core/datatypes
 * The v2 datatypes and the TypedArray each one is held in. FP16 is held as raw
 * IEEE half bits in a Uint16Array; BOOL as 0/1 bytes in a Uint8Array; BYTES as
 * one Uint8Array per element.
 */

export const DATATYPES = [
  'BOOL',
  'UINT8',
  'UINT16',
  'UINT32',
  'UINT64',
  'INT8',
  'INT16',
  'INT32',
  'INT64',
  'FP16',
  'FP32',
  'FP64',
  'BYTES',
] as const;

export type Datatype = (typeof DATATYPES)[number];

export type NumericArray =
  | Uint8Array
  | Uint16Array
  | Uint32Array
  | BigUint64Array
  | Int8Array
  | Int16Array
  | Int32Array
  | BigInt64Array
  | Float32Array
  | Float64Array;

/** BYTES tensors: one byte string per element. */
export type BytesArray = Uint8Array[];

export type TensorData = NumericArray | BytesArray;

type TypedArrayCtor = {
  new (length: number): NumericArray;
  new (buffer: ArrayBufferLike, byteOffset?: number, length?: number): NumericArray;
  readonly BYTES_PER_ELEMENT: number;
};

const CTORS: Record<Exclude<Datatype, 'BYTES'>, TypedArrayCtor> = {
  BOOL: Uint8Array,
  UINT8: Uint8Array,
  UINT16: Uint16Array,
  UINT32: Uint32Array,
  UINT64: BigUint64Array as unknown as TypedArrayCtor,
  INT8: Int8Array,
  INT16: Int16Array,
  INT32: Int32Array,
  INT64: BigInt64Array as unknown as TypedArrayCtor,
  FP16: Uint16Array,
  FP32: Float32Array,
  FP64: Float64Array,
};

export function isDatatype(value: unknown): value is Datatype {
  return typeof value === 'string' && (DATATYPES as readonly string[]).includes(value);
}

/** Value range of each integer datatype that fits a JS number. */
export const INT_RANGES: Partial<Record<Datatype, readonly [number, number]>> = {
  UINT8: [0, 0xff],
  UINT16: [0, 0xffff],
  UINT32: [0, 0xffffffff],
  INT8: [-0x80, 0x7f],
  INT16: [-0x8000, 0x7fff],
  INT32: [-0x80000000, 0x7fffffff],
};

/** Value range of the 64-bit integer datatypes. */
export const BIG_RANGES: Record<'INT64' | 'UINT64', readonly [bigint, bigint]> = {
  INT64: [-(2n ** 63n), 2n ** 63n - 1n],
  UINT64: [0n, 2n ** 64n - 1n],
};

/** Bytes per element, or undefined for BYTES (variable length). */
export function elementSize(datatype: Datatype): number | undefined {
  return datatype === 'BYTES' ? undefined : CTORS[datatype].BYTES_PER_ELEMENT;
}

/** A zeroed array of `length` elements of `datatype`. */
export function allocate(datatype: Exclude<Datatype, 'BYTES'>, length: number): NumericArray {
  return new CTORS[datatype](length);
}

/**
 * A view of `bytes` as `datatype` elements (little-endian, as the binary
 * extension specifies). Copies only when the offset is not aligned.
 */
export function viewAs(datatype: Exclude<Datatype, 'BYTES'>, bytes: Uint8Array): NumericArray {
  const ctor = CTORS[datatype];
  const size = ctor.BYTES_PER_ELEMENT;
  if (bytes.byteLength % size !== 0) {
    throw new RangeError(`${bytes.byteLength} bytes is not a whole number of ${datatype} elements (${size} bytes each)`);
  }
  if (bytes.byteOffset % size === 0) return new ctor(bytes.buffer, bytes.byteOffset, bytes.byteLength / size);
  const copy = new Uint8Array(bytes.byteLength);
  copy.set(bytes);
  return new ctor(copy.buffer, 0, bytes.byteLength / size);
}

/** The TypedArray a datatype is held in, for checks like `data instanceof ...`. */
export function arrayTypeOf(datatype: Exclude<Datatype, 'BYTES'>): TypedArrayCtor {
  return CTORS[datatype];
}

// IEEE 754 half <-> single conversion (Node 20 has no Float16Array).
const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** Float → IEEE half bits, round to nearest even. */
export function toHalf(value: number): number {
  f32[0] = value;
  const x = u32[0]!;
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0); // Inf / NaN
  let e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00; // overflow → Inf
  if (e <= 0) {
    if (e < -10) return sign; // underflow → ±0
    mant |= 0x800000;
    const shift = 14 - e;
    let half = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    const halfway = 1 << (shift - 1);
    if (rem > halfway || (rem === halfway && half & 1)) half++;
    return sign | half;
  }
  let half = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && half & 1)) half++; // may carry into exponent: still correct
  return sign | half;
}

/** IEEE half bits → float. */
export function fromHalf(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exp = (bits >>> 10) & 0x1f;
  const mant = bits & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 0x1f) return mant ? NaN : sign * Infinity;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

/** v2 datatype → Triton's config enum name (BYTES is TYPE_STRING there). */
export function tritonType(d: Datatype): string {
  return d === 'BYTES' ? 'TYPE_STRING' : `TYPE_${d}`;
}
