/**
 * @module protocol/v2/decode
 * A v2 inference request body (JSON, binary tensor data extension, or raw
 * input) → the internal `InferRequest`. Pure: the route hands over the body
 * bytes and the few headers that matter; every client mistake is an
 * `InvalidArgument` naming the field.
 *
 * @example
 * const { request, binaryOutputs } = decodeInferRequest(body, {
 *   modelName: 'resnet50',
 *   contentType: c.req.header('content-type'),
 *   inferenceHeaderContentLength: c.req.header('inference-header-content-length'),
 *   rawInput: () => (meta.inputs.length === 1 ? meta.inputs[0] : undefined),
 * });
 */
import { isAscii } from 'node:buffer';
import { asBuffer } from '../../core/bytes.js';
import { BIG_RANGES, INT_RANGES, allocate, elementSize, toHalf, type Datatype, type TensorData } from '../../core/datatypes.js';
import { InvalidArgument, invalidArgument, PayloadTooLarge } from '../../core/errors.js';
import { inputRefs, readInputBytes, sharedMemoryOf, sharedMemoryRefOf, withoutSharedMemory, type SharedMemoryAccess, type SharedMemoryRef } from '../../core/shared-memory.js';
import type { InferRequest, RequestedOutput } from '../../core/infer.js';
import { checkTensor, elementCount, type Parameters, type Tensor, type TensorSpec } from '../../core/tensor.js';
import { HEADER_LENGTH_HEADER, readBinaryTensor, splitBody } from './binary.js';
import { parseInferenceRequest, type WireParameters, type WireRequestInput } from './schema.js';
import { MAX_NESTING } from '../nested.js';

export interface DecodeOptions {
  modelName: string;
  modelVersion?: string;
  /** The request Content-Type; used only to explain a failure. */
  contentType?: string;
  /** The `Inference-Header-Content-Length` header, raw (may be undefined). */
  inferenceHeaderContentLength?: string;
  /**
   * For raw-input mode (header value 0): the model's single input spec.
   * Returning undefined (model has several inputs, or unknown) rejects the request.
   */
  rawInput?: () => TensorSpec | undefined;
  /** Largest JSON part (the whole body, or the binary extension's header); default MAX_JSON_BYTES. */
  maxJsonBytes?: number;
  /** The server's shared-memory regions; without them a tensor in shared memory is refused. */
  sharedMemory?: SharedMemoryAccess;
}

/**
 * Default cap on the JSON a request may carry (Triton's HTTP default is 64 MB too). Past ~89M
 * elements in one array V8 aborts the whole process while JSON.parse grows it ("invalid size
 * error"), which a 180 MB body of `0,` reaches; the binary extension has no such limit.
 */
export const MAX_JSON_BYTES = 64 * 1024 * 1024;

/**
 * BYTES elements one request may carry, over all its inputs. Each becomes a Uint8Array, ~200 bytes
 * of heap however short: 16 M empty strings (a 45 MB JSON body, or 64 MB of binary length
 * prefixes) took the process past its heap. 2^21 is what gRPC's decodeCost allows typed byte
 * strings under the default KINFER_MAX_JSON_BYTES (a byte string weighs 4 of its 8 M units).
 */
export const MAX_BYTES_ELEMENTS = 2 ** 21;

/** Spends a tensor's elements from a request's BYTES budget (`bytesElementBudget`). */
export type BytesBudget = (what: string, datatype: Datatype, count: number) => void;

/** Counts a request's BYTES elements as its tensors are decoded; past MAX_BYTES_ELEMENTS, PayloadTooLarge before they are made. */
export function bytesElementBudget(): BytesBudget {
  let total = 0;
  return (what, datatype, count) => {
    if (datatype !== 'BYTES') return;
    total += count;
    if (total > MAX_BYTES_ELEMENTS) {
      throw new PayloadTooLarge(`${what}: the request's BYTES tensors have more than ${MAX_BYTES_ELEMENTS} elements (${total} so far); each is an object once decoded: send fewer per request`);
    }
  };
}

/** Which outputs the client wants in the binary section. */
export interface BinaryOutputPrefs {
  /** Request `parameters.binary_data_output`: the default for every output. */
  all: boolean;
  /** Per-output `parameters.binary_data`; overrides `all`. */
  byName: Map<string, boolean>;
  /** Outputs to write into shared memory instead of the body (checked against the registry when decoded). */
  sharedMemory?: Map<string, SharedMemoryRef>;
}

export interface DecodedInfer {
  request: InferRequest;
  binaryOutputs: BinaryOutputPrefs;
}

/** Deepest `data` nesting accepted; guards the recursive flatten. */

const utf8Decoder = new TextDecoder('utf-8', { fatal: true });
const utf8Encoder = new TextEncoder();

/**
 * Decodes an inference request body. Numeric tensors taken from the binary
 * section are views into `body` (no copy when aligned): the caller must not
 * reuse the body buffer while the request is alive.
 */
export function decodeInferRequest(body: Uint8Array, opts: DecodeOptions): DecodedInfer {
  const split = splitBody(body, opts.inferenceHeaderContentLength);
  if (split.raw) return decodeRaw(split.binary, opts);

  const wire = parseInferenceRequest(parseJson(split.json, opts));
  const binary = split.binary;
  let offset = 0;
  const names = new Set<string>();
  const inputs: Tensor[] = [];
  const inputWhat = (i: number) => `input '${wire.inputs[i]!.name}' (inputs[${i}])`;
  // Inputs in shared memory are looked at together first (their bytes count against one limit); most requests have none.
  const shmRefs = wire.inputs.some((x) => x.parameters != null && ('shared_memory_region' in x.parameters || 'shared_memory_byte_size' in x.parameters || 'shared_memory_offset' in x.parameters))
    ? inputRefs(wire.inputs.map((x) => x.parameters ?? undefined), wire.inputs.map((_, i) => inputWhat(i)), opts)
    : undefined;
  const spendBytes = bytesElementBudget();
  for (let i = 0; i < wire.inputs.length; i++) {
    const input = wire.inputs[i]!;
    const what = inputWhat(i);
    if (names.has(input.name)) throw new InvalidArgument(`inputs[${i}].name: duplicate input '${input.name}'`);
    names.add(input.name);
    const params = input.parameters ?? undefined;
    const shm = shmRefs?.[i];
    const count = elementCount(input.shape);
    // Huge dims overflow to Infinity (and Infinity × 0 to NaN), which no size check below would catch.
    if (!Number.isSafeInteger(count)) {
      throw new InvalidArgument(`${what}: shape ${JSON.stringify(input.shape)} has more elements than can be counted exactly`);
    }
    spendBytes(what, input.datatype, count);
    const size = params?.binary_data_size;
    let data: TensorData;
    if (shm) {
      const regions = sharedMemoryOf(opts, what);
      if ((input.data !== undefined && input.data !== null) || size !== undefined) {
        throw new InvalidArgument(`${what}: has its data in shared memory and in the body; send one`);
      }
      data = readBinaryTensor(what, input.datatype, count, readInputBytes(regions, shm, input.datatype, count, what));
    } else if (size !== undefined) {
      if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) {
        throw invalidArgument(`inputs[${i}].parameters.binary_data_size`, 'a non-negative integer', size);
      }
      if (input.data !== undefined && input.data !== null) {
        throw new InvalidArgument(`${what}: has both "data" and parameters.binary_data_size; send one`);
      }
      if (opts.inferenceHeaderContentLength === undefined) {
        throw new InvalidArgument(
          `${what}: parameters.binary_data_size given but the ${HEADER_LENGTH_HEADER} header is missing`,
        );
      }
      if (offset + size > binary.byteLength) {
        throw new InvalidArgument(
          `${what}: binary_data_size ${size} runs past the end of the binary section (${binary.byteLength - offset} bytes left)`,
        );
      }
      data = readBinaryTensor(what, input.datatype, count, binary.subarray(offset, offset + size));
      offset += size;
    } else {
      data = jsonToData(what, input, count);
    }
    const tensor: Tensor = { name: input.name, datatype: input.datatype, shape: input.shape, data };
    const kept = withoutKey(shm ? withoutSharedMemory(params) : params, 'binary_data_size');
    if (kept) tensor.parameters = kept;
    checkTensor(tensor);
    inputs.push(tensor);
  }
  if (offset !== binary.byteLength) {
    throw new InvalidArgument(
      `binary section is ${binary.byteLength} bytes but the inputs' binary_data_size add up to ${offset}`,
    );
  }

  const request: InferRequest = { modelName: opts.modelName, inputs };
  if (opts.modelVersion !== undefined) request.modelVersion = opts.modelVersion;
  if (wire.id != null) request.id = wire.id;
  const reqParams = nonEmpty(wire.parameters);
  if (reqParams) request.parameters = reqParams;

  const binaryOutputs: BinaryOutputPrefs = {
    all: readBool(wire.parameters?.binary_data_output, 'parameters.binary_data_output') ?? false,
    byName: new Map(),
  };
  if (wire.outputs != null) {
    const outputs: RequestedOutput[] = [];
    const seen = new Set<string>();
    for (let i = 0; i < wire.outputs.length; i++) {
      const o = wire.outputs[i]!;
      if (seen.has(o.name)) throw new InvalidArgument(`outputs[${i}].name: duplicate output '${o.name}'`);
      seen.add(o.name);
      const requested: RequestedOutput = { name: o.name };
      const p = nonEmpty(o.parameters);
      if (p) requested.parameters = p;
      const binaryData = readBool(o.parameters?.binary_data, `outputs[${i}].parameters.binary_data`);
      if (binaryData !== undefined) binaryOutputs.byName.set(o.name, binaryData);
      const what = `output '${o.name}' (outputs[${i}])`;
      const shm = sharedMemoryRefOf(o.parameters ?? undefined, what);
      if (shm) {
        sharedMemoryOf(opts, what).check(shm, what);
        (binaryOutputs.sharedMemory ??= new Map()).set(o.name, shm);
      }
      outputs.push(requested);
    }
    request.outputs = outputs;
  }
  return { request, binaryOutputs };
}

/** The body as JSON: size-capped (PayloadTooLarge), UTF-8, parsed; InvalidArgument otherwise. */
export function parseJson(bytes: Uint8Array, opts: Pick<DecodeOptions, 'contentType' | 'inferenceHeaderContentLength' | 'maxJsonBytes'>): unknown {
  const hint =
    opts.inferenceHeaderContentLength === undefined && /octet-stream/i.test(opts.contentType ?? '')
      ? `; a binary body needs the ${HEADER_LENGTH_HEADER} header`
      : '';
  if (bytes.byteLength === 0) throw new InvalidArgument(`request body is empty; expected a JSON $inference_request${hint}`);
  const maxJson = opts.maxJsonBytes ?? MAX_JSON_BYTES;
  if (bytes.byteLength > maxJson) {
    throw new PayloadTooLarge(
      `the request's JSON is ${bytes.byteLength} bytes, over the limit of ${maxJson} (KINFER_MAX_JSON_BYTES); send large tensors with the binary extension`,
    );
  }
  let text: string;
  try {
    // ASCII (what JSON encoders write by default) as latin1: V8 keeps it one byte per character and
    // JSON.parse reads that faster; 1x3x224x224 FP32 JSON decoded and parsed in 19.5 ms against 24.8 ms.
    const view = asBuffer(bytes);
    text = isAscii(view) ? view.toString('latin1') : utf8Decoder.decode(bytes);
  } catch {
    throw new InvalidArgument(`request body is not valid UTF-8 JSON${hint}`);
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    const detail = err instanceof Error ? err.message.slice(0, 160) : String(err);
    throw new InvalidArgument(`request body is not valid JSON: ${detail}${hint}`);
  }
}

/** Raw-input mode: the whole body is the single input's bytes (Triton's "raw binary request"). */
function decodeRaw(bytes: Uint8Array, opts: DecodeOptions): DecodedInfer {
  const spec = opts.rawInput?.();
  if (!spec) {
    throw new InvalidArgument(
      `raw binary request (${HEADER_LENGTH_HEADER}: 0) needs a model with exactly one input of known datatype and shape`,
    );
  }
  const what = `raw input '${spec.name}'`;
  let shape: number[];
  let data: TensorData;
  if (spec.datatype === 'BYTES') {
    // One element: the whole body, unprefixed (the extension requires shape [1]).
    if (!spec.shape.every((d) => d === 1 || d < 0)) {
      throw new InvalidArgument(`${what}: a raw BYTES input must have shape [1], the model declares [${spec.shape.join(',')}]`);
    }
    shape = spec.shape.map(() => 1);
    data = [bytes];
  } else {
    const size = elementSize(spec.datatype)!;
    if (bytes.byteLength === 0 || bytes.byteLength % size !== 0) {
      throw new InvalidArgument(
        `${what}: body of ${bytes.byteLength} bytes is not a whole, non-zero number of ${spec.datatype} elements (${size} bytes each)`,
      );
    }
    const count = bytes.byteLength / size;
    shape = inferShape(what, spec.shape, count);
    data = readBinaryTensor(what, spec.datatype, count, bytes);
  }
  const tensor: Tensor = { name: spec.name, datatype: spec.datatype, shape, data };
  checkTensor(tensor);
  const request: InferRequest = { modelName: opts.modelName, inputs: [tensor] };
  if (opts.modelVersion !== undefined) request.modelVersion = opts.modelVersion;
  // The extension: with no header to ask, every output comes back binary.
  return { request, binaryOutputs: { all: true, byName: new Map() } };
}

/** A fixed spec shape as is; one -1 dim inferred from the element count; anything else is ambiguous. */
function inferShape(what: string, spec: readonly number[], count: number): number[] {
  const variable = spec.filter((d) => d < 0).length;
  const fixed = elementCount(spec.filter((d) => d >= 0));
  if (variable === 0) {
    if (fixed !== count) {
      throw new InvalidArgument(`${what}: body holds ${count} elements, shape [${spec.join(',')}] needs ${fixed}`);
    }
    return [...spec];
  }
  if (variable > 1) {
    throw new InvalidArgument(
      `${what}: shape [${spec.join(',')}] has ${variable} variable dims; a raw body can fill at most one`,
    );
  }
  if (fixed === 0 || count % fixed !== 0) {
    throw new InvalidArgument(
      `${what}: body holds ${count} elements, not a multiple of the ${fixed} that shape [${spec.join(',')}] needs per step of its variable dim`,
    );
  }
  return spec.map((d) => (d < 0 ? count / fixed : d));
}

/** JSON `data` (flat or nested to any depth) → the datatype's array, checked against the shape. */
function jsonToData(what: string, input: WireRequestInput, count: number): TensorData {
  const raw = input.data;
  if (!Array.isArray(raw)) throw invalidArgument(`${what} data`, 'an array ($tensor_data)', raw);
  let flat: unknown[] = raw;
  if ((flat.length !== count || Array.isArray(flat[0])) && flat.some(Array.isArray)) {
    flat = [];
    flatten(what, raw, flat, 0, count);
  }
  if (flat.length !== count) {
    const has = flat !== raw && flat.length > count ? `more than ${count}` : String(flat.length);
    throw new InvalidArgument(`${what}: shape [${input.shape.join(',')}] needs ${count} elements, data has ${has}`);
  }
  return convert(what, input.datatype, flat);
}

function flatten(what: string, arr: unknown[], out: unknown[], depth: number, limit: number): void {
  if (depth >= MAX_NESTING) throw new InvalidArgument(`${what}: data nested deeper than ${MAX_NESTING} levels`);
  for (let i = 0; i < arr.length; i++) {
    const v = arr[i];
    if (Array.isArray(v)) flatten(what, v, out, depth + 1, limit);
    else out.push(v);
    // More leaves than the shape allows: stop early, the count check reports it.
    if (out.length > limit) return;
  }
}

/**
 * Flat JSON values → typed data, checked per element (ranges, finiteness, 64-bit as number or
 * decimal string). One plain loop per datatype family: this runs per element. The gRPC codec uses
 * it for typed `contents` too.
 */
export function convert(what: string, datatype: Datatype, flat: unknown[]): TensorData {
  const n = flat.length;
  switch (datatype) {
    case 'BYTES': {
      const out: Uint8Array[] = new Array(n);
      for (let i = 0; i < n; i++) {
        const v = flat[i];
        if (typeof v !== 'string') throw badElement(what, i, 'a string for BYTES', v);
        out[i] = utf8Encoder.encode(v);
      }
      return out;
    }
    case 'BOOL': {
      const out = new Uint8Array(n);
      for (let i = 0; i < n; i++) {
        const v = flat[i];
        if (v === true) out[i] = 1;
        else if (v !== false) throw badElement(what, i, 'true or false for BOOL', v);
      }
      return out;
    }
    case 'FP32':
    case 'FP64': {
      const out = allocate(datatype, n) as Float32Array | Float64Array;
      for (let i = 0; i < n; i++) {
        const v = flat[i];
        out[i] = typeof v === 'number' ? v : nonFinite(what, i, datatype, v);
      }
      return out;
    }
    case 'FP16': {
      const out = new Uint16Array(n);
      for (let i = 0; i < n; i++) {
        const v = flat[i];
        out[i] = toHalf(typeof v === 'number' ? v : nonFinite(what, i, datatype, v));
      }
      return out;
    }
    case 'INT64':
    case 'UINT64': {
      const out = allocate(datatype, n) as BigInt64Array | BigUint64Array;
      const [min, max] = BIG_RANGES[datatype];
      for (let i = 0; i < n; i++) out[i] = toBigInt(what, i, datatype, flat[i], min, max);
      return out;
    }
    default: {
      const out = allocate(datatype, n) as Exclude<ReturnType<typeof allocate>, BigInt64Array | BigUint64Array>;
      const [min, max] = INT_RANGES[datatype]!;
      for (let i = 0; i < n; i++) {
        const v = flat[i];
        if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
          throw badElement(what, i, `an integer in [${min}, ${max}] for ${datatype}`, v);
        }
        out[i] = v;
      }
      return out;
    }
  }
}

/** JSON has no NaN or infinities; accept them as the strings the encoder writes. */
function nonFinite(what: string, i: number, datatype: Datatype, v: unknown): number {
  if (v === 'NaN') return NaN;
  if (v === 'Infinity') return Infinity;
  if (v === '-Infinity') return -Infinity;
  throw badElement(what, i, `a number for ${datatype}`, v);
}

const DECIMAL = /^-?\d{1,20}$/;

function toBigInt(what: string, i: number, datatype: 'INT64' | 'UINT64', v: unknown, min: bigint, max: bigint): bigint {
  let b: bigint;
  if (typeof v === 'number') {
    if (!Number.isInteger(v)) throw badElement(what, i, `an integer for ${datatype}`, v);
    if (!Number.isSafeInteger(v)) {
      throw new InvalidArgument(
        `${what}: element ${i}: ${v} is beyond 2^53 and lost precision as a JSON number; send it as a decimal string`,
      );
    }
    b = BigInt(v);
  } else if (typeof v === 'string' && DECIMAL.test(v)) {
    b = BigInt(v);
  } else {
    throw badElement(what, i, `an integer (or decimal string) for ${datatype}`, v);
  }
  if (b < min || b > max) throw badElement(what, i, `an integer in [${min}, ${max}] for ${datatype}`, v);
  return b;
}

function badElement(what: string, i: number, expected: string, v: unknown): InvalidArgument {
  if (Array.isArray(v)) {
    return new InvalidArgument(`${what}: element ${i} is a nested array where the shape expects a ${expected.replace(/^an? /, '')}`);
  }
  return invalidArgument(`${what}: element ${i}`, expected, v);
}

function readBool(value: unknown, path: string): boolean | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'boolean') throw invalidArgument(path, 'a boolean', value);
  return value;
}

function nonEmpty(p: WireParameters | null | undefined): Parameters | undefined {
  if (p == null) return undefined;
  for (const _ in p) return p;
  return undefined;
}

function withoutKey(p: WireParameters | undefined, key: string): Parameters | undefined {
  if (p === undefined || !(key in p)) return nonEmpty(p);
  const { [key]: _dropped, ...rest } = p;
  return nonEmpty(rest);
}
