/**
 * @module protocol/v1/encode
 * The internal `InferResponse` → KServe's V1 (TensorFlow Serving) reply: a
 * row request gets `{"predictions": [...]}`, one element per instance (the
 * output's row, or an object of output name → row when there are several
 * outputs); a columnar request gets `{"outputs": value | {name: value}}`.
 * Values are written as text, nested by shape: 64-bit integers keep every
 * digit; NaN and infinities are the strings v2 writes; BYTES are strings, or
 * `{"b64": ...}` for bytes that are not UTF-8 and for outputs named `*_bytes`
 * (TensorFlow Serving's rule).
 */
import { fromHalf, type NumericArray } from '../../core/datatypes.js';
import { InvalidArgument } from '../../core/errors.js';
import type { InferResponse } from '../../core/infer.js';
import type { Tensor } from '../../core/tensor.js';
import type { V1Format } from './decode.js';

const utf8Decoder = new TextDecoder('utf-8', { fatal: true });

export function encodePredictResponse(response: InferResponse, format: V1Format, instances: number): string {
  const outs = response.outputs;
  if (format === 'columnar') {
    if (outs.length === 1) return `{"outputs":${nest(elementTexts(outs[0]!), outs[0]!.shape, 0, 0)}}`;
    return `{"outputs":{${outs.map((t) => `${JSON.stringify(t.name)}:${nest(elementTexts(t), t.shape, 0, 0)}`).join(',')}}}`;
  }
  const rows = outs.map((t) => rowsOf(t, instances));
  const predictions: string[] = new Array(instances);
  for (let i = 0; i < instances; i++) {
    predictions[i] = outs.length === 1 ? rows[0]![i]! : `{${outs.map((t, j) => `${JSON.stringify(t.name)}:${rows[j]![i]}`).join(',')}}`;
  }
  return `{"predictions":[${predictions.join(',')}]}`;
}

/** Each instance's row of `t` as JSON text; dim 0 must be the instance count. */
function rowsOf(t: Tensor, instances: number): string[] {
  if (t.shape.length === 0 || t.shape[0] !== instances) {
    // A declared dim 0 that cannot be the instance count is refused before the run (routes/v1.ts); a variable
    // one can still come back as something else (a transpose): the rows cannot be cut, the columnar format serves it.
    throw new InvalidArgument(`output '${t.name}' has shape [${t.shape.join(',')}], not one row per instance (${instances}), against its declared shape; send the columnar format ("inputs") for whole tensors`);
  }
  const texts = elementTexts(t);
  const rowShape = t.shape.slice(1);
  const size = rowShape.reduce((a, b) => a * b, 1);
  return Array.from({ length: instances }, (_, i) => nest(texts, rowShape, 0, i * size));
}

/** JSON text of the elements of shape[depth..] starting at `offset`. */
function nest(texts: string[], shape: readonly number[], depth: number, offset: number): string {
  if (depth === shape.length) return texts[offset]!;
  const n = shape[depth]!;
  const stride = shape.slice(depth + 1).reduce((a, b) => a * b, 1);
  const parts: string[] = new Array(n);
  for (let i = 0; i < n; i++) parts[i] = nest(texts, shape, depth + 1, offset + i * stride);
  return `[${parts.join(',')}]`;
}

function elementTexts(t: Tensor): string[] {
  switch (t.datatype) {
    case 'BYTES': {
      const b64 = t.name.endsWith('_bytes');
      return (t.data as Uint8Array[]).map((e) => {
        if (!b64) {
          try {
            return JSON.stringify(utf8Decoder.decode(e));
          } catch {
            // not UTF-8: base64 below
          }
        }
        return `{"b64":"${Buffer.from(e.buffer, e.byteOffset, e.byteLength).toString('base64')}"}`;
      });
    }
    case 'BOOL':
      return Array.from(t.data as Uint8Array, (v) => (v ? 'true' : 'false'));
    case 'FP16':
      return Array.from(t.data as Uint16Array, (b) => number(fromHalf(b)));
    case 'FP32':
    case 'FP64':
      return Array.from(t.data as Float32Array | Float64Array, number);
    default:
      return Array.from(t.data as NumericArray, (v: number | bigint) => String(v));
  }
}

/** A finite number as JSON writes it; NaN and infinities as the strings the v2 codec uses. */
function number(v: number): string {
  return v - v === 0 ? String(v) : `"${String(v)}"`;
}
