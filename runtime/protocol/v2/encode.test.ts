import { describe, expect, it } from 'vitest';
import { toHalf } from '../../core/datatypes.js';
import { Internal, InvalidArgument } from '../../core/errors.js';
import type { InferResponse } from '../../core/infer.js';
import type { Tensor } from '../../core/tensor.js';
import { encodeInferResponse, encodeJson } from './encode.js';
import type { BinaryOutputPrefs } from './decode.js';
import { framed, le } from '../../../test/helpers/v2-bodies.js';

const jsonPrefs: BinaryOutputPrefs = { all: false, byName: new Map() };
const allBinary: BinaryOutputPrefs = { all: true, byName: new Map() };
const enc = new TextEncoder();

function response(outputs: Tensor[], extra: Partial<InferResponse> = {}): InferResponse {
  return { modelName: 'm', outputs, ...extra };
}

function parseJsonBody(body: Uint8Array | string): any {
  expect(typeof body).toBe('string');
  return JSON.parse(body as string);
}

/** Splits a binary response by its Inference-Header-Content-Length header. */
function splitBinary(res: { body: Uint8Array | string; headers: Record<string, string> }) {
  expect(res.body).toBeInstanceOf(Uint8Array);
  const body = res.body as Uint8Array;
  const n = Number(res.headers['Inference-Header-Content-Length']);
  return { header: JSON.parse(new TextDecoder().decode(body.subarray(0, n))), binary: body.subarray(n) };
}

describe('encodeInferResponse: JSON', () => {
  it('the spec example: FP32 [3,2], flat data, application/json', () => {
    const res = encodeInferResponse(
      response([{ name: 'output0', datatype: 'FP32', shape: [3, 2], data: new Float32Array([1, 1.5, 2, 2.5, 3, 3.5]) }], { id: '42' }),
      jsonPrefs,
    );
    expect(res.headers).toEqual({ 'Content-Type': 'application/json' });
    expect(parseJsonBody(res.body)).toEqual({
      model_name: 'm',
      id: '42',
      outputs: [{ name: 'output0', datatype: 'FP32', shape: [3, 2], data: [1, 1.5, 2, 2.5, 3, 3.5] }],
    });
  });

  it('only fields with information: no id, version, empty parameters or nulls', () => {
    const res = encodeInferResponse(
      response([{ name: 'y', datatype: 'INT8', shape: [1], data: new Int8Array([3]), parameters: {} }], { parameters: {} }),
      jsonPrefs,
    );
    const text = res.body as string;
    expect(text).not.toMatch(/null|"id"|model_version|parameters/);
    expect(JSON.parse(text)).toEqual({ model_name: 'm', outputs: [{ name: 'y', datatype: 'INT8', shape: [1], data: [3] }] });
  });

  it('model_version and parameters when present', () => {
    const res = encodeInferResponse(
      response([{ name: 'y', datatype: 'INT8', shape: [1], data: new Int8Array([3]), parameters: { content_type: 'np' } }], {
        modelVersion: '2',
        parameters: { elapsed: 3 },
      }),
      jsonPrefs,
    );
    const body = parseJsonBody(res.body);
    expect(body.model_version).toBe('2');
    expect(body.parameters).toEqual({ elapsed: 3 });
    expect(body.outputs[0].parameters).toEqual({ content_type: 'np' });
    expect(Object.keys(body)).toEqual(['model_name', 'model_version', 'parameters', 'outputs']);
  });

  it('every datatype as flat JSON', () => {
    const outputs: Tensor[] = [
      { name: 'bool', datatype: 'BOOL', shape: [2, 1], data: new Uint8Array([1, 0]) },
      { name: 'u8', datatype: 'UINT8', shape: [2], data: new Uint8Array([0, 255]) },
      { name: 'u16', datatype: 'UINT16', shape: [1], data: new Uint16Array([65535]) },
      { name: 'u32', datatype: 'UINT32', shape: [1], data: new Uint32Array([4294967295]) },
      { name: 'u64', datatype: 'UINT64', shape: [1], data: new BigUint64Array([18446744073709551615n]) },
      { name: 'i8', datatype: 'INT8', shape: [1], data: new Int8Array([-128]) },
      { name: 'i16', datatype: 'INT16', shape: [1], data: new Int16Array([-32768]) },
      { name: 'i32', datatype: 'INT32', shape: [1], data: new Int32Array([-2147483648]) },
      { name: 'i64', datatype: 'INT64', shape: [2], data: new BigInt64Array([-9223372036854775808n, 3n]) },
      { name: 'f16', datatype: 'FP16', shape: [2], data: new Uint16Array([toHalf(0.5), toHalf(-65504)]) },
      { name: 'f32', datatype: 'FP32', shape: [1], data: new Float32Array([0.1]) },
      { name: 'f64', datatype: 'FP64', shape: [2], data: new Float64Array([1e-7, 1e300]) },
      { name: 'bytes', datatype: 'BYTES', shape: [2], data: [enc.encode('héllo'), enc.encode('')] },
    ];
    const text = encodeInferResponse(response(outputs), jsonPrefs).body as string;
    // 64-bit integers keep every digit as JSON numbers.
    expect(text).toContain('"data":[18446744073709551615]');
    expect(text).toContain('"data":[-9223372036854775808,3]');
    const data = Object.fromEntries(JSON.parse(text).outputs.map((o: any) => [o.name, o.data]));
    expect(data).toEqual({
      bool: [true, false],
      u8: [0, 255],
      u16: [65535],
      u32: [4294967295],
      u64: [18446744073709551615],
      i8: [-128],
      i16: [-32768],
      i32: [-2147483648],
      i64: [-9223372036854775808, 3],
      f16: [0.5, -65504],
      f32: [Math.fround(0.1)],
      f64: [1e-7, 1e300],
      bytes: ['héllo', ''],
    });
  });

  it('NaN and infinities as strings (JSON has no such numbers)', () => {
    const text = encodeInferResponse(
      response([{ name: 'y', datatype: 'FP32', shape: [4], data: new Float32Array([NaN, Infinity, -Infinity, 1]) }]),
      jsonPrefs,
    ).body as string;
    expect(JSON.parse(text).outputs[0].data).toEqual(['NaN', 'Infinity', '-Infinity', 1]);
  });

  it('FP32 and FP64 data as the shortest round-trip digits of every value, exactly; a non-finite value anywhere switches to strings', () => {
    // Seeded bit patterns: every exponent, subnormals and -0 included (NaN/Inf patterns skipped here).
    let x = 0x9e3779b9;
    const bits = new Uint32Array(5000);
    for (let i = 0; i < bits.length; i++) {
      x ^= x << 13;
      x >>>= 0;
      x ^= x >>> 17;
      x ^= x << 5;
      x >>>= 0;
      bits[i] = (x >>> 23) % 256 === 255 ? x & 0x807fffff : x;
    }
    bits[0] = 0x80000000; // -0
    bits[1] = 0x00000001; // the smallest subnormal
    const f32 = new Float32Array(bits.buffer);
    const f64 = Float64Array.from(f32, (v, i) => v * 2 ** ((i % 600) - 300));
    for (const [datatype, data] of [['FP32', f32], ['FP64', f64]] as const) {
      const text = encodeInferResponse(response([{ name: 'y', datatype, shape: [data.length], data }]), jsonPrefs).body as string;
      const out = JSON.parse(text).outputs[0].data as number[];
      expect(text).toContain(`"data":[${Array.from(data, (v) => String(Object.is(v, -0) ? 0 : v)).join(',')}]`);
      expect(datatype === 'FP32' ? Float32Array.from(out) : Float64Array.from(out)).toEqual(data.map((v) => (Object.is(v, -0) ? 0 : v)));
    }
    const late = Float32Array.from(f32.subarray(0, 100));
    late[99] = -Infinity;
    const text = encodeInferResponse(response([{ name: 'y', datatype: 'FP32', shape: [100], data: late }]), jsonPrefs).body as string;
    const out = JSON.parse(text).outputs[0].data as (number | string)[];
    expect(out[99]).toBe('-Infinity');
    expect(out.slice(0, 99)).toEqual(Array.from(late.subarray(0, 99), (v) => (Object.is(v, -0) ? 0 : v)));
  });

  it('a non-UTF-8 BYTES output asked for as JSON is InvalidArgument that says to ask for binary', () => {
    const t: Tensor = { name: 'b', datatype: 'BYTES', shape: [1], data: [new Uint8Array([0xff])] };
    expect(() => encodeInferResponse(response([t]), jsonPrefs)).toThrow(InvalidArgument);
    expect(() => encodeInferResponse(response([t]), jsonPrefs)).toThrow(/output 'b': BYTES element 0 is not valid UTF-8.*binary_data: true/);
    expect(() => encodeInferResponse(response([t]), allBinary)).not.toThrow();
  });

  it('a malformed backend output is Internal, not a client error', () => {
    const t: Tensor = { name: 'y', datatype: 'FP32', shape: [3], data: new Float32Array(2) };
    expect(() => encodeInferResponse(response([t]), jsonPrefs)).toThrow(Internal);
    const wrongType: Tensor = { name: 'y', datatype: 'FP32', shape: [2], data: new Float64Array(2) };
    expect(() => encodeInferResponse(response([wrongType]), jsonPrefs)).toThrow(/malformed output.*does not match datatype FP32/);
  });
});

describe('encodeInferResponse: binary', () => {
  it('the spec example: output0 FP32 [3,2] as 24 binary bytes', () => {
    const res = encodeInferResponse(
      response([{ name: 'output0', datatype: 'FP32', shape: [3, 2], data: new Float32Array([1, 1.5, 2, 2.5, 3, 3.5]) }]),
      { all: false, byName: new Map([['output0', true]]) },
    );
    expect(res.headers['Content-Type']).toBe('application/octet-stream');
    const { header, binary } = splitBinary(res);
    expect(header).toEqual({
      model_name: 'm',
      outputs: [{ name: 'output0', datatype: 'FP32', shape: [3, 2], parameters: { binary_data_size: 24 } }],
    });
    expect([...binary]).toEqual([...le('f32', [1, 1.5, 2, 2.5, 3, 3.5])]);
  });

  it('mixes JSON and binary outputs; per-output binary_data overrides binary_data_output', () => {
    const outputs: Tensor[] = [
      { name: 'a', datatype: 'INT16', shape: [2], data: new Int16Array([-1, 2]) },
      { name: 'b', datatype: 'INT32', shape: [1], data: new Int32Array([9]) },
      { name: 'c', datatype: 'BYTES', shape: [2], data: [enc.encode('hi'), new Uint8Array([0xff])] },
    ];
    const res = encodeInferResponse(response(outputs), { all: true, byName: new Map([['b', false]]) });
    const { header, binary } = splitBinary(res);
    expect(header.outputs[0]).toEqual({ name: 'a', datatype: 'INT16', shape: [2], parameters: { binary_data_size: 4 } });
    expect(header.outputs[1]).toEqual({ name: 'b', datatype: 'INT32', shape: [1], data: [9] });
    expect(header.outputs[2].parameters).toEqual({ binary_data_size: 4 + 2 + 4 + 1 });
    expect([...binary]).toEqual([...le('i16', [-1, 2]), ...framed(['hi', new Uint8Array([0xff])])]);
  });

  it('BOOL bytes on the wire are exactly 0 or 1', () => {
    const res = encodeInferResponse(response([{ name: 'b', datatype: 'BOOL', shape: [3], data: new Uint8Array([0, 5, 1]) }]), allBinary);
    expect([...splitBinary(res).binary]).toEqual([0, 1, 1]);
  });

  it('a stale binary_data_size parameter on a JSON output is dropped', () => {
    const res = encodeInferResponse(
      response([{ name: 'y', datatype: 'INT8', shape: [1], data: new Int8Array([1]), parameters: { binary_data_size: 99 } }]),
      jsonPrefs,
    );
    expect(parseJsonBody(res.body).outputs[0].parameters).toBeUndefined();
  });
});

describe('encodeJson', () => {
  it('drops null fields, writes BigInt and typed arrays', () => {
    expect(JSON.parse(encodeJson({ a: null, b: 1n, c: 2n ** 60n, d: new Int32Array([1, 2]), e: [null, 1], f: undefined }))).toEqual({
      b: 1,
      c: '1152921504606846976',
      d: [1, 2],
      e: [null, 1],
    });
  });
});

describe('encodeInferResponse: large tensors (speed is measured by npm run bench)', () => {
  it('encodes a 1×3×224×224 FP32 output as JSON and as binary', () => {
    const n = 3 * 224 * 224;
    const data = new Float32Array(n);
    for (let i = 0; i < n; i++) data[i] = ((i % 255) - 127) / 128;
    const res = response([{ name: 'y', datatype: 'FP32', shape: [1, 3, 224, 224], data }]);
    const text = encodeInferResponse(res, jsonPrefs).body as string;
    const parsed = JSON.parse(text) as { outputs: { data: number[] }[] };
    expect(parsed.outputs[0]!.data.length).toBe(n);
    for (const i of [0, 1, n >> 1, n - 1]) expect(parsed.outputs[0]!.data[i]).toBe(data[i]);
    const bin = encodeInferResponse(res, allBinary);
    const header = Number(bin.headers['Inference-Header-Content-Length']);
    const body = bin.body as Uint8Array;
    expect(body.byteLength).toBe(header + n * 4);
    expect(new Float32Array(body.slice(header).buffer)).toEqual(data);
  });
});
