/**
 * @module protocol/v2/generate
 * Triton's generate extension (`POST .../generate`, `.../generate_stream`): a flat JSON
 * object ↔ the internal `InferRequest` / `InferResponse`. Pure: the route hands over the
 * parsed body and the model's declared inputs.
 *
 * Request, as Triton's HTTP frontend maps it: `id` is the request id (a string); every
 * other key, and every key of the `parameters` object, is an input when the model declares
 * an input of that name, else a request parameter (a string, number or boolean). An input's
 * datatype is the model's; its shape comes from the value:
 * - a scalar or a flat array (Triton's rule): the element count is spread over the model's
 *   shape, fixed dims first (each must divide it), the innermost variable dim taking what
 *   is left and any other variable dim 1. So `[1, 2, 3, 4]` for `[-1, 4]` is `[1, 4]` and
 *   eight values are `[2, 4]`;
 * - a nested array (Triton refuses these): its own dims, rectangular, with a leading 1 when
 *   the model batches and the value has one dim fewer than the input.
 * A model that declares no inputs (echo) takes every key but `id` and `parameters` as an
 * input, typed from its values as V1 does (booleans BOOL, strings BYTES, integers INT64,
 * other numbers FP64), shaped by its nesting.
 *
 * Response: `id` (when the request had one), `model_name`, `model_version`, each response
 * parameter, and each output by name: its one element bare, else its elements as a flat
 * array (Triton writes outputs flat, whatever their shape). A name already written wins.
 *
 * @example
 * const request = decodeGenerateRequest(parseJson(body, opts), { name: 'm', inputs, batchable: true });
 * const { response } = await dataplane.infer(request);
 * const json = encodeGenerateResponse(response); // generate_stream: sseEvent(json)
 */
import type { Datatype, TensorData } from '../../core/datatypes.js';
import { describe, Internal, invalidArgument, InvalidArgument, Unsupported } from '../../core/errors.js';
import type { InferRequest, InferResponse } from '../../core/infer.js';
import { checkTensor, elementCount, type Parameters, type Tensor, type TensorSpec } from '../../core/tensor.js';
import { bytesElementBudget, convert, type BytesBudget } from './decode.js';
import { dataToJson } from './encode.js';
import { guessDatatype, isObject, nestedDims, nestedLeaves } from '../nested.js';

/** The model a generate request is decoded for. */
export interface GenerateTarget {
  name: string;
  /** The version the URL names, if any. */
  version?: string;
  /** Declared inputs (shapes with the batch dim when the model batches); none: any input goes (echo). */
  inputs: readonly TensorSpec[];
  /** Dim 0 of every input is the batch dim. */
  batchable: boolean;
}

/** generate_stream's Content-Type, as Triton sends it. */
export const SSE_CONTENT_TYPE = 'text/event-stream; charset=utf-8';

const utf8Decoder = new TextDecoder('utf-8', { fatal: true });

/**
 * A generate request body (already parsed JSON) → an `InferRequest`. Every client mistake
 * is an `InvalidArgument` naming the key. Missing inputs are left to the data plane, which
 * knows the optional ones.
 */
export function decodeGenerateRequest(body: unknown, model: GenerateTarget): InferRequest {
  if (!isObject(body)) throw invalidArgument('generate request', 'a JSON object of input names and parameters', body);
  const specs = new Map(model.inputs.map((s) => [s.name, s]));
  const anyInput = model.inputs.length === 0;
  if (specs.has('parameters')) {
    throw new InvalidArgument(`model '${model.name}' has an input named 'parameters', which the generate request keeps for its parameters object; use /infer`);
  }
  const inputs = new Map<string, Tensor>();
  const spendBytes = bytesElementBudget();
  // No prototype: keys such as `constructor` or `__proto__` are parameters like any other.
  const parameters = Object.create(null) as Parameters;
  let hasParameters = false;

  const place = (key: string, value: unknown, what: string, asInput: boolean) => {
    const spec = specs.get(key);
    if (spec || asInput) {
      if (inputs.has(key)) throw new InvalidArgument(`${what}: input '${key}' is given twice (at the top level and in "parameters")`);
      inputs.set(key, spec ? declaredTensor(key, what, value, spec, model.batchable, spendBytes) : inferredTensor(key, what, value, spendBytes));
      return;
    }
    if (typeof value !== 'string' && typeof value !== 'number' && typeof value !== 'boolean') {
      const known = anyInput ? '' : ` (inputs: ${model.inputs.map((s) => s.name).join(', ')})`;
      throw new InvalidArgument(`${what}: '${key}' is not an input of model '${model.name}'${known}, and a parameter must be a string, number or boolean, got ${describe(value)}`);
    }
    if (Object.hasOwn(parameters, key)) throw new InvalidArgument(`${what}: parameter '${key}' is given twice (at the top level and in "parameters")`);
    parameters[key] = value;
    hasParameters = true;
  };

  const request: InferRequest = { modelName: model.name, inputs: [] };
  if (model.version !== undefined) request.modelVersion = model.version;
  for (const [key, value] of Object.entries(body)) {
    if (key === 'parameters') {
      if (!isObject(value)) throw invalidArgument('parameters', 'a JSON object', value);
      for (const [k, v] of Object.entries(value)) place(k, v, `parameters.${k}`, false);
    } else if (key === 'id') {
      if (typeof value !== 'string') throw invalidArgument('id', 'a string', value);
      request.id = value;
      // Triton also feeds it to an input of that name.
      if (specs.has('id')) place(key, value, key, false);
    } else {
      place(key, value, key, anyInput);
    }
  }
  request.inputs = [...inputs.values()];
  if (hasParameters) request.parameters = parameters;
  return request;
}

/** An input the model declares: its datatype, the shape from the value fitted to the declared one. */
function declaredTensor(name: string, what: string, value: unknown, spec: TensorSpec, batchable: boolean, spendBytes: BytesBudget): Tensor {
  const dims = nestedDims(what, value);
  const flat = nestedLeaves(what, value, dims);
  let shape: number[];
  if (dims.length <= 1) {
    shape = spread(what, flat.length, spec.shape);
  } else if (dims.length === spec.shape.length) {
    shape = dims;
  } else if (batchable && dims.length === spec.shape.length - 1) {
    shape = [1, ...dims];
  } else {
    throw new InvalidArgument(`${what}: a value nested ${dims.length} deep ([${dims.join(',')}]) does not fit input '${name}' of shape [${spec.shape.join(',')}]`);
  }
  return tensor(name, what, spec.datatype, shape, flat, spendBytes);
}

/** An input of a model that declares none: datatype from the values, shape from the nesting. */
function inferredTensor(name: string, what: string, value: unknown, spendBytes: BytesBudget): Tensor {
  const shape = nestedDims(what, value);
  const flat = nestedLeaves(what, value, shape);
  return tensor(name, what, guessDatatype(what, flat), shape, flat, spendBytes);
}

function tensor(name: string, what: string, datatype: Datatype, shape: number[], flat: unknown[], spendBytes: BytesBudget): Tensor {
  spendBytes(what, datatype, flat.length);
  const data: TensorData = convert(what, datatype, flat);
  const t: Tensor = { name, datatype, shape, data };
  checkTensor(t);
  return t;
}

/**
 * Triton's rule for a value without shape information: `count` elements spread over the
 * declared shape. Fixed dims (innermost first) must divide the count; then the innermost
 * variable dim takes what is left and the others are 1.
 */
export function spread(what: string, count: number, declared: readonly number[]): number[] {
  const shape = [...declared];
  let left = count;
  const refuse = () =>
    new InvalidArgument(`${what}: ${count} element${count === 1 ? '' : 's'} cannot be shaped to fit [${declared.join(',')}]`);
  for (let i = shape.length - 1; i >= 0; i--) {
    const d = shape[i]!;
    if (d < 0) continue;
    if (d === 0) {
      if (left !== 0) throw refuse();
    } else {
      if (left % d !== 0) throw refuse();
      left /= d;
    }
  }
  for (let i = shape.length - 1; i >= 0; i--) {
    if (shape[i]! < 0) {
      shape[i] = left;
      left = 1;
    }
  }
  if (left !== 1 && !(count === 0 && shape.includes(0))) throw refuse();
  return shape;
}

/**
 * An `InferResponse` → the generate response's JSON text. Throws `Internal` for a malformed
 * output (a backend fault) and `Unsupported` for a BYTES output that is not UTF-8, which
 * JSON cannot carry.
 */
export function encodeGenerateResponse(res: InferResponse): string {
  const parts: string[] = [];
  const written = new Set<string>();
  const add = (key: string, json: string) => {
    if (written.has(key)) return;
    written.add(key);
    parts.push(`${JSON.stringify(key)}:${json}`);
  };
  // Triton writes the id only when it is not empty.
  if (res.id) add('id', JSON.stringify(res.id));
  add('model_name', JSON.stringify(res.modelName));
  if (res.modelVersion !== undefined) add('model_version', JSON.stringify(res.modelVersion));
  for (const [k, v] of Object.entries(res.parameters ?? {})) add(k, JSON.stringify(v));
  for (const t of res.outputs) {
    try {
      checkTensor(t, 'output');
    } catch (err) {
      throw new Internal(`backend produced a malformed output: ${(err as Error).message}`);
    }
    if (t.datatype === 'BYTES') checkUtf8(t);
    // Spliced in as text, as /infer does: 64-bit integers keep every digit.
    const data = dataToJson(t);
    add(t.name, elementCount(t.shape) === 1 ? data.slice(1, -1) : data);
  }
  return `{${parts.join(',')}}`;
}

function checkUtf8(t: Tensor): void {
  const elements = t.data as Uint8Array[];
  for (let i = 0; i < elements.length; i++) {
    try {
      utf8Decoder.decode(elements[i]);
    } catch {
      throw new Unsupported(`output '${t.name}': BYTES element ${i} is not valid UTF-8, which a generate response (JSON) cannot carry; ask /infer for it with parameters.binary_data`);
    }
  }
}

/** One Server-Sent Event carrying `json` (a response or an error object). */
export function sseEvent(json: string): string {
  return `data: ${json}\n\n`;
}
