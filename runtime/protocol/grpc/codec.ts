/**
 * @module protocol/grpc/codec
 * `ModelInferRequest` → `InferRequest` and `InferResponse` → `ModelInferResponse`
 * (service-proto.ts), as the Open Inference Protocol's gRPC API says: each
 * input's data in the `contents` field of its datatype, or every input's bytes
 * in `raw_input_contents` (little-endian, BYTES elements with a 4-byte length,
 * as the binary extension; the only way to send FP16). The reply uses the form
 * the request used: `raw_output_contents` unless the inputs came in `contents`
 * (Triton's clients send and read raw; grpcurl users read typed values).
 *
 * The wire objects are what @grpc/grpc-js hands over with the loader options
 * in `GRPC_LOADER_OPTIONS`: snake_case keys, 64-bit integers as decimal
 * strings, bytes as Buffers, oneofs named.
 */
import { elementSize, isDatatype, type Datatype, type NumericArray, type TensorData } from '../../core/datatypes.js';
import { InvalidArgument, invalidArgument } from '../../core/errors.js';
import { inputRefs, readInputBytes, sharedMemoryOf, sharedMemoryRefOf, withoutSharedMemory, type SharedMemoryAccess, type SharedMemoryRef } from '../../core/shared-memory.js';
import type { InferRequest, InferResponse, RequestedOutput } from '../../core/infer.js';
import { checkTensor, elementCount, type Parameters, type Tensor } from '../../core/tensor.js';
import { readBinaryTensor, tensorBytes, writeSharedMemoryOutput } from '../v2/binary.js';
import { bytesElementBudget, convert } from '../v2/decode.js';
import * as protoLoader from '@grpc/proto-loader';
import protobuf from 'protobufjs';

/** Options for @grpc/proto-loader; the codec relies on them. */
export const GRPC_LOADER_OPTIONS = { keepCase: true, longs: String, enums: String, bytes: Buffer, defaults: true, oneofs: true } as const;

const definitions = new Map<string, protoLoader.PackageDefinition>();

/** The package definition of a .proto held as text (service-proto.ts, health-proto.ts), parsed once per process. */
export function packageDefinitionOf(protoText: string): protoLoader.PackageDefinition {
  let d = definitions.get(protoText);
  if (!d) definitions.set(protoText, (d = protoLoader.fromJSON(protobuf.parse(protoText, { keepCase: true }).root.toJSON(), GRPC_LOADER_OPTIONS)));
  return d;
}

type Int64 = string;

export interface WireParameter {
  parameter_choice?: 'bool_param' | 'int64_param' | 'string_param' | 'double_param' | 'uint64_param';
  bool_param?: boolean;
  int64_param?: Int64;
  string_param?: string;
  double_param?: number;
  uint64_param?: Int64;
}

export interface WireContents {
  bool_contents?: boolean[];
  int_contents?: number[];
  int64_contents?: Int64[];
  uint_contents?: number[];
  uint64_contents?: Int64[];
  fp32_contents?: number[];
  fp64_contents?: number[];
  bytes_contents?: Uint8Array[];
}

export interface WireInputTensor {
  name: string;
  datatype: string;
  shape: Int64[];
  parameters?: Record<string, WireParameter>;
  contents?: WireContents | null;
}

export interface WireInferRequest {
  model_name: string;
  model_version: string;
  id: string;
  parameters?: Record<string, WireParameter>;
  inputs: WireInputTensor[];
  outputs: { name: string; parameters?: Record<string, WireParameter> }[];
  raw_input_contents: Uint8Array[];
}

export interface WireOutputTensor {
  name: string;
  datatype: string;
  shape: number[];
  parameters?: Record<string, WireParameter>;
  contents?: WireContents;
}

export interface WireInferResponse {
  model_name: string;
  model_version: string;
  id: string;
  parameters: Record<string, WireParameter>;
  outputs: WireOutputTensor[];
  raw_output_contents: Uint8Array[];
}

export interface DecodedGrpcInfer {
  request: InferRequest;
  /** Answer in `raw_output_contents` (the request did not use typed `contents`). */
  raw: boolean;
  /** Outputs to write into shared memory (checked against the registry when decoded). */
  sharedMemory?: Map<string, SharedMemoryRef>;
}

/** The `contents` field each datatype's values travel in (FP16 has none: raw only). */
const CONTENTS_FIELD: Record<Exclude<Datatype, 'FP16'>, keyof WireContents> = {
  BOOL: 'bool_contents',
  INT8: 'int_contents',
  INT16: 'int_contents',
  INT32: 'int_contents',
  INT64: 'int64_contents',
  UINT8: 'uint_contents',
  UINT16: 'uint_contents',
  UINT32: 'uint_contents',
  UINT64: 'uint64_contents',
  FP32: 'fp32_contents',
  FP64: 'fp64_contents',
  BYTES: 'bytes_contents',
};

/** `sharedMemory`: the server's regions (`--allow-client-shm`); without them a tensor in shared memory is refused. */
export function decodeGrpcInferRequest(m: WireInferRequest, sharedMemory?: SharedMemoryAccess): DecodedGrpcInfer {
  const rawContents = m.raw_input_contents ?? [];
  // As tritonclient sends them: raw_input_contents holds the inputs not in shared memory, in order.
  const shmInputs = inputRefs(m.inputs.map((input) => parametersOf(input.parameters)), m.inputs.map((input, i) => `input '${input.name}' (inputs[${i}])`), { sharedMemory });
  const inBody = shmInputs.filter((r) => !r).length;
  if (rawContents.length > 0 && rawContents.length !== inBody) {
    throw new InvalidArgument(`raw_input_contents has ${rawContents.length} entries for ${inBody} inputs; when used, it carries every input not in shared memory, in order`);
  }
  const names = new Set<string>();
  let typed = false;
  let rawIndex = 0;
  const spendBytes = bytesElementBudget();
  const inputs = m.inputs.map((input, i): Tensor => {
    const what = `input '${input.name}' (inputs[${i}])`;
    if (!input.name) throw new InvalidArgument(`inputs[${i}].name: empty`);
    if (names.has(input.name)) throw new InvalidArgument(`inputs[${i}].name: duplicate input '${input.name}'`);
    names.add(input.name);
    if (!isDatatype(input.datatype)) throw invalidArgument(`${what}: datatype`, 'a v2 datatype (BOOL, UINT8..64, INT8..64, FP16, FP32, FP64, BYTES)', input.datatype);
    const shape = input.shape.map((d, k) => {
      const n = Number(d);
      if (!Number.isSafeInteger(n) || n < 0) throw invalidArgument(`${what}: shape[${k}]`, 'a non-negative integer', d);
      return n;
    });
    const count = elementCount(shape);
    if (!Number.isSafeInteger(count)) throw new InvalidArgument(`${what}: shape [${shape.join(',')}] has more elements than can be counted exactly`);
    spendBytes(what, input.datatype, count);
    const params = parametersOf(input.parameters);
    const shm = shmInputs[i];
    const filled = filledFields(input.contents);
    let data: TensorData;
    if (shm) {
      const regions = sharedMemoryOf({ sharedMemory }, what);
      if (filled.length > 0) throw new InvalidArgument(`${what}: has its data in shared memory and in contents (${filled.join(', ')}); send one`);
      data = readBinaryTensor(what, input.datatype, count, readInputBytes(regions, shm, input.datatype, count, what));
    } else if (rawContents.length > 0) {
      if (filled.length > 0) throw new InvalidArgument(`${what}: has contents (${filled.join(', ')}) while raw_input_contents is used; send one form`);
      const at = rawIndex++;
      const bytes = rawContents[at]!;
      const size = elementSize(input.datatype);
      if (size !== undefined && bytes.byteLength !== count * size) {
        throw new InvalidArgument(`${what}: raw_input_contents[${at}] has ${bytes.byteLength} bytes; shape [${shape.join(',')}] of ${input.datatype} needs ${count} × ${size} = ${count * size}`);
      }
      data = readBinaryTensor(`${what} in raw_input_contents[${at}]`, input.datatype, count, bytes);
    } else {
      typed = true;
      data = fromContents(what, input.datatype, count, input.contents ?? {}, filled);
    }
    const tensor: Tensor = { name: input.name, datatype: input.datatype, shape, data };
    const kept = shm ? withoutSharedMemory(params) : params;
    if (kept) tensor.parameters = kept;
    checkTensor(tensor);
    return tensor;
  });
  let shmOutputs: Map<string, SharedMemoryRef> | undefined;

  const request: InferRequest = { modelName: m.model_name, inputs };
  if (m.model_version) request.modelVersion = m.model_version;
  if (m.id) request.id = m.id;
  const params = parametersOf(m.parameters);
  if (params) request.parameters = params;
  if (m.outputs.length > 0) {
    const seen = new Set<string>();
    request.outputs = m.outputs.map((o, i): RequestedOutput => {
      if (seen.has(o.name)) throw new InvalidArgument(`outputs[${i}].name: duplicate output '${o.name}'`);
      seen.add(o.name);
      const p = parametersOf(o.parameters);
      const what = `output '${o.name}' (outputs[${i}])`;
      const shm = sharedMemoryRefOf(p, what);
      if (shm) {
        sharedMemoryOf({ sharedMemory }, what).check(shm, what);
        (shmOutputs ??= new Map()).set(o.name, shm);
      }
      return p ? { name: o.name, parameters: p } : { name: o.name };
    });
  }
  return shmOutputs ? { request, raw: !typed, sharedMemory: shmOutputs } : { request, raw: !typed };
}

/**
 * `shmOutputs` are written into their regions (`sharedMemory`) and answered without contents, with
 * the region and byte count in their parameters; in raw form each keeps its place with an empty entry.
 */
export function encodeGrpcInferResponse(res: InferResponse, raw: boolean, shmOutputs?: Map<string, SharedMemoryRef>, sharedMemory?: SharedMemoryAccess): WireInferResponse {
  // raw_output_contents, once used, carries every output; FP16 has no typed field.
  const useRaw = raw || res.outputs.some((t) => t.datatype === 'FP16');
  const out: WireInferResponse = {
    model_name: res.modelName,
    model_version: res.modelVersion ?? '',
    id: res.id ?? '',
    parameters: wireParameters(res.parameters),
    outputs: [],
    raw_output_contents: [],
  };
  for (const t of res.outputs) {
    const o: WireOutputTensor = { name: t.name, datatype: t.datatype, shape: t.shape };
    if (t.parameters) o.parameters = wireParameters(t.parameters);
    const shm = shmOutputs?.get(t.name);
    if (shm) {
      const written = writeSharedMemoryOutput(t, shm, sharedMemory);
      o.parameters = wireParameters({ ...t.parameters, shared_memory_region: shm.region, shared_memory_byte_size: written });
      if (useRaw) out.raw_output_contents.push(new Uint8Array(0));
    } else if (useRaw) out.raw_output_contents.push(tensorBytes(t));
    else o.contents = toContents(t);
    out.outputs.push(o);
  }
  return out;
}

function filledFields(c: WireContents | null | undefined): string[] {
  if (!c) return [];
  return (Object.keys(c) as (keyof WireContents)[]).filter((k) => Array.isArray(c[k]) && c[k]!.length > 0);
}

function fromContents(what: string, datatype: Datatype, count: number, c: WireContents, filled: string[]): TensorData {
  if (datatype === 'FP16') throw new InvalidArgument(`${what}: FP16 has no contents field; send it in raw_input_contents`);
  const field = CONTENTS_FIELD[datatype];
  const stray = filled.filter((f) => f !== field);
  if (stray.length > 0) throw new InvalidArgument(`${what}: ${datatype} data goes in contents.${field}, got ${stray.join(', ')}`);
  const values = (c[field] ?? []) as unknown[];
  if (values.length !== count) throw new InvalidArgument(`${what}: shape needs ${count} elements, contents.${field} has ${values.length}`);
  // Byte strings arrive as bytes (REST's JSON has them as text); every other type is checked as REST checks JSON values.
  if (datatype === 'BYTES') return (values as Uint8Array[]).map((b) => new Uint8Array(b.buffer, b.byteOffset, b.byteLength));
  return convert(what, datatype, values);
}

function toContents(t: Tensor): WireContents {
  if (t.datatype === 'FP16') throw new InvalidArgument(`output '${t.name}': FP16 travels only in raw_output_contents`);
  const field = CONTENTS_FIELD[t.datatype];
  const data = t.data;
  if (t.datatype === 'BYTES') return { [field]: data as Uint8Array[] };
  if (t.datatype === 'BOOL') return { [field]: Array.from(data as Uint8Array, (v) => v !== 0) };
  if (t.datatype === 'INT64' || t.datatype === 'UINT64') return { [field]: Array.from(data as BigInt64Array, String) };
  return { [field]: Array.from(data as Exclude<NumericArray, BigInt64Array | BigUint64Array>) };
}

/** InferParameter map → Parameters; 64-bit integers become numbers where exact, else decimal strings. */
export function parametersOf(wire: Record<string, WireParameter> | undefined): Parameters | undefined {
  if (!wire) return undefined;
  const out: Parameters = {};
  let any = false;
  for (const [key, p] of Object.entries(wire)) {
    const choice = p.parameter_choice;
    if (choice === undefined) continue;
    const v = p[choice]!;
    out[key] = choice === 'int64_param' || choice === 'uint64_param' ? exactNumber(v as Int64) : (v as string | number | boolean);
    any = true;
  }
  return any ? out : undefined;
}

/** A 64-bit integer from the wire as a number where exact, else its decimal string. */
function exactNumber(v: Int64): number | string {
  const n = Number(v);
  return Number.isSafeInteger(n) ? n : v;
}

function wireParameters(p: Parameters | undefined): Record<string, WireParameter> {
  const out: Record<string, WireParameter> = {};
  for (const [key, v] of Object.entries(p ?? {})) {
    if (typeof v === 'boolean') out[key] = { bool_param: v };
    else if (typeof v === 'string') out[key] = { string_param: v };
    else if (Number.isSafeInteger(v)) out[key] = { int64_param: String(v) };
    else out[key] = { double_param: v };
  }
  return out;
}
