/**
 * @module client/tensors
 * Client-side tensors and the v2 wire codec the client needs: user inputs
 * (TypedArrays, plain or nested arrays, strings) → checked tensors → a JSON
 * body or a binary-extension body; response bodies (JSON or binary) → output
 * tensors holding TypedArrays. Tensors use the same in-memory form as the
 * server (`runtime/core/datatypes.ts`): FP16 as half bits in a Uint16Array,
 * BOOL as 0/1 bytes, BYTES as one Uint8Array per element, 64-bit integers as
 * BigInt64Array/BigUint64Array. The binary framing is the server's own
 * (`runtime/protocol/v2/binary.ts`, which imports only `runtime/core`).
 *
 * @example
 * const t = toTensor({ name: 'x', datatype: 'FP32', shape: [1, 3], data: [1, 2, 3] });
 * const { body, headers } = encodeInferRequest([t], { binary: true });
 */
import {
  arrayTypeOf,
  DATATYPES,
  elementSize,
  fromHalf,
  isDatatype,
  toHalf,
  viewAs,
  type Datatype,
  type NumericArray,
  type TensorData,
  BIG_RANGES,
  INT_RANGES,
} from '../runtime/core/datatypes.js';
import type { Parameters, Tensor } from '../runtime/core/tensor.js';
import { concatBody, writeBytesElements } from '../runtime/protocol/v2/binary.js';
import { KinferClientError, KinferInputError, KinferProtocolError } from './errors.js';

export type { Datatype, NumericArray, Parameters, Tensor, TensorData };
export { DATATYPES };

/** Anything `infer` accepts as one tensor's data. Plain arrays may be nested (row-major). */
export type InputData =
  | NumericArray
  | Uint8Array[]
  | readonly (number | bigint | boolean | string | Uint8Array | InputDataNested)[];
interface InputDataNested extends ReadonlyArray<number | bigint | boolean | string | Uint8Array | InputDataNested> {}

export interface InferInput {
  name: string;
  /** Optional for TypedArrays (Float32Array → FP32, ...), strings (BYTES) and booleans (BOOL); required for plain numbers. */
  datatype?: Datatype;
  /** Optional: taken from the nesting of plain arrays, else `[data.length]`. */
  shape?: readonly number[];
  data: InputData;
  parameters?: Parameters;
}

export interface RequestedOutput {
  name: string;
  /** Ask for this output in the binary section (true) or as JSON (false); default: the request's choice. */
  binary?: boolean;
  parameters?: Parameters;
}

/** A decoded v2 inference response. */
export class InferResult {
  constructor(
    readonly modelName: string,
    readonly outputs: Tensor[],
    readonly modelVersion?: string,
    readonly id?: string,
    readonly parameters?: Parameters,
  ) {}

  /** The output named `name`; throws when the response has none. */
  output(name: string): Tensor {
    const t = this.outputs.find((o) => o.name === name);
    if (!t) {
      throw new KinferClientError(
        `no output '${name}' in the response of model '${this.modelName}' (outputs: ${this.outputs.map((o) => o.name).join(', ') || 'none'})`,
      );
    }
    return t;
  }
}

const utf8 = new TextEncoder();
const utf8Strict = new TextDecoder('utf-8', { fatal: true });

const TYPED_DEFAULTS: [abstract new (...a: never[]) => unknown, Datatype][] = [
  [Float32Array, 'FP32'],
  [Float64Array, 'FP64'],
  [Int8Array, 'INT8'],
  [Int16Array, 'INT16'],
  [Int32Array, 'INT32'],
  [BigInt64Array, 'INT64'],
  [Uint8Array, 'UINT8'],
  [Uint16Array, 'UINT16'],
  [Uint32Array, 'UINT32'],
  [BigUint64Array, 'UINT64'],
];

function isNumericArray(v: unknown): v is NumericArray {
  return ArrayBuffer.isView(v) && !(v instanceof DataView);
}

function defaultDatatype(what: string, data: InputData): Datatype {
  if (isNumericArray(data)) {
    for (const [ctor, dt] of TYPED_DEFAULTS) if (data instanceof ctor) return dt;
  }
  let first: unknown = data;
  for (let depth = 0; Array.isArray(first) && depth < 64; depth++) first = first[0];
  if (typeof first === 'string' || first instanceof Uint8Array) return 'BYTES';
  if (typeof first === 'boolean') return 'BOOL';
  if (typeof first === 'bigint') return 'INT64';
  throw new KinferInputError(`${what}: give a datatype (plain numbers could be any of ${DATATYPES.join(', ')})`);
}

/** Checks and converts one user input into a `Tensor`. Throws `KinferInputError` naming the input. */
export function toTensor(input: InferInput): Tensor {
  if (typeof input?.name !== 'string' || input.name === '') {
    throw new KinferInputError(`input name must be a non-empty string, got ${JSON.stringify(input?.name)}`);
  }
  const what = `input '${input.name}'`;
  if (input.data === undefined || input.data === null || typeof input.data !== 'object') {
    throw new KinferInputError(`${what}: data must be a TypedArray or an array`);
  }
  if (input.datatype !== undefined && !isDatatype(input.datatype)) {
    throw new KinferInputError(`${what}: unknown datatype ${JSON.stringify(input.datatype)} (one of ${DATATYPES.join(', ')})`);
  }
  const datatype = input.datatype ?? defaultDatatype(what, input.data);

  let flat: ArrayLike<unknown>;
  let nestedShape: number[] | undefined;
  if (isNumericArray(input.data)) {
    flat = input.data;
  } else if (Array.isArray(input.data)) {
    if (input.data.some(Array.isArray)) {
      const out: unknown[] = [];
      nestedShape = flattenNested(what, input.data, out);
      flat = out;
    } else flat = input.data;
  } else {
    throw new KinferInputError(`${what}: data must be a TypedArray or an array`);
  }

  let shape: number[];
  if (input.shape !== undefined) {
    if (!Array.isArray(input.shape) || !input.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      throw new KinferInputError(`${what}: shape must be a list of non-negative integers, got ${JSON.stringify(input.shape)}`);
    }
    shape = [...input.shape];
  } else shape = nestedShape ?? [flat.length];
  const count = shape.reduce((a, b) => a * b, 1);
  if (count !== flat.length) {
    throw new KinferInputError(`${what}: shape [${shape.join(',')}] needs ${count} elements, data has ${flat.length}`);
  }

  const t: Tensor = { name: input.name, datatype, shape, data: convertData(what, datatype, flat) };
  if (input.parameters !== undefined) t.parameters = { ...input.parameters };
  return t;
}

/** Flattens a rectangular nested array; returns its shape. */
function flattenNested(what: string, data: readonly unknown[], out: unknown[]): number[] {
  const shape: number[] = [];
  for (let v: unknown = data; Array.isArray(v); v = v[0]) {
    shape.push(v.length);
    if (shape.length > 64) throw new KinferInputError(`${what}: data nested deeper than 64 levels`);
  }
  const walk = (v: readonly unknown[], depth: number): void => {
    if (v.length !== shape[depth]) {
      throw new KinferInputError(`${what}: nested data is ragged: a list at depth ${depth} has ${v.length} items, expected ${shape[depth]}`);
    }
    for (const x of v) {
      if (depth + 1 < shape.length) {
        if (!Array.isArray(x)) throw new KinferInputError(`${what}: nested data is ragged at depth ${depth + 1}`);
        walk(x, depth + 1);
      } else {
        if (Array.isArray(x)) throw new KinferInputError(`${what}: nested data is ragged at depth ${depth + 1}`);
        out.push(x);
      }
    }
  };
  walk(data, 0);
  return shape;
}

function bad(what: string, i: number, expected: string, v: unknown): KinferInputError {
  const shown = typeof v === 'bigint' ? `${v}n` : v instanceof Uint8Array ? 'a Uint8Array' : JSON.stringify(v) ?? String(v);
  return new KinferInputError(`${what}: element ${i}: expected ${expected}, got ${shown}`);
}

/** Values (a TypedArray of the datatype's own kind is kept as is) → the datatype's in-memory form. */
function convertData(what: string, datatype: Datatype, flat: ArrayLike<unknown>): TensorData {
  const n = flat.length;
  if (datatype === 'BYTES') {
    if (isNumericArray(flat)) throw new KinferInputError(`${what}: BYTES data must be strings or Uint8Arrays, got a ${flat.constructor.name}`);
    const out: Uint8Array[] = new Array(n);
    for (let i = 0; i < n; i++) {
      const v = flat[i];
      if (typeof v === 'string') out[i] = utf8.encode(v);
      else if (v instanceof Uint8Array) out[i] = v;
      else throw bad(what, i, 'a string or Uint8Array for BYTES', v);
    }
    return out;
  }
  const ctor = arrayTypeOf(datatype);
  if (flat instanceof ctor && datatype !== 'BOOL') return flat as NumericArray;
  switch (datatype) {
    case 'BOOL': {
      const out = new Uint8Array(n);
      for (let i = 0; i < n; i++) {
        const v = flat[i];
        if (v === true || v === 1) out[i] = 1;
        else if (v !== false && v !== 0) throw bad(what, i, 'true/false (or 1/0) for BOOL', v);
      }
      return out;
    }
    case 'FP16': {
      // A Uint16Array is taken as half bits (above); any other numbers are converted.
      const out = new Uint16Array(n);
      for (let i = 0; i < n; i++) {
        const v = flat[i];
        if (typeof v !== 'number') throw bad(what, i, 'a number for FP16', v);
        out[i] = toHalf(v);
      }
      return out;
    }
    case 'FP32':
    case 'FP64': {
      const out = new ctor(n) as Float32Array | Float64Array;
      for (let i = 0; i < n; i++) {
        const v = flat[i];
        if (typeof v !== 'number') throw bad(what, i, `a number for ${datatype}`, v);
        out[i] = v;
      }
      return out;
    }
    case 'INT64':
    case 'UINT64': {
      const out = new ctor(n) as BigInt64Array | BigUint64Array;
      const [min, max] = BIG_RANGES[datatype];
      for (let i = 0; i < n; i++) {
        const v = flat[i];
        let b: bigint;
        if (typeof v === 'bigint') b = v;
        else if (typeof v === 'number' && Number.isSafeInteger(v)) b = BigInt(v);
        else if (typeof v === 'string' && /^-?\d{1,20}$/.test(v)) b = BigInt(v);
        else throw bad(what, i, `a bigint, safe integer or decimal string for ${datatype}`, v);
        if (b < min || b > max) throw bad(what, i, `an integer in [${min}, ${max}] for ${datatype}`, v);
        out[i] = b;
      }
      return out;
    }
    default: {
      const [min, max] = INT_RANGES[datatype]!;
      const out = new ctor(n) as Exclude<NumericArray, BigInt64Array | BigUint64Array>;
      for (let i = 0; i < n; i++) {
        const v = flat[i];
        if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
          throw bad(what, i, `an integer in [${min}, ${max}] for ${datatype}`, v);
        }
        out[i] = v;
      }
      return out;
    }
  }
}

/** Bytes the tensor takes in the binary section. */
export function binarySize(t: Tensor): number {
  if (t.datatype === 'BYTES') {
    let n = 0;
    for (const e of t.data as Uint8Array[]) n += 4 + e.byteLength;
    return n;
  }
  return (t.data as NumericArray).byteLength;
}

/** The tensor's payload as the binary extension carries it: little-endian, BYTES length-prefixed. */
export function tensorBytes(t: Tensor): Uint8Array {
  if (t.datatype === 'BYTES') return writeBytesElements(t.data as Uint8Array[]);
  const d = t.data as NumericArray;
  return new Uint8Array(d.buffer, d.byteOffset, d.byteLength);
}

/**
 * The tensor's data as JSON values, flat. Returns undefined when JSON cannot
 * carry it exactly (a BYTES element that is not UTF-8): send it binary.
 * NaN/±Infinity go as the strings kinfer's server accepts; 64-bit integers
 * beyond 2^53 as decimal strings.
 */
export function jsonValues(t: Tensor): unknown[] | undefined {
  switch (t.datatype) {
    case 'BYTES': {
      const out: string[] = [];
      for (const e of t.data as Uint8Array[]) {
        try {
          out.push(utf8Strict.decode(e));
        } catch {
          return undefined;
        }
      }
      return out;
    }
    case 'BOOL':
      return Array.from(t.data as Uint8Array, (v) => v !== 0);
    case 'FP16':
      return Array.from(t.data as Uint16Array, (b) => finite(fromHalf(b)));
    case 'FP32':
    case 'FP64':
      return Array.from(t.data as Float32Array, finite);
    case 'INT64':
    case 'UINT64':
      return Array.from(t.data as BigInt64Array, (b: bigint) =>
        b >= BigInt(Number.MIN_SAFE_INTEGER) && b <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(b) : b.toString(),
      );
    default:
      return Array.from(t.data as Int32Array);
  }
}

/**
 * Values JSON numbers cannot carry exactly: 64-bit integers beyond 2^53 and NaN or infinities.
 * kinfer reads them as strings, Triton does not; the binary section carries them for both, so the
 * client picks it for them unless told `binary: false`.
 */
export function jsonCannotCarry(t: Tensor): boolean {
  switch (t.datatype) {
    case 'INT64':
    case 'UINT64':
      return (t.data as BigInt64Array).some((b) => b < BigInt(Number.MIN_SAFE_INTEGER) || b > BigInt(Number.MAX_SAFE_INTEGER));
    case 'FP32':
    case 'FP64':
      return (t.data as Float32Array).some((v) => !Number.isFinite(v));
    case 'FP16':
      return (t.data as Uint16Array).some((b) => (b & 0x7c00) === 0x7c00);
    default:
      return false;
  }
}

function finite(v: number): number | string {
  return Number.isFinite(v) ? v : String(v);
}

export interface EncodeOptions {
  /** All inputs in the binary section (true) or as JSON (false). */
  binary: boolean;
  /** Ask for every output in the binary section; default: same as `binary`. */
  binaryOutputs?: boolean;
  outputs?: readonly (string | RequestedOutput)[];
  id?: string;
  parameters?: Parameters;
}

export interface EncodedRequest {
  body: Uint8Array;
  headers: Record<string, string>;
  /** Whether the binary section was used (inputs that JSON cannot carry force it). */
  binary: boolean;
  /** Length of the JSON part (the `Inference-Header-Content-Length` value in binary mode). */
  jsonLength: number;
}

/** Builds a v2 inference request body from checked tensors. */
export function encodeInferRequest(tensors: readonly Tensor[], opts: EncodeOptions): EncodedRequest {
  const names = new Set<string>();
  for (const t of tensors) {
    if (names.has(t.name)) throw new KinferInputError(`input '${t.name}' is given more than once`);
    names.add(t.name);
  }
  let binary = opts.binary;
  const jsonData: (unknown[] | undefined)[] = binary ? [] : tensors.map(jsonValues);
  if (!binary && jsonData.some((d) => d === undefined)) binary = true;

  const inputs = tensors.map((t, i) => {
    const params: Parameters = { ...t.parameters };
    const wire: Record<string, unknown> = { name: t.name, shape: t.shape, datatype: t.datatype };
    if (binary) params.binary_data_size = binarySize(t);
    else wire.data = jsonData[i];
    if (Object.keys(params).length) wire.parameters = params;
    return wire;
  });
  const head: Record<string, unknown> = {};
  if (opts.id !== undefined) head.id = opts.id;
  const params: Parameters = { ...opts.parameters };
  if (opts.binaryOutputs ?? binary) params.binary_data_output = true;
  if (Object.keys(params).length) head.parameters = params;
  head.inputs = inputs;
  if (opts.outputs?.length) {
    head.outputs = opts.outputs.map((o) => {
      const r = typeof o === 'string' ? { name: o } : o;
      const p: Parameters = { ...r.parameters };
      if (r.binary !== undefined) p.binary_data = r.binary;
      return Object.keys(p).length ? { name: r.name, parameters: p } : { name: r.name };
    });
  }
  const json = utf8.encode(JSON.stringify(head));
  if (!binary) return { body: json, headers: { 'Content-Type': 'application/json' }, binary, jsonLength: json.byteLength };
  return {
    body: concatBody(json, tensors.map(tensorBytes)),
    headers: { 'Content-Type': 'application/octet-stream', 'Inference-Header-Content-Length': String(json.byteLength) },
    binary,
    jsonLength: json.byteLength,
  };
}

/**
 * JSON.parse that keeps integers longer than 15 digits exact: they are turned
 * into strings first (outside string literals), and the tensor decoder reads
 * strings back as BigInt or Number per datatype. Used only on bodies that
 * hold 64-bit integer tensors.
 */
export function parseJsonExact(text: string): unknown {
  if (!/"U?INT64"/.test(text)) return JSON.parse(text);
  return parseJsonLongIntegersAsStrings(text);
}

/**
 * JSON.parse with every integer literal longer than 15 digits (outside string
 * literals) read as its decimal string, which 64-bit integer tensors take exactly.
 */
export function parseJsonLongIntegersAsStrings(text: string): unknown {
  return JSON.parse(text.replace(/"(?:[^"\\]|\\.)*"|(?<![\d.eE+-])-?\d{16,}(?![\d.eE])/g, (m) => (m[0] === '"' ? m : `"${m}"`)));
}

interface WireOutput {
  name?: unknown;
  datatype?: unknown;
  shape?: unknown;
  parameters?: Record<string, unknown>;
  data?: unknown;
}

/**
 * Decodes a v2 inference response body. `headerLength` is the
 * `Inference-Header-Content-Length` value when the body has a binary section.
 */
export function decodeInferResponse(body: Uint8Array, headerLength?: string): InferResult {
  // A plain Uint8Array view (not a Buffer), so that BYTES elements sliced from it are plain too.
  body = new Uint8Array(body.buffer, body.byteOffset, body.byteLength);
  let jsonBytes = body;
  let binary = body.subarray(body.byteLength);
  if (headerLength !== undefined) {
    const n = Number(headerLength);
    if (!Number.isSafeInteger(n) || n < 0 || n > body.byteLength) {
      throw new KinferProtocolError(`response Inference-Header-Content-Length ${JSON.stringify(headerLength)} does not fit a body of ${body.byteLength} bytes`);
    }
    jsonBytes = body.subarray(0, n);
    binary = body.subarray(n);
  }
  let wire: Record<string, unknown>;
  try {
    wire = parseJsonExact(new TextDecoder().decode(jsonBytes)) as Record<string, unknown>;
  } catch (err) {
    throw new KinferProtocolError(`response is not valid JSON: ${(err as Error).message}`);
  }
  if (typeof wire !== 'object' || wire === null || !Array.isArray(wire.outputs)) {
    throw new KinferProtocolError('response has no "outputs" list: not a v2 inference response');
  }
  let off = 0;
  const outputs: Tensor[] = [];
  for (const [i, o] of (wire.outputs as WireOutput[]).entries()) {
    const what = `response output '${String(o?.name)}' (outputs[${i}])`;
    if (typeof o?.name !== 'string' || !isDatatype(o.datatype) || !Array.isArray(o.shape) || !o.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      throw new KinferProtocolError(`${what}: needs a name, a v2 datatype and a shape`);
    }
    const shape = o.shape as number[];
    const count = shape.reduce((a, b) => a * b, 1);
    const params = { ...(o.parameters ?? {}) } as Parameters;
    const size = params.binary_data_size;
    let data: TensorData;
    if (size !== undefined) {
      if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0 || off + size > binary.byteLength) {
        throw new KinferProtocolError(`${what}: binary_data_size ${String(size)} runs past the binary section (${binary.byteLength - off} bytes left)`);
      }
      data = readBinary(what, o.datatype, count, binary.subarray(off, off + size));
      off += size;
      delete params.binary_data_size;
    } else {
      data = readJson(what, o.datatype, count, o.data);
    }
    const t: Tensor = { name: o.name, datatype: o.datatype, shape, data };
    if (Object.keys(params).length) t.parameters = params;
    outputs.push(t);
  }
  return new InferResult(
    String(wire.model_name ?? ''),
    outputs,
    wire.model_version == null ? undefined : String(wire.model_version),
    wire.id == null ? undefined : String(wire.id),
    (wire.parameters as Parameters | undefined) ?? undefined,
  );
}

function readBinary(what: string, datatype: Datatype, count: number, bytes: Uint8Array): TensorData {
  if (datatype !== 'BYTES') {
    const size = elementSize(datatype)!;
    if (bytes.byteLength !== count * size) {
      throw new KinferProtocolError(`${what}: ${bytes.byteLength} bytes, shape needs ${count} × ${size}`);
    }
    // A copy: the result outlives the response buffer and stays aligned.
    return viewAs(datatype, bytes.slice());
  }
  const out: Uint8Array[] = [];
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let off = 0;
  for (let i = 0; i < count; i++) {
    if (off + 4 > bytes.byteLength) throw new KinferProtocolError(`${what}: BYTES element ${i} runs past its data`);
    const len = view.getUint32(off, true);
    off += 4;
    if (off + len > bytes.byteLength) throw new KinferProtocolError(`${what}: BYTES element ${i} runs past its data`);
    out.push(bytes.slice(off, off + len));
    off += len;
  }
  if (off !== bytes.byteLength) throw new KinferProtocolError(`${what}: ${bytes.byteLength - off} bytes left after ${count} BYTES elements`);
  return out;
}

function readJson(what: string, datatype: Datatype, count: number, data: unknown): TensorData {
  if (!Array.isArray(data)) throw new KinferProtocolError(`${what}: no "data" and no binary_data_size`);
  let flat: unknown[] = data;
  if (data.some(Array.isArray)) flat = data.flat(64);
  if (flat.length !== count) throw new KinferProtocolError(`${what}: shape needs ${count} elements, data has ${flat.length}`);
  const num = (v: unknown, i: number): number => {
    const x = typeof v === 'number' ? v : typeof v === 'string' ? Number(v) : NaN;
    if (Number.isNaN(x) && v !== 'NaN') throw new KinferProtocolError(`${what}: element ${i} is not a number: ${JSON.stringify(v)}`);
    return x;
  };
  switch (datatype) {
    case 'BYTES':
      return flat.map((v, i) => {
        if (typeof v !== 'string') throw new KinferProtocolError(`${what}: BYTES element ${i} is not a string`);
        return utf8.encode(v);
      });
    case 'BOOL':
      return Uint8Array.from(flat, (v, i) => {
        if (v === true || v === 1) return 1;
        if (v === false || v === 0) return 0;
        throw new KinferProtocolError(`${what}: element ${i} is not a BOOL (true, false, 1 or 0): ${JSON.stringify(v)}`);
      });
    case 'FP16':
      return Uint16Array.from(flat, (v, i) => toHalf(num(v, i)));
    case 'INT64':
    case 'UINT64': {
      const out = new (arrayTypeOf(datatype))(count) as BigInt64Array;
      const [min, max] = BIG_RANGES[datatype];
      for (let i = 0; i < count; i++) {
        const v = flat[i];
        // An integer number, or a decimal string (as kinfer writes those beyond 2^53); BigInt() alone
        // would also take true, "" and " 7".
        let b: bigint | undefined;
        if (typeof v === 'number' && Number.isInteger(v)) b = BigInt(v);
        else if (typeof v === 'string' && /^-?\d+$/.test(v)) b = BigInt(v);
        // Out of range (e.g. a 2^64-1 that went through a JSON number somewhere) must not wrap silently.
        if (b === undefined || b < min || b > max) {
          throw new KinferProtocolError(`${what}: element ${i} is not a ${datatype}: ${JSON.stringify(v)}`);
        }
        out[i] = b;
      }
      return out;
    }
    case 'FP32':
    case 'FP64': {
      const out = new (arrayTypeOf(datatype))(count) as Float64Array;
      for (let i = 0; i < count; i++) out[i] = num(flat[i], i);
      return out;
    }
    default: {
      const out = new (arrayTypeOf(datatype))(count) as Int32Array;
      const [min, max] = INT_RANGES[datatype]!;
      for (let i = 0; i < count; i++) {
        const v = num(flat[i], i);
        if (!Number.isInteger(v) || v < min || v > max) {
          throw new KinferProtocolError(`${what}: element ${i} is not a ${datatype}: ${JSON.stringify(flat[i])}`);
        }
        out[i] = v;
      }
      return out;
    }
  }
}

/** The tensor's values as JS numbers (FP16 decoded, BOOL as 0/1, 64-bit integers via Number). Not for BYTES. */
export function toNumbers(t: Tensor): number[] {
  if (t.datatype === 'BYTES') throw new KinferClientError(`tensor '${t.name}' is BYTES: use toStrings()`);
  if (t.datatype === 'FP16') return Array.from(t.data as Uint16Array, fromHalf);
  return Array.from(t.data as ArrayLike<number | bigint>, Number);
}

/** A BYTES tensor's elements as UTF-8 strings. */
export function toStrings(t: Tensor): string[] {
  if (t.datatype !== 'BYTES') throw new KinferClientError(`tensor '${t.name}' is ${t.datatype}, not BYTES`);
  return (t.data as Uint8Array[]).map((e) => new TextDecoder().decode(e));
}

/**
 * The tensor's values as plain JSON-friendly JS values: numbers (FP16 decoded;
 * NaN/±Infinity as strings), booleans for BOOL, decimal strings for 64-bit
 * integers beyond 2^53, strings for BYTES (base64 `{"b64": ...}` when not UTF-8).
 */
export function toJsonValues(t: Tensor): unknown[] {
  if (t.datatype === 'BYTES') {
    return (t.data as Uint8Array[]).map((e) => {
      try {
        return utf8Strict.decode(e);
      } catch {
        return { b64: Buffer.from(e).toString('base64') };
      }
    });
  }
  return jsonValues(t)!;
}
