/**
 * @module batching/merge
 * Pure helpers of the dynamic batcher: the signature that decides which
 * requests may share a batch, concatenation of inputs along dim 0, and the
 * split of a batch's outputs back to each caller by row offsets.
 */
import { allocate, type BytesArray, type NumericArray } from '../core/datatypes.js';
import { Internal, InvalidArgument } from '../core/errors.js';
import { checkTensor, elementCount, type Tensor } from '../core/tensor.js';
import { handOver } from './ownership.js';

/**
 * Requests with equal signatures can be concatenated along dim 0: same input
 * names, datatypes and shapes apart from dim 0, and the same requested outputs
 * (so one caller's bad output name can never fail another caller's request).
 * Input order does not matter.
 */
export function signatureOf(inputs: readonly Tensor[], outputNames: readonly string[]): string {
  const parts = inputs.map((t) => `${t.name}\u0000${t.datatype}\u0000${t.shape.slice(1).join('x')}`).sort();
  const outs = [...outputNames].sort().join('\u0000');
  return `${parts.join('\u0001')}\u0002${outs}`;
}

/**
 * The number of rows (dim 0) a request brings to a batch. Every input of a
 * batchable model must have a dim 0 and all must agree on it; the data must
 * hold exactly as many elements as the shape says, so the merge cannot misalign rows.
 */
export function rowsOf(inputs: readonly Tensor[]): number {
  let rows: number | undefined;
  let first = '';
  for (const t of inputs) {
    checkTensor(t);
    if (t.shape.length === 0) {
      throw new InvalidArgument(`input '${t.name}': the model batches along dim 0, so a scalar (shape []) is not accepted`);
    }
    const d0 = t.shape[0]!;
    if (rows === undefined) {
      rows = d0;
      first = t.name;
    } else if (d0 !== rows) {
      throw new InvalidArgument(
        `input '${t.name}': dim 0 is ${d0} but input '${first}' has ${rows}; all inputs share the batch dim`,
      );
    }
  }
  return rows ?? 1;
}

/**
 * Concatenates the inputs of several requests (equal signatures) along dim 0.
 * Copies into fresh arrays: callers keep ownership of their own buffers.
 * The merged inputs follow the first request's input order.
 */
export function mergeInputs(requests: readonly (readonly Tensor[])[], rows: readonly number[]): Tensor[] {
  const first = requests[0];
  if (!first) return [];
  const total = rows.reduce((a, b) => a + b, 0);
  return first.map((proto) => {
    const parts = requests.map((inputs) => {
      const t = inputs.find((x) => x.name === proto.name);
      if (!t) throw new Internal(`batcher: input '${proto.name}' missing from a request of the same signature`);
      return t;
    });
    const shape = [total, ...proto.shape.slice(1)];
    if (proto.datatype === 'BYTES') {
      const data: BytesArray = [];
      for (const p of parts) for (const b of p.data as BytesArray) data.push(b);
      return { name: proto.name, datatype: proto.datatype, shape, data };
    }
    const data = allocate(proto.datatype, elementCount(shape));
    handOver((data as NumericArray).buffer);
    let offset = 0;
    for (const p of parts) {
      // Same datatype → same TypedArray class; the cast only widens for `set`.
      (data as unknown as { set(a: ArrayLike<unknown>, o: number): void }).set(p.data as NumericArray, offset);
      offset += p.data.length;
    }
    return { name: proto.name, datatype: proto.datatype, shape, data };
  });
}

/**
 * Splits a batch's outputs back into each caller's rows. Every output's dim 0
 * must equal the batch size; otherwise the batch cannot be split and every
 * caller gets Internal naming that output. Each caller's tensors are copies.
 */
export function splitOutputs(outputs: readonly Tensor[], rows: readonly number[]): Tensor[][] {
  const total = rows.reduce((a, b) => a + b, 0);
  for (const o of outputs) {
    if (o.shape.length === 0 || o.shape[0] !== total) {
      throw new Internal(
        `output '${o.name}': dim 0 is ${o.shape.length === 0 ? 'missing (scalar)' : o.shape[0]}, expected the batch size ${total}; cannot split the batch`,
      );
    }
  }
  const result: Tensor[][] = rows.map(() => []);
  for (const o of outputs) {
    const perRow = elementCount(o.shape.slice(1));
    if (o.data.length !== perRow * total) {
      throw new Internal(`output '${o.name}': shape [${o.shape.join(',')}] needs ${perRow * total} elements, got ${o.data.length}`);
    }
    let row = 0;
    rows.forEach((n, i) => {
      const start = row * perRow;
      const end = (row + n) * perRow;
      const data = o.datatype === 'BYTES' ? (o.data as BytesArray).slice(start, end) : (o.data as NumericArray).slice(start, end);
      const part: Tensor = { name: o.name, datatype: o.datatype, shape: [n, ...o.shape.slice(1)], data };
      if (o.parameters) part.parameters = { ...o.parameters };
      result[i]!.push(part);
      row += n;
    });
  }
  return result;
}
