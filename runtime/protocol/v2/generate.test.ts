/**
 * @module protocol/v2/generate.test
 * Triton's generate codec alone: keys to inputs and parameters, shapes from values (Triton's
 * spread for flat values, nesting with a batch dim of 1), BYTES strings, the refusals, and
 * the flat response object.
 */
import { describe, expect, it } from 'vitest';
import { InvalidArgument, PayloadTooLarge } from '../../core/errors.js';
import { MAX_BYTES_ELEMENTS } from './decode.js';
import type { InferResponse } from '../../core/infer.js';
import type { TensorSpec } from '../../core/tensor.js';
import { decodeGenerateRequest, encodeGenerateResponse, spread, sseEvent, type GenerateTarget } from './generate.js';

const utf8 = (s: string) => new TextEncoder().encode(s);
const text = (b: Uint8Array) => new TextDecoder().decode(b);

function target(inputs: TensorSpec[], batchable = false): GenerateTarget {
  return { name: 'm', inputs, batchable };
}

describe('decodeGenerateRequest', () => {
  const scale = target([{ name: 'x', datatype: 'FP32', shape: [-1, 4] }], true);

  it('builds a declared input from a scalar, a flat array and a nested array', () => {
    const scalar = decodeGenerateRequest({ k: 3 }, target([{ name: 'k', datatype: 'INT32', shape: [1] }]));
    expect(scalar.inputs).toEqual([{ name: 'k', datatype: 'INT32', shape: [1], data: Int32Array.of(3) }]);
    const rank0 = decodeGenerateRequest({ k: 2.5 }, target([{ name: 'k', datatype: 'FP64', shape: [] }]));
    expect(rank0.inputs[0]).toMatchObject({ shape: [], data: Float64Array.of(2.5) });

    // Flat: the batch dim 1 comes from Triton's spread over [-1, 4].
    const flat = decodeGenerateRequest({ x: [1, 2, 3, 4] }, scale);
    expect(flat.inputs).toEqual([{ name: 'x', datatype: 'FP32', shape: [1, 4], data: Float32Array.of(1, 2, 3, 4) }]);
    // Nested with the input's rank: its own dims.
    const nested = decodeGenerateRequest({ x: [[1, 2, 3, 4], [5, 6, 7, 8]] }, scale);
    expect(nested.inputs[0]).toMatchObject({ shape: [2, 4], data: Float32Array.of(1, 2, 3, 4, 5, 6, 7, 8) });
  });

  it('adds the batch dim 1 to a nested value one dim short when the model batches, and not when it does not', () => {
    const image: TensorSpec = { name: 'img', datatype: 'UINT8', shape: [-1, 2, 3] };
    const value = [[1, 2, 3], [4, 5, 6]];
    const batched = decodeGenerateRequest({ img: value }, target([{ ...image }], true));
    expect(batched.inputs[0]).toMatchObject({ shape: [1, 2, 3], data: Uint8Array.of(1, 2, 3, 4, 5, 6) });
    expect(() => decodeGenerateRequest({ img: value }, target([{ ...image }], false))).toThrow(
      "img: a value nested 2 deep ([2,3]) does not fit input 'img' of shape [-1,2,3]",
    );
  });

  it("spreads a flat value as Triton does: fixed dims divide, the innermost variable dim takes the rest, other variable dims are 1", () => {
    expect(spread('x', 8, [-1, 4])).toEqual([2, 4]);
    expect(spread('x', 5, [-1, -1])).toEqual([1, 5]);
    expect(spread('x', 6, [-1, 3, -1])).toEqual([1, 3, 2]);
    expect(spread('x', 4, [2, 2])).toEqual([2, 2]);
    expect(spread('x', 1, [])).toEqual([]);
    expect(spread('x', 0, [-1, 3])).toEqual([0, 3]);
    expect(() => spread('x', 6, [-1, 4])).toThrow('x: 6 elements cannot be shaped to fit [-1,4]');
    expect(() => spread('x', 3, [2, 2])).toThrow('x: 3 elements cannot be shaped to fit [2,2]');
    expect(() => spread('x', 2, [])).toThrow('x: 2 elements cannot be shaped to fit []');
    // Eight flat values for [-1, 4] are a batch of two, as in Triton.
    expect(decodeGenerateRequest({ x: [1, 2, 3, 4, 5, 6, 7, 8] }, scale).inputs[0]!.shape).toEqual([2, 4]);
  });

  it('takes BYTES inputs as UTF-8 strings', () => {
    const m = target([{ name: 'text_input', datatype: 'BYTES', shape: [-1, 1] }], true);
    const one = decodeGenerateRequest({ text_input: 'héllo €' }, m);
    expect(one.inputs[0]!.shape).toEqual([1, 1]);
    expect((one.inputs[0]!.data as Uint8Array[]).map(text)).toEqual(['héllo €']);
    const two = decodeGenerateRequest({ text_input: ['a', 'b'] }, m);
    expect(two.inputs[0]!.shape).toEqual([2, 1]);
    expect(() => decodeGenerateRequest({ text_input: 5 }, m)).toThrow(/text_input: element 0: expected a string for BYTES, got 5/);
  });

  it('keeps id as the request id and every other non-input key, top level or in parameters, as a parameter', () => {
    const r = decodeGenerateRequest({ id: 'r1', x: [1, 2, 3, 4], temperature: 0.5, stream: false, parameters: { timeout: 2_000_000, priority: 1, tag: 'a' } }, scale);
    expect(r.id).toBe('r1');
    expect(r.modelName).toBe('m');
    expect(r.inputs.map((t) => t.name)).toEqual(['x']);
    expect(r.parameters).toEqual({ temperature: 0.5, stream: false, timeout: 2_000_000, priority: 1, tag: 'a' });
    expect(decodeGenerateRequest({ x: [1, 2, 3, 4] }, { ...scale, version: '3' })).toMatchObject({ modelVersion: '3' });
    expect(decodeGenerateRequest({ x: [1, 2, 3, 4] }, scale).parameters).toBeUndefined();
    // Names an object inherits are parameters like any other, not "given twice".
    const proto = decodeGenerateRequest(JSON.parse('{"x": [1, 2, 3, 4], "constructor": "c", "toString": 1, "__proto__": "p"}'), scale);
    expect(Object.entries(proto.parameters!)).toEqual([['constructor', 'c'], ['toString', 1], ['__proto__', 'p']]);
  });

  it('takes an input named in the parameters object as an input, as Triton does', () => {
    const r = decodeGenerateRequest({ parameters: { x: [1, 2, 3, 4] } }, scale);
    expect(r.inputs[0]).toMatchObject({ name: 'x', shape: [1, 4] });
    expect(r.parameters).toBeUndefined();
  });

  it('types the inputs of a model that declares none from their values and shapes them by their nesting', () => {
    const r = decodeGenerateRequest({ s: 'hi', b: [true, false], i: [[1, 2], [3, 4]], f: [1, 2.5], big: '9007199254740993', parameters: { p: 1 } }, target([]));
    const byName = Object.fromEntries(r.inputs.map((t) => [t.name, t]));
    expect(byName.s).toMatchObject({ datatype: 'BYTES', shape: [] });
    expect((byName.s!.data as Uint8Array[]).map(text)).toEqual(['hi']);
    expect(byName.b).toEqual({ name: 'b', datatype: 'BOOL', shape: [2], data: Uint8Array.of(1, 0) });
    expect(byName.i).toEqual({ name: 'i', datatype: 'INT64', shape: [2, 2], data: BigInt64Array.of(1n, 2n, 3n, 4n) });
    expect(byName.f).toEqual({ name: 'f', datatype: 'FP64', shape: [2], data: Float64Array.of(1, 2.5) });
    expect(byName.big!.datatype).toBe('BYTES');
    expect(r.parameters).toEqual({ p: 1 });
  });

  it('refuses client mistakes with 400-class errors that name the key', () => {
    const refuse = (body: unknown, m: GenerateTarget, message: string | RegExp) => {
      let err: unknown;
      try {
        decodeGenerateRequest(body, m);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(InvalidArgument);
      expect((err as Error).message).toMatch(message);
    };
    refuse([1, 2], scale, 'generate request: expected a JSON object of input names and parameters, got an array of 2');
    refuse('x', scale, /got "x"/);
    refuse({ x: ['a', 'b', 'c', 'd'] }, scale, /x: element 0: expected a number for FP32, got "a"/);
    refuse({ x: [1, 2, 3] }, scale, 'x: 3 elements cannot be shaped to fit [-1,4]');
    refuse({ x: [[1, 2, 3, 4], [5, 6]] }, scale, 'x: ragged nesting: expected an array of 4 at depth 1, got an array of 2');
    refuse({ x: [1, [2, 3], 4, 5] }, scale, /x: ragged nesting: an array where/);
    refuse({ y: [1, 2, 3, 4] }, scale, "y: 'y' is not an input of model 'm' (inputs: x), and a parameter must be a string, number or boolean, got an array of 4");
    refuse({ x: [1, 2, 3, 4], parameters: { opts: { a: 1 } } }, scale, /parameters.opts: 'opts' is not an input .*got an object/);
    refuse({ x: [1, 2, 3, 4], parameters: [1] }, scale, 'parameters: expected a JSON object, got an array of 1');
    refuse({ x: [1, 2, 3, 4], id: 7 }, scale, 'id: expected a string, got 7');
    refuse({ x: [1, 2, 3, 4], parameters: { x: [1, 2, 3, 4] } }, scale, /input 'x' is given twice/);
    refuse({ x: [1, 2, 3, 4], t: 1, parameters: { t: 2 } }, scale, /parameter 't' is given twice/);
    refuse({ x: [1, 2, null, 4] }, scale, /x: element 2: expected a number for FP32, got null/);
    refuse({ k: 1.5 }, target([{ name: 'k', datatype: 'INT32', shape: [1] }]), /k: element 0: expected an integer in \[-2147483648, 2147483647\] for INT32, got 1.5/);
    refuse({ v: [{ a: 1 }] }, target([]), /v: cannot tell the datatype of an object/);
    refuse({ parameters: {} }, target([{ name: 'parameters', datatype: 'FP32', shape: [1] }]), /input named 'parameters'/);
  });
});

describe('encodeGenerateResponse', () => {
  it('writes id, model name and version, parameters, and each output: one element bare, more as a flat array', () => {
    const res: InferResponse = {
      modelName: 'm',
      modelVersion: '2',
      id: 'r1',
      parameters: { sequence_end: true },
      outputs: [
        { name: 'text_output', datatype: 'BYTES', shape: [1, 1], data: [utf8('héllo "you"')] },
        { name: 'y', datatype: 'FP32', shape: [2, 2], data: Float32Array.of(1.5, 2, 3, 4) },
        { name: 'n', datatype: 'INT64', shape: [1], data: BigInt64Array.of(9007199254740993n) },
        { name: 'b', datatype: 'BOOL', shape: [2], data: Uint8Array.of(1, 0) },
        { name: 'e', datatype: 'FP32', shape: [0], data: new Float32Array(0) },
      ],
    };
    const json = encodeGenerateResponse(res);
    // 64-bit integers keep every digit (spliced as text).
    expect(json).toContain('"n":9007199254740993');
    expect(JSON.parse(json)).toEqual({
      id: 'r1',
      model_name: 'm',
      model_version: '2',
      sequence_end: true,
      text_output: 'héllo "you"',
      y: [1.5, 2, 3, 4],
      n: 9007199254740992, // JSON.parse rounds; the text above is exact
      b: [true, false],
      e: [],
    });
  });

  it('leaves out an empty id, and a name already written wins over an output of the same name', () => {
    const json = encodeGenerateResponse({ modelName: 'm', modelVersion: '1', id: '', outputs: [{ name: 'model_name', datatype: 'INT32', shape: [1], data: Int32Array.of(1) }] });
    expect(JSON.parse(json)).toEqual({ model_name: 'm', model_version: '1' });
  });

  it('refuses a BYTES output that is not UTF-8 and a malformed output', () => {
    expect(() => encodeGenerateResponse({ modelName: 'm', outputs: [{ name: 'raw', datatype: 'BYTES', shape: [1], data: [Uint8Array.of(0xff)] }] })).toThrow(
      "output 'raw': BYTES element 0 is not valid UTF-8",
    );
    expect(() => encodeGenerateResponse({ modelName: 'm', outputs: [{ name: 'y', datatype: 'FP32', shape: [3], data: Float32Array.of(1) }] })).toThrow(/malformed output/);
  });

  it('frames one Server-Sent Event', () => {
    expect(sseEvent('{"a":1}')).toBe('data: {"a":1}\n\n');
  });

  it('refuses more than MAX_BYTES_ELEMENTS strings over the request (PayloadTooLarge)', () => {
    const many = new Array(MAX_BYTES_ELEMENTS + 1).fill('');
    expect(() => decodeGenerateRequest({ text_input: many }, target([{ name: 'text_input', datatype: 'BYTES', shape: [-1] }]))).toThrow(PayloadTooLarge);
  });
});
