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

// IEEE 754 half <-> double conversion (Node 20 has no Float16Array).
const f64 = new Float64Array(1);
const f64Words = new Uint32Array(f64.buffer);

/** `q` ≥ 0 rounded to the nearest integer, ties to even. Exact: callers pass q < 2^11. */
function roundHalfEven(q: number): number {
  const whole = Math.floor(q);
  const rest = q - whole;
  return rest > 0.5 || (rest === 0.5 && whole % 2 === 1) ? whole + 1 : whole;
}

/**
 * Number → IEEE half bits, rounded once to nearest even from the double (through float32 first,
 * a value just under a half-way point could round up twice: 65519.99999999999 became Infinity).
 */
export function toHalf(value: number): number {
  if (Number.isNaN(value)) return 0x7e00;
  const sign = value < 0 || Object.is(value, -0) ? 0x8000 : 0;
  const a = Math.abs(value);
  // Below 2^-14, subnormal: a multiple of 2^-24 (1024 carries into the smallest normal's bits, as it should).
  if (a < 2 ** -14) return sign | roundHalfEven(a * 2 ** 24);
  f64[0] = a;
  const exp = ((f64Words[1]! >>> 20) & 0x7ff) - 1023; // a is normal here: exact
  if (exp > 15) return sign | 0x7c00; // ≥ 2^16, or Infinity
  // The significand in units of the half's last place: [1024, 2048), exact (a power-of-two scale).
  const units = roundHalfEven(a * 2 ** (10 - exp));
  if (units === 2048) return exp + 1 > 15 ? sign | 0x7c00 : sign | ((exp + 16) << 10);
  return sign | ((exp + 15) << 10) | (units - 1024);
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
