import { describe, expect, it } from 'vitest';
import { InvalidArgument, PayloadTooLarge } from '../../core/errors.js';
import { MAX_BYTES_ELEMENTS } from '../v2/decode.js';
import type { TensorSpec } from '../../core/tensor.js';
import { decodePredictRequest, encodePredictResponse } from './index.js';

const x: TensorSpec[] = [{ name: 'x', datatype: 'FP32', shape: [-1, 2] }];
const two: TensorSpec[] = [
  { name: 'a', datatype: 'INT32', shape: [-1, 2] },
  { name: 'b', datatype: 'BYTES', shape: [-1] },
];

function refused(body: unknown, specs: TensorSpec[], message: RegExp): void {
  expect(() => decodePredictRequest(body, specs, 'm')).toThrow(InvalidArgument);
  expect(() => decodePredictRequest(body, specs, 'm')).toThrow(message);
}

describe('V1 decode', () => {
  it('stacks instances along a new dim 0, in the datatype the model declares', () => {
    const { request, format, instances } = decodePredictRequest({ instances: [[1, 2.5], [3, 4]] }, x, 'm', '1');
    expect(format).toBe('row');
    expect(instances).toBe(2);
    expect(request).toMatchObject({ modelName: 'm', modelVersion: '1' });
    expect(request.inputs).toEqual([{ name: 'x', datatype: 'FP32', shape: [2, 2], data: Float32Array.from([1, 2.5, 3, 4]) }]);
  });

  it('takes keyed instances for several inputs, and strings or {"b64"} for BYTES', () => {
    const { request } = decodePredictRequest(
      { instances: [{ a: [1, 2], b: 'hi' }, { b: { b64: Buffer.from([0, 255]).toString('base64') }, a: [3, 4] }] },
      two,
      'm',
    );
    expect(request.inputs.map((t) => [t.name, t.datatype, t.shape])).toEqual([
      ['a', 'INT32', [2, 2]],
      ['b', 'BYTES', [2]],
    ]);
    expect(request.inputs[0]!.data).toEqual(Int32Array.from([1, 2, 3, 4]));
    expect((request.inputs[1]!.data as Uint8Array[]).map((e) => Array.from(e))).toEqual([[104, 105], [0, 255]]);
  });

  it('takes the columnar form whole, for one input or named inputs', () => {
    const one = decodePredictRequest({ inputs: [[1, 2], [3, 4], [5, 6]] }, x, 'm');
    expect(one.format).toBe('columnar');
    expect(one.request.inputs[0]!.shape).toEqual([3, 2]);
    const named = decodePredictRequest({ inputs: { a: [[7, 8]], b: ['z'] } }, two, 'm');
    expect(named.request.inputs.map((t) => t.shape)).toEqual([[1, 2], [1]]);
  });

  it('reads datatypes from the values for a model that declares no inputs (echo)', () => {
    const { request } = decodePredictRequest({ inputs: { i: [1, 2], f: [0.5], s: ['a'], t: [true] } }, [], 'echo');
    expect(Object.fromEntries(request.inputs.map((t) => [t.name, t.datatype]))).toEqual({ i: 'INT64', f: 'FP64', s: 'BYTES', t: 'BOOL' });
    // An integer JSON cannot hold exactly is refused, as in v2 (a declared INT64 input takes a decimal string).
    refused({ inputs: { big: [2 ** 53 + 2] } }, [], /beyond 2\^53/);
    expect(decodePredictRequest({ inputs: ['9007199254740993'] }, [{ name: 'k', datatype: 'INT64', shape: [-1] }], 'm').request.inputs[0]!.data).toEqual(BigInt64Array.from([2n ** 53n + 1n]));
    expect(decodePredictRequest({ instances: [[1], [2]] }, [], 'echo').request.inputs[0]!.name).toBe('input');
  });

  it('refuses what cannot be a tensor, naming the place', () => {
    refused({}, x, /exactly one of "instances".*"inputs"/);
    refused({ instances: [[1, 2]], inputs: [[1, 2]] }, x, /exactly one of/);
    refused({ instances: [] }, x, /instances: expected a non-empty list/);
    refused({ instances: [[1, 2], [3]] }, x, /instances\[1\]: shape \[1\] differs from the first instance's \[2\]/);
    refused({ inputs: [[1, 2], [3, 4, 5]] }, x, /ragged nesting/);
    refused({ instances: [[1, 'a']] }, x, /FP32/);
    refused({ instances: [[1, 2]] }, two, /the model has 2 inputs \(a, b\)/);
    refused({ instances: [{ a: [1, 2], b: 'x' }, { a: [1, 2] }] }, two, /instances\[1\]: has inputs a; instances\[0\] has a, b/);
    refused({ instances: [{ a: [1, 2], c: 'x' }] }, two, /no input 'c'/);
    refused({ instances: [{ a: [1, 2] }] }, two, /missing input 'b'/);
    refused({ instances: [{ a: [1, 2], b: { b64: '%%%' } }] }, two, /"b64" is not base64/);
    refused({ signature_name: 'other', instances: [[1, 2]] }, x, /one signature, "serving_default"/);
    refused([1, 2], x, /expected a JSON object/);
    // Deep values are named by their kind: quoting them whole overflowed the stack (a 500).
    const deep = JSON.parse('{"a":'.repeat(100_000) + '1' + '}'.repeat(100_000));
    refused({ signature_name: deep, instances: [[1, 2]] }, x, /"serving_default"; got an object$/);
    refused({ instances: [{ a: [1, 2], b: deep }] }, two, /element 0: expected a string or \{"b64": "..."\} for BYTES, got an object$/);
  });
});

describe('V1 encode', () => {
  const response = (outputs: { name: string; datatype: any; shape: number[]; data: any }[]) => ({ modelName: 'm', outputs });

  it('answers a row request with one prediction per instance: the row, or an object for several outputs', () => {
    const y = { name: 'y', datatype: 'FP32', shape: [2, 2], data: Float32Array.from([1, 0.5, NaN, -Infinity]) };
    expect(JSON.parse(encodePredictResponse(response([y]), 'row', 2))).toEqual({ predictions: [[1, 0.5], ['NaN', '-Infinity']] });
    const k = { name: 'k', datatype: 'INT64', shape: [2], data: BigInt64Array.from([2n ** 60n, -1n]) };
    const text = encodePredictResponse(response([y, k]), 'row', 2);
    expect(text).toContain('"k":1152921504606846976');
    expect(JSON.parse(text).predictions[1]).toEqual({ y: ['NaN', '-Infinity'], k: -1 });
  });

  it('answers a columnar request with the whole tensors, nested by shape', () => {
    const y = { name: 'y', datatype: 'UINT8', shape: [1, 2, 2], data: Uint8Array.from([1, 2, 3, 4]) };
    expect(JSON.parse(encodePredictResponse(response([y]), 'columnar', 0))).toEqual({ outputs: [[[1, 2], [3, 4]]] });
    const b = { name: 'b', datatype: 'BOOL', shape: [], data: Uint8Array.from([1]) };
    expect(JSON.parse(encodePredictResponse(response([y, b]), 'columnar', 0))).toEqual({ outputs: { y: [[[1, 2], [3, 4]]], b: true } });
  });

  it('writes BYTES as strings, and as {"b64"} when not UTF-8 or named *_bytes', () => {
    const s = { name: 's', datatype: 'BYTES', shape: [2], data: [Buffer.from('hé'), Uint8Array.from([0xff])] };
    const raw = { name: 'img_bytes', datatype: 'BYTES', shape: [2], data: [Buffer.from('ok'), Buffer.from('ok')] };
    expect(JSON.parse(encodePredictResponse(response([s, raw]), 'row', 2)).predictions).toEqual([
      { s: 'hé', img_bytes: { b64: 'b2s=' } },
      { s: { b64: '/w==' }, img_bytes: { b64: 'b2s=' } },
    ]);
  });

  it('refuses to split an output that has no row per instance: a 400 naming the columnar format', () => {
    const y = { name: 'y', datatype: 'FP32', shape: [1, 4], data: new Float32Array(4) };
    expect(() => encodePredictResponse(response([y]), 'row', 2)).toThrow(/output 'y' has shape \[1,4\], not one row per instance \(2\)/);
    expect(() => encodePredictResponse(response([y]), 'row', 2)).toThrow(InvalidArgument);
  });

  it('refuses more than MAX_BYTES_ELEMENTS strings over the request (PayloadTooLarge), counted across inputs', () => {
    const half = new Array(MAX_BYTES_ELEMENTS / 2 + 1).fill('');
    expect(() => decodePredictRequest({ inputs: { a: half, b: half } }, [], 'm')).toThrow(PayloadTooLarge);
    expect(() => decodePredictRequest({ inputs: { a: half, b: half } }, [], 'm')).toThrow(/BYTES tensors have more than 2097152 elements \(2097154 so far\)/);
  });
});
