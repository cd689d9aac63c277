/**
 * @module protocol/v1/decode
 * KServe's V1 predict body (TensorFlow Serving's REST format) → the internal
 * `InferRequest`. Row format: `{"instances": [...]}`, one element per
 * instance, each the single input's value or an object of input name →
 * value; the instances are stacked along a new dim 0. Columnar format:
 * `{"inputs": value | {name: value}}`, each value a whole tensor. Shapes come
 * from the nesting, datatypes from the model's metadata; BYTES values are
 * strings or `{"b64": "..."}`. Every client mistake is an InvalidArgument
 * naming the place.
 */
import { isBase64Text } from '../../core/bytes.js';
import type { Datatype, TensorData } from '../../core/datatypes.js';
import { describe, InvalidArgument } from '../../core/errors.js';
import type { InferRequest } from '../../core/infer.js';
import { checkTensor, elementCount, type Tensor, type TensorSpec } from '../../core/tensor.js';
import { bytesElementBudget, convert, type BytesBudget } from '../v2/decode.js';
import { guessDatatype, isObject, nestedDims, nestedLeaves } from '../nested.js';

/** Row (`instances` → `predictions`) or columnar (`inputs` → `outputs`). */
export type V1Format = 'row' | 'columnar';

export interface DecodedPredict {
  request: InferRequest;
  format: V1Format;
  /** Instances in a row request: every output's dim 0 must have this many rows. */
  instances: number;
}

/** The name a model that declares no inputs (echo) gets for an unnamed value. */
export const UNNAMED_INPUT = 'input';

const utf8Encoder = new TextEncoder();

/**
 * `body`: the parsed JSON. `specs`: the model's inputs (empty: it takes any, and datatypes are
 * read from the values: booleans BOOL, strings BYTES, integers INT64, other numbers FP64).
 */
export function decodePredictRequest(body: unknown, specs: readonly TensorSpec[], modelName: string, modelVersion?: string): DecodedPredict {
  if (!isObject(body)) throw new InvalidArgument('V1 predict body: expected a JSON object with "instances" (row format) or "inputs" (columnar format)');
  const signature = body.signature_name;
  if (signature !== undefined && signature !== 'serving_default') {
    throw new InvalidArgument(`signature_name: kinfer models have one signature, "serving_default"; got ${describe(signature)}`);
  }
  const hasRows = 'instances' in body;
  if (hasRows === 'inputs' in body) throw new InvalidArgument('V1 predict body: give exactly one of "instances" (row format) and "inputs" (columnar format)');
  const columns = hasRows ? rowsToColumns(body.instances, specs) : namedColumns('inputs', body.inputs, specs);
  const inputs: Tensor[] = [];
  const spendBytes = bytesElementBudget();
  for (const [name, { value, what, stacked }] of columns) {
    const spec = specs.find((s) => s.name === name);
    if (specs.length > 0 && !spec) throw new InvalidArgument(`${what}: the model has no input '${name}' (inputs: ${specs.map((s) => s.name).join(', ')})`);
    inputs.push(toTensor(name, what, value, spec?.datatype, stacked, spendBytes));
  }
  for (const s of specs) if (!columns.has(s.name)) throw new InvalidArgument(`missing input '${s.name}'`);
  const request: InferRequest = { modelName, inputs };
  if (modelVersion !== undefined) request.modelVersion = modelVersion;
  return { request, format: hasRows ? 'row' : 'columnar', instances: hasRows ? (body.instances as unknown[]).length : 0 };
}

interface Column {
  /** The whole tensor's nested value (columnar), or the rows' values (row format). */
  value: unknown;
  what: string;
  /** Row format: `value` is a list of rows to stack along a new dim 0. */
  stacked: boolean;
}

function rowsToColumns(instances: unknown, specs: readonly TensorSpec[]): Map<string, Column> {
  if (!Array.isArray(instances) || instances.length === 0) throw new InvalidArgument('instances: expected a non-empty list, one element per instance');
  const keyed = isObject(instances[0]) && !isB64(instances[0]);
  const columns = new Map<string, Column>();
  if (!keyed) {
    if (specs.length > 1) throw new InvalidArgument(`instances[0]: the model has ${specs.length} inputs (${specs.map((s) => s.name).join(', ')}): give each instance as an object of input name → value`);
    const name = specs[0]?.name ?? UNNAMED_INPUT;
    columns.set(name, { value: instances, what: 'instances', stacked: true });
    return columns;
  }
  const names = Object.keys(instances[0] as object);
  for (const name of names) columns.set(name, { value: [], what: `instances[*].${name}`, stacked: true });
  instances.forEach((inst, i) => {
    if (!isObject(inst) || isB64(inst)) throw new InvalidArgument(`instances[${i}]: expected an object of input name → value, as instances[0] is`);
    const keys = Object.keys(inst);
    if (keys.length !== names.length || keys.some((k) => !columns.has(k))) {
      throw new InvalidArgument(`instances[${i}]: has inputs ${keys.join(', ')}; instances[0] has ${names.join(', ')}; every instance names the same inputs`);
    }
    for (const k of keys) (columns.get(k)!.value as unknown[]).push(inst[k]);
  });
  return columns;
}

function namedColumns(field: string, value: unknown, specs: readonly TensorSpec[]): Map<string, Column> {
  if (value === undefined || value === null) throw new InvalidArgument(`${field}: expected a tensor, or an object of input name → tensor`);
  const columns = new Map<string, Column>();
  if (isObject(value) && !isB64(value)) {
    for (const [name, v] of Object.entries(value)) columns.set(name, { value: v, what: `${field}.${name}`, stacked: false });
    if (columns.size === 0) throw new InvalidArgument(`${field}: an empty object names no input`);
    return columns;
  }
  if (specs.length > 1) throw new InvalidArgument(`${field}: the model has ${specs.length} inputs (${specs.map((s) => s.name).join(', ')}): give an object of input name → tensor`);
  columns.set(specs[0]?.name ?? UNNAMED_INPUT, { value, what: field, stacked: false });
  return columns;
}

function toTensor(name: string, what: string, value: unknown, declared: Datatype | undefined, stacked: boolean, spendBytes: BytesBudget): Tensor {
  let shape: number[];
  const flat: unknown[] = [];
  if (stacked) {
    const rows = value as unknown[];
    const rowShape = nestedDims(what, rows[0]);
    rows.forEach((row, i) => {
      // `instances[i]`, or `instances[i].<name>` for keyed instances.
      const at = what === 'instances' ? `instances[${i}]` : what.replace('[*]', `[${i}]`);
      const s = nestedDims(at, row);
      if (s.length !== rowShape.length || s.some((d, j) => d !== rowShape[j])) {
        throw new InvalidArgument(`${at}: shape [${s.join(',')}] differs from the first instance's [${rowShape.join(',')}]; instances stack along dim 0 and must match`);
      }
      nestedLeaves(at, row, rowShape, flat);
    });
    shape = [rows.length, ...rowShape];
  } else {
    shape = nestedDims(what, value);
    nestedLeaves(what, value, shape, flat);
  }
  const datatype = declared ?? guessDatatype(what, flat, isB64);
  if (!Number.isSafeInteger(elementCount(shape))) throw new InvalidArgument(`${what}: too many elements`);
  spendBytes(what, datatype, flat.length);
  const data: TensorData = datatype === 'BYTES' ? toBytes(what, flat) : convert(what, datatype, flat);
  const t: Tensor = { name, datatype, shape, data };
  checkTensor(t);
  return t;
}

function toBytes(what: string, flat: unknown[]): Uint8Array[] {
  return flat.map((v, i) => {
    if (typeof v === 'string') return utf8Encoder.encode(v);
    if (isB64(v)) {
      const s = v.b64.replace(/\s+/g, '');
      if (!isBase64Text(s)) throw new InvalidArgument(`${what}: element ${i}: "b64" is not base64`);
      return new Uint8Array(Buffer.from(s, 'base64'));
    }
    throw new InvalidArgument(`${what}: element ${i}: expected a string or {"b64": "..."} for BYTES, got ${describe(v)}`);
  });
}

function isB64(v: unknown): v is { b64: string } {
  return isObject(v) && typeof v.b64 === 'string' && Object.keys(v).length === 1;
}
