/**
 * @module core/tensor
 * The internal tensor: a name, a v2 datatype, a shape and a TypedArray (or
 * byte strings for BYTES). It knows nothing of JSON or HTTP.
 */
import { arrayTypeOf, type Datatype, type TensorData } from './datatypes.js';
import { InvalidArgument } from './errors.js';

export type Parameters = Record<string, string | number | boolean>;

export interface Tensor {
  name: string;
  datatype: Datatype;
  shape: number[];
  data: TensorData;
  parameters?: Parameters;
}

/** A tensor's declared form, as in model metadata; -1 marks a variable dimension. */
export interface TensorSpec {
  name: string;
  datatype: Datatype;
  shape: number[];
}

export function elementCount(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** Checks that `data` holds exactly as many elements of the right kind as `shape` says. */
export function checkTensor(t: Tensor, role = 'input'): void {
  const expected = elementCount(t.shape);
  const actual = t.data.length;
  if (actual !== expected) {
    throw new InvalidArgument(
      `${role} '${t.name}': shape [${t.shape.join(',')}] needs ${expected} elements, got ${actual}`,
    );
  }
  if (t.datatype === 'BYTES') {
    if (!Array.isArray(t.data)) throw new InvalidArgument(`${role} '${t.name}': BYTES data must be byte strings`);
  } else if (!(t.data instanceof arrayTypeOf(t.datatype))) {
    throw new InvalidArgument(`${role} '${t.name}': data does not match datatype ${t.datatype}`);
  }
}

/** True when `shape` fits `spec` (-1 in the spec matches any size). */
export function shapeMatches(spec: readonly number[], shape: readonly number[]): boolean {
  return spec.length === shape.length && spec.every((d, i) => d < 0 || d === shape[i]);
}

/** Byte length of a tensor's payload (BYTES counted as the binary extension frames them). */
export function byteSize(t: Tensor): number {
  if (t.datatype === 'BYTES') return (t.data as Uint8Array[]).reduce((n, b) => n + 4 + b.byteLength, 0);
  return (t.data as ArrayBufferView).byteLength;
}
