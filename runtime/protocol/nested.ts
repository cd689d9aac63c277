/**
 * @module protocol/nested
 * Tensors written as nested JSON arrays (KServe V1's instances and inputs, Triton's generate
 * extension): their dims, their leaves in row-major order, and the datatype the values suggest
 * when the model declares none; and the JSON-object test both bodies need.
 */
import type { Datatype } from '../core/datatypes.js';
import { describe, InvalidArgument } from '../core/errors.js';

/** Deepest nesting read (a guard against stack-deep bodies). */
export const MAX_NESTING = 64;

/** Dims from the nesting, following the first element at each level. */
export function nestedDims(what: string, v: unknown): number[] {
  const dims: number[] = [];
  let cur = v;
  while (Array.isArray(cur)) {
    if (dims.length >= MAX_NESTING) throw new InvalidArgument(`${what}: nested deeper than ${MAX_NESTING} levels`);
    dims.push(cur.length);
    cur = cur[0];
  }
  return dims;
}

/** Appends the leaves of `v` to `out` in order; every array at depth d must hold dims[d] elements. */
export function nestedLeaves(what: string, v: unknown, dims: readonly number[], out: unknown[] = []): unknown[] {
  const walk = (x: unknown, depth: number) => {
    if (depth === dims.length) {
      if (Array.isArray(x)) throw new InvalidArgument(`${what}: ragged nesting: an array where the first element at depth ${depth} has a value`);
      out.push(x);
      return;
    }
    if (!Array.isArray(x) || x.length !== dims[depth]) {
      throw new InvalidArgument(`${what}: ragged nesting: expected an array of ${dims[depth]} at depth ${depth}, got ${describe(x)}`);
    }
    for (const e of x) walk(e, depth + 1);
  };
  walk(v, 0);
  return out;
}

/**
 * The datatype of values a model did not declare: BOOL, BYTES (strings, or what `isBytes` also
 * takes), INT64 when every number is whole, else FP64; FP32 for no values.
 */
export function guessDatatype(what: string, flat: unknown[], isBytes: (v: unknown) => boolean = () => false): Datatype {
  const first = flat[0];
  if (typeof first === 'boolean') return 'BOOL';
  if (typeof first === 'string' || isBytes(first)) return 'BYTES';
  if (typeof first === 'number') return flat.every((v) => Number.isInteger(v)) ? 'INT64' : 'FP64';
  if (flat.length === 0) return 'FP32';
  throw new InvalidArgument(`${what}: cannot tell the datatype of ${describe(first)}; send numbers, booleans or strings`);
}

/** A JSON object (not an array, not null). */
export function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
