/**
 * @module core/classification
 * Triton's classification extension: an output requested with
 * `parameters.classification: n` comes back as BYTES strings
 * `"<value>:<index>[:<label>]"` for its n highest elements, per batch row when
 * the model batches (shape [batch, min(n, row elements)]), else over the whole
 * tensor (shape [min(n, elements)]). Values print as Triton prints them
 * (`std::to_string`: integers as they are, floats as printf's %f, see fixed6); labels are
 * line i of the output's `label_filename`. Ties keep index order.
 */
import type { Datatype, NumericArray } from './datatypes.js';
import { InvalidArgument } from './errors.js';
import type { Parameters, Tensor } from './tensor.js';

/** What Triton can rank: integers and FP32/FP64 (not BOOL, BYTES or FP16). */
const RANKABLE: ReadonlySet<Datatype> = new Set(['UINT8', 'UINT16', 'UINT32', 'UINT64', 'INT8', 'INT16', 'INT32', 'INT64', 'FP32', 'FP64']);

/**
 * The class count an output's parameters ask for: 0 (or absent) means none, as in Triton.
 * Throws InvalidArgument for anything but a non-negative integer.
 */
export function classificationCount(output: string, parameters: Parameters | undefined): number {
  const n = parameters?.classification;
  if (n === undefined) return 0;
  if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 0) {
    throw new InvalidArgument(`output '${output}': parameters.classification: expected a non-negative integer, got ${JSON.stringify(n)}`);
  }
  return n;
}

/** Refuses a classification of an output whose datatype has no ordering Triton ranks by. */
export function checkClassifiable(output: string, datatype: Datatype): void {
  if (!RANKABLE.has(datatype)) {
    throw new InvalidArgument(`output '${output}': class result not available for datatype ${datatype} (integers, FP32 and FP64 only)`);
  }
}

const enc = new TextEncoder();

/** `t`'s top `count` classes as a BYTES tensor (see the module note). */
export function classify(t: Tensor, count: number, batched: boolean, labels?: readonly string[]): Tensor {
  checkClassifiable(t.name, t.datatype);
  const data = t.data as NumericArray;
  const rows = batched && t.shape.length > 0 ? t.shape[0]! : 1;
  const per = rows === 0 ? 0 : data.length / rows;
  const keep = Math.min(count, per);
  const float = t.datatype === 'FP32' || t.datatype === 'FP64';
  const out: Uint8Array[] = [];
  const order = Array.from({ length: per }, (_, i) => i);
  for (let r = 0; r < rows; r++) {
    const base = r * per;
    // Highest first (compared as the datatype: BigInts stay exact); NaN last; equal values in index order.
    order.sort((a, b) => {
      const x = data[base + a]!;
      const y = data[base + b]!;
      if (x === y) return a - b;
      if (float && (Number.isNaN(x) || Number.isNaN(y))) return Number.isNaN(x) ? (Number.isNaN(y) ? a - b : 1) : -1;
      return x > y ? -1 : x < y ? 1 : a - b;
    });
    for (let k = 0; k < keep; k++) {
      const i = order[k]!;
      const raw = data[base + i]!;
      const shown = float ? fixed6(raw as number) : String(raw);
      const label = labels?.[i];
      out.push(enc.encode(label === undefined ? `${shown}:${i}` : `${shown}:${i}:${label}`));
    }
  }
  return { name: t.name, datatype: 'BYTES', shape: batched && t.shape.length > 0 ? [rows, keep] : [keep], data: out };
}

/**
 * `v` as C's printf("%f") writes it (what std::to_string does): `nan`, `inf`, `-0.000000`, no
 * exponent form for huge values, and an exact tie at the 7th decimal rounded to even (toFixed
 * rounds it up: 0.0078125 is "0.007813" there, "0.007812" here and in Triton).
 */
export function fixed6(v: number): string {
  if (Number.isNaN(v)) return 'nan';
  if (!Number.isFinite(v)) return v > 0 ? 'inf' : '-inf';
  if (Object.is(v, -0)) return '-0.000000';
  if (Math.abs(v) >= 1e21) return `${BigInt(v)}.000000`; // an integer at this size; toFixed would write 1e+21
  const scaled = Math.abs(v) * 1e6; // exact when it is a tie: a half-integer below 2^52 is representable
  if (scaled < 2 ** 52 && !Number.isInteger(scaled) && Number.isInteger(scaled * 2)) {
    const down = Math.floor(scaled);
    const even = down % 2 === 0 ? down : down + 1;
    const digits = String(even).padStart(7, '0');
    return `${v < 0 ? '-' : ''}${digits.slice(0, -6)}.${digits.slice(-6)}`;
  }
  return v.toFixed(6);
}
