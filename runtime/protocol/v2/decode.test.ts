import { describe, expect, it } from 'vitest';
import { fromHalf, toHalf } from '../../core/datatypes.js';
import { InvalidArgument, PayloadTooLarge, Unsupported } from '../../core/errors.js';
import type { TensorSpec } from '../../core/tensor.js';
import { decodeInferRequest, MAX_BYTES_ELEMENTS, type DecodeOptions } from './decode.js';
import { binaryBody, framed, jsonBody, le } from '../../../test/helpers/v2-bodies.js';

const opts: DecodeOptions = { modelName: 'm' };

function decodeJson(value: unknown, extra: Partial<DecodeOptions> = {}) {
  return decodeInferRequest(jsonBody(value), { ...opts, ...extra });
}

function input(datatype: string, shape: number[], data: unknown, extra: object = {}) {
  return { inputs: [{ name: 'x', datatype, shape, data, ...extra }] };
}

function errorOf(fn: () => unknown): Error {
  try {
    fn();
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected a throw');
}

describe('decodeInferRequest: JSON data per datatype', () => {
  it('BOOL: true/false → 0/1 bytes', () => {
    const t = decodeJson(input('BOOL', [3], [true, false, true])).request.inputs[0]!;
    expect(t.data).toBeInstanceOf(Uint8Array);
    expect([...(t.data as Uint8Array)]).toEqual([1, 0, 1]);
  });

  it.each([
    ['UINT8', Uint8Array, [0, 7, 255]],
    ['UINT16', Uint16Array, [0, 1000, 65535]],
    ['UINT32', Uint32Array, [0, 70000, 4294967295]],
    ['INT8', Int8Array, [-128, 0, 127]],
    ['INT16', Int16Array, [-32768, 5, 32767]],
    ['INT32', Int32Array, [-2147483648, 42, 2147483647]],
    ['FP64', Float64Array, [0.1, -2.5e300, 3]],
  ] as const)('%s', (datatype, ctor, values) => {
    const t = decodeJson(input(datatype, [3], values)).request.inputs[0]!;
    expect(t.data).toBeInstanceOf(ctor);
    expect(Array.from(t.data as ArrayLike<number>)).toEqual(values);
  });

  it('FP32 rounds to single precision', () => {
    const t = decodeJson(input('FP32', [2], [0.1, -1e10])).request.inputs[0]!;
    expect(t.data).toBeInstanceOf(Float32Array);
    expect([...(t.data as Float32Array)]).toEqual([Math.fround(0.1), Math.fround(-1e10)]);
  });

  it('FP16: numbers → half bits', () => {
    const values = [0.5, -2, 65504, 1 / 3];
    const t = decodeJson(input('FP16', [4], values)).request.inputs[0]!;
    expect(t.data).toBeInstanceOf(Uint16Array);
    const bits = [...(t.data as Uint16Array)];
    expect(bits).toEqual(values.map(toHalf));
    expect(bits.slice(0, 3).map(fromHalf)).toEqual([0.5, -2, 65504]);
  });

  it('FP: "NaN", "Infinity", "-Infinity" strings', () => {
    const t = decodeJson(input('FP64', [3], ['NaN', 'Infinity', '-Infinity'])).request.inputs[0]!;
    const d = t.data as Float64Array;
    expect(Number.isNaN(d[0])).toBe(true);
    expect(d[1]).toBe(Infinity);
    expect(d[2]).toBe(-Infinity);
  });

  it('INT64/UINT64: numbers and decimal strings beyond 2^53 → exact BigInts', () => {
    const i64 = decodeJson(input('INT64', [3], [-5, '9223372036854775807', '-9223372036854775808'])).request.inputs[0]!;
    expect(i64.data).toBeInstanceOf(BigInt64Array);
    expect([...(i64.data as BigInt64Array)]).toEqual([-5n, 9223372036854775807n, -9223372036854775808n]);
    const u64 = decodeJson(input('UINT64', [2], [7, '18446744073709551615'])).request.inputs[0]!;
    expect(u64.data).toBeInstanceOf(BigUint64Array);
    expect([...(u64.data as BigUint64Array)]).toEqual([7n, 18446744073709551615n]);
  });

  it('BYTES: strings → UTF-8 byte strings', () => {
    const t = decodeJson(input('BYTES', [2], ['héllo', ''])).request.inputs[0]!;
    const d = t.data as Uint8Array[];
    expect(new TextDecoder().decode(d[0])).toBe('héllo');
    expect(d[0]!.byteLength).toBe(6);
    expect(d[1]!.byteLength).toBe(0);
  });
});

describe('decodeInferRequest: nested data', () => {
  it('nested and flat give the same tensor', () => {
    const flat = decodeJson(input('INT32', [2, 2, 2], [1, 2, 3, 4, 5, 6, 7, 8])).request.inputs[0]!;
    const nested = decodeJson(input('INT32', [2, 2, 2], [[[1, 2], [3, 4]], [[5, 6], [7, 8]]])).request.inputs[0]!;
    expect([...(nested.data as Int32Array)]).toEqual([...(flat.data as Int32Array)]);
    expect(nested.shape).toEqual([2, 2, 2]);
  });

  it('BYTES and BOOL nest too', () => {
    const b = decodeJson(input('BYTES', [2, 1], [['a'], ['b']])).request.inputs[0]!;
    expect((b.data as Uint8Array[]).map((x) => new TextDecoder().decode(x))).toEqual(['a', 'b']);
    const bool = decodeJson(input('BOOL', [1, 2], [[false, true]])).request.inputs[0]!;
    expect([...(bool.data as Uint8Array)]).toEqual([0, 1]);
  });

  it('nested data with the wrong element count names the input', () => {
    const err = errorOf(() => decodeJson(input('FP32', [2, 2], [[1, 2], [3]])));
    expect(err).toBeInstanceOf(InvalidArgument);
    expect(err.message).toMatch(/input 'x' \(inputs\[0\]\): shape \[2,2\] needs 4 elements, data has 3/);
  });

  it('too many nested elements', () => {
    const err = errorOf(() => decodeJson(input('FP32', [2], [[1, 2], [3, 4]])));
    expect(err.message).toMatch(/needs 2 elements, data has more than 2/);
  });

  it('a nested array where a flat element is expected', () => {
    const err = errorOf(() => decodeJson(input('FP32', [2], [1, [2]])));
    expect(err).toBeInstanceOf(InvalidArgument);
    expect(err.message).toMatch(/element 1 is a nested array/);
  });

  it('nesting deeper than 64 levels is refused, not a stack overflow', () => {
    // JSON.stringify itself overflows at this depth: write the text by hand.
    const deep = '['.repeat(100_000) + '1' + ']'.repeat(100_000);
    const text = `{"inputs":[{"name":"x","datatype":"FP32","shape":[2],"data":${deep}}]}`;
    const err = errorOf(() => decodeInferRequest(new TextEncoder().encode(text), opts));
    expect(err).toBeInstanceOf(InvalidArgument);
    expect(err.message).toMatch(/nested deeper than 64/);
  });

  it('a deeply nested value where a datatype belongs is refused by its kind, not a stack overflow (was a 500)', () => {
    const deep = '['.repeat(100_000) + ']'.repeat(100_000);
    const text = `{"inputs":[{"name":"x","datatype":${deep},"shape":[1],"data":[1]}]}`;
    const err = errorOf(() => decodeInferRequest(new TextEncoder().encode(text), opts));
    expect(err).toBeInstanceOf(InvalidArgument);
    expect(err.message).toMatch(/^inputs\[0\]\.datatype: expected one of BOOL, .*, got an array of 1$/);
  });
});

describe('decodeInferRequest: envelope', () => {
  it('echoes id, keeps parameters, requested outputs and model name/version', () => {
    const { request, binaryOutputs } = decodeJson(
      {
        id: '42',
        parameters: { priority: 2, tag: 'a' },
        inputs: [{ name: 'x', datatype: 'INT32', shape: [1], data: [1], parameters: { content_type: 'np' } }],
        outputs: [{ name: 'y' }, { name: 'z', parameters: { binary_data: true, classification: 2 } }],
        model_name: 'ignored',
        unknown_field: { anything: 1 },
      },
      { modelVersion: '3' },
    );
    expect(request.id).toBe('42');
    expect(request.modelName).toBe('m');
    expect(request.modelVersion).toBe('3');
    expect(request.parameters).toEqual({ priority: 2, tag: 'a' });
    expect(request.inputs[0]!.parameters).toEqual({ content_type: 'np' });
    expect(request.outputs).toEqual([{ name: 'y' }, { name: 'z', parameters: { binary_data: true, classification: 2 } }]);
    expect(binaryOutputs.all).toBe(false);
    expect([...binaryOutputs.byName]).toEqual([['z', true]]);
  });

  it('leaves out what was not sent (no id, no parameters, no outputs)', () => {
    const { request } = decodeJson({ inputs: [{ name: 'x', datatype: 'INT8', shape: [0], data: [] }], parameters: {} });
    expect(Object.keys(request).sort()).toEqual(['inputs', 'modelName']);
    expect(Object.keys(request.inputs[0]!).sort()).toEqual(['data', 'datatype', 'name', 'shape']);
  });

  it('null optional fields are treated as absent (KServe leniency)', () => {
    const { request } = decodeJson({ id: null, parameters: null, outputs: null, inputs: [{ name: 'x', datatype: 'INT8', shape: [1], data: [1], parameters: null }] });
    expect(request.id).toBeUndefined();
    expect(request.outputs).toBeUndefined();
  });

  it('binary_data_output on the request; binary_data false overrides it', () => {
    const { binaryOutputs } = decodeJson({
      parameters: { binary_data_output: true },
      inputs: [{ name: 'x', datatype: 'INT8', shape: [1], data: [1] }],
      outputs: [{ name: 'a', parameters: { binary_data: false } }, { name: 'b' }],
    });
    expect(binaryOutputs.all).toBe(true);
    expect(binaryOutputs.byName.get('a')).toBe(false);
    expect(binaryOutputs.byName.has('b')).toBe(false);
  });
});

describe('decodeInferRequest: binary extension', () => {
  it('the spec example: UINT32 [2,2] and BOOL [3] in the binary section', () => {
    const { body, headerLength } = binaryBody(
      {
        model_name: 'mymodel',
        inputs: [
          { name: 'input0', shape: [2, 2], datatype: 'UINT32', parameters: { binary_data_size: 16 } },
          { name: 'input1', shape: [3], datatype: 'BOOL', parameters: { binary_data_size: 3 } },
        ],
        outputs: [{ name: 'output0', parameters: { binary_data: true } }],
      },
      [le('u32', [1, 2, 3, 0xdeadbeef]), le('u8', [1, 0, 1])],
    );
    const { request, binaryOutputs } = decodeInferRequest(body, { ...opts, inferenceHeaderContentLength: headerLength, contentType: 'application/octet-stream' });
    expect([...(request.inputs[0]!.data as Uint32Array)]).toEqual([1, 2, 3, 0xdeadbeef]);
    expect([...(request.inputs[1]!.data as Uint8Array)]).toEqual([1, 0, 1]);
    expect(request.inputs[0]!.parameters).toBeUndefined();
    expect(binaryOutputs.byName.get('output0')).toBe(true);
  });

  it('every numeric datatype from little-endian bytes', () => {
    const cases = [
      ['UINT8', le('u8', [0, 255]), [0, 255]],
      ['UINT16', le('u16', [1, 65535]), [1, 65535]],
      ['UINT32', le('u32', [1, 4294967295]), [1, 4294967295]],
      ['UINT64', le('u64', [1n, 18446744073709551615n]), [1n, 18446744073709551615n]],
      ['INT8', le('i8', [-128, 127]), [-128, 127]],
      ['INT16', le('i16', [-32768, 1]), [-32768, 1]],
      ['INT32', le('i32', [-1, 2147483647]), [-1, 2147483647]],
      ['INT64', le('i64', [-9223372036854775808n, 5n]), [-9223372036854775808n, 5n]],
      ['FP16', le('u16', [toHalf(1.5), toHalf(-0.25)]), [toHalf(1.5), toHalf(-0.25)]],
      ['FP32', le('f32', [1.5, -0.25]), [1.5, -0.25]],
      ['FP64', le('f64', [0.1, -1e300]), [0.1, -1e300]],
      ['BOOL', le('u8', [0, 1]), [0, 1]],
    ] as const;
    for (const [datatype, bytes, expected] of cases) {
      const { body, headerLength } = binaryBody(
        { inputs: [{ name: 'x', datatype, shape: [2], parameters: { binary_data_size: bytes.byteLength } }] },
        [bytes],
      );
      const t = decodeInferRequest(body, { ...opts, inferenceHeaderContentLength: headerLength }).request.inputs[0]!;
      expect(Array.from(t.data as ArrayLike<number | bigint>), datatype).toEqual(expected);
    }
  });

  it('BYTES elements are 4-byte little-endian length prefixed, including non-UTF-8 bytes', () => {
    const raw = new Uint8Array([0xff, 0x00, 0xfe]);
    const section = framed(['ab', raw, '']);
    const { body, headerLength } = binaryBody(
      { inputs: [{ name: 's', datatype: 'BYTES', shape: [3], parameters: { binary_data_size: section.byteLength } }] },
      [section],
    );
    const d = decodeInferRequest(body, { ...opts, inferenceHeaderContentLength: headerLength }).request.inputs[0]!.data as Uint8Array[];
    expect(d.map((e) => [...e])).toEqual([[97, 98], [0xff, 0x00, 0xfe], []]);
  });

  it('mixed: JSON inputs and binary inputs in one request, binary taken in order', () => {
    const { body, headerLength } = binaryBody(
      {
        inputs: [
          { name: 'a', datatype: 'FP32', shape: [2], parameters: { binary_data_size: 8 } },
          { name: 'b', datatype: 'INT32', shape: [2], data: [7, 8] },
          { name: 'c', datatype: 'INT16', shape: [1], parameters: { binary_data_size: 2, other: 'kept' } },
        ],
      },
      [le('f32', [1.25, 2.5]), le('i16', [-3])],
    );
    const { request } = decodeInferRequest(body, { ...opts, inferenceHeaderContentLength: headerLength });
    expect([...(request.inputs[0]!.data as Float32Array)]).toEqual([1.25, 2.5]);
    expect([...(request.inputs[1]!.data as Int32Array)]).toEqual([7, 8]);
    expect([...(request.inputs[2]!.data as Int16Array)]).toEqual([-3]);
    expect(request.inputs[2]!.parameters).toEqual({ other: 'kept' });
  });

  it('aligned binary data is a view into the body, not a copy', () => {
    const header = { inputs: [{ name: 'x', datatype: 'FP32', shape: [4], parameters: { binary_data_size: 16 } }] };
    // Pad the JSON with spaces so the binary section starts on a 4-byte boundary.
    let text = JSON.stringify(header);
    while (text.length % 4 !== 0) text += ' ';
    const head = new TextEncoder().encode(text);
    const body = new Uint8Array(head.byteLength + 16);
    body.set(head);
    body.set(le('f32', [1, 2, 3, 4]), head.byteLength);
    const t = decodeInferRequest(body, { ...opts, inferenceHeaderContentLength: String(head.byteLength) }).request.inputs[0]!;
    const d = t.data as Float32Array;
    expect(d.buffer).toBe(body.buffer);
    expect(d.byteOffset).toBe(head.byteLength);
    expect([...d]).toEqual([1, 2, 3, 4]);
  });

  it('unaligned binary data is copied and still correct', () => {
    const { body, headerLength } = binaryBody(
      { inputs: [{ name: 'x', datatype: 'FP64', shape: [1], parameters: { binary_data_size: 8 } }], pad: 'x' },
      [le('f64', [Math.PI])],
    );
    const offset = Number(headerLength);
    const t = decodeInferRequest(body, { ...opts, inferenceHeaderContentLength: headerLength }).request.inputs[0]!;
    expect([...(t.data as Float64Array)]).toEqual([Math.PI]);
    if (offset % 8 !== 0) expect((t.data as Float64Array).buffer).not.toBe(body.buffer);
  });

  it('a header length with JSON only and no binary section is fine', () => {
    const body = jsonBody(input('INT8', [1], [1]));
    const { request } = decodeInferRequest(body, { ...opts, inferenceHeaderContentLength: String(body.byteLength) });
    expect([...(request.inputs[0]!.data as Int8Array)]).toEqual([1]);
  });
});

describe('decodeInferRequest: raw-input mode (header 0)', () => {
  const raw = (bytes: Uint8Array, spec: TensorSpec | undefined) =>
    decodeInferRequest(bytes, { ...opts, inferenceHeaderContentLength: '0', rawInput: () => spec });

  it('fixed shape from the spec; every output becomes binary', () => {
    const { request, binaryOutputs } = raw(le('f32', [1, 2, 3, 4]), { name: 'in', datatype: 'FP32', shape: [2, 2] });
    expect(request.inputs[0]!.name).toBe('in');
    expect(request.inputs[0]!.shape).toEqual([2, 2]);
    expect([...(request.inputs[0]!.data as Float32Array)]).toEqual([1, 2, 3, 4]);
    expect(binaryOutputs.all).toBe(true);
  });

  it('one -1 dim is inferred from the byte count', () => {
    const { request } = raw(le('u8', [...Array(12).keys()]), { name: 'in', datatype: 'UINT8', shape: [-1, 2, 3] });
    expect(request.inputs[0]!.shape).toEqual([2, 2, 3]);
  });

  it('BYTES: the whole body is the one element', () => {
    const { request } = raw(new Uint8Array([1, 2, 3]), { name: 'in', datatype: 'BYTES', shape: [-1] });
    expect(request.inputs[0]!.shape).toEqual([1]);
    expect([...(request.inputs[0]!.data as Uint8Array[])[0]!]).toEqual([1, 2, 3]);
  });

  it.each([
    ['no single input', le('f32', [1]), undefined, /needs a model with exactly one input/],
    ['two variable dims', le('f32', [1, 2]), { name: 'in', datatype: 'FP32', shape: [-1, -1] }, /2 variable dims/],
    ['not a multiple', le('f32', [1, 2, 3]), { name: 'in', datatype: 'FP32', shape: [-1, 2] }, /not a multiple of the 2/],
    ['fixed shape mismatch', le('f32', [1, 2, 3]), { name: 'in', datatype: 'FP32', shape: [4] }, /holds 3 elements, shape \[4\] needs 4/],
    ['partial element', new Uint8Array(6), { name: 'in', datatype: 'FP32', shape: [-1] }, /not a whole, non-zero number of FP32/],
    ['empty body', new Uint8Array(0), { name: 'in', datatype: 'FP32', shape: [-1] }, /not a whole, non-zero number/],
    ['BYTES not [1]', new Uint8Array(3), { name: 'in', datatype: 'BYTES', shape: [2] }, /raw BYTES input must have shape \[1\]/],
    ['BOOL not 0/1', new Uint8Array([2]), { name: 'in', datatype: 'BOOL', shape: [1] }, /BOOL byte 0 is 2/],
  ] as const)('%s → InvalidArgument', (_label, bytes, spec, message) => {
    const err = errorOf(() => raw(bytes, spec as TensorSpec | undefined));
    expect(err).toBeInstanceOf(InvalidArgument);
    expect(err.message).toMatch(message);
  });
});

describe('decodeInferRequest: malformed requests are InvalidArgument naming the field', () => {
  const ok = { name: 'x', datatype: 'FP32', shape: [2], data: [1, 2] };
  const cases: [string, unknown, RegExp][] = [
    ['missing inputs', { outputs: [] }, /^inputs: required/],
    ['inputs not a list', { inputs: {} }, /^inputs: expected a list/],
    ['body not an object', [1, 2], /^\(body\): expected a JSON object/],
    ['bad datatype', { inputs: [ok, { ...ok, datatype: 'FLOAT' }] }, /^inputs\[1\]\.datatype: expected one of BOOL, .*got "FLOAT"/],
    ['shape not a list', { inputs: [ok, { ...ok, shape: 2 }] }, /^inputs\[1\]\.shape: expected a list of non-negative integers/],
    ['negative dim', { inputs: [{ ...ok, shape: [-2] }] }, /^inputs\[0\]\.shape\[0\]: expected a non-negative integer/],
    ['fractional dim', { inputs: [{ ...ok, shape: [1.5] }] }, /^inputs\[0\]\.shape\[0\]/],
    ['name not a string', { inputs: [{ ...ok, name: 3 }] }, /^inputs\[0\]\.name: expected a string/],
    ['id not a string', { id: 5, inputs: [ok] }, /^id: expected a string/],
    ['parameters not an object', { parameters: 'x', inputs: [ok] }, /^parameters: expected an object/],
    ['parameter value an object', { inputs: [{ ...ok, parameters: { a: { b: 1 } } }] }, /^inputs\[0\]\.parameters\.a: expected a string, number or boolean/],
    ['output without name', { inputs: [ok], outputs: [{}] }, /^outputs\[0\]\.name: expected a string/],
    ['data missing', { inputs: [{ name: 'x', datatype: 'FP32', shape: [2] }] }, /input 'x' \(inputs\[0\]\) data: expected an array/],
    ['data not an array', { inputs: [{ ...ok, data: 'abc' }] }, /input 'x' \(inputs\[0\]\) data: expected an array/],
    ['shape/data mismatch', { inputs: [{ ...ok, shape: [3] }] }, /input 'x' \(inputs\[0\]\): shape \[3\] needs 3 elements, data has 2/],
    ['string in FP32', { inputs: [{ ...ok, data: [1, 'a'] }] }, /input 'x' \(inputs\[0\]\): element 1: expected a number for FP32, got "a"/],
    ['1.5 in INT32', { inputs: [{ ...ok, datatype: 'INT32', data: [1, 1.5] }] }, /element 1: expected an integer in \[-2147483648, 2147483647\] for INT32, got 1\.5/],
    ['300 in UINT8', { inputs: [{ ...ok, datatype: 'UINT8', data: [300, 1] }] }, /element 0: expected an integer in \[0, 255\] for UINT8, got 300/],
    ['-1 in UINT32', { inputs: [{ ...ok, datatype: 'UINT32', data: [1, -1] }] }, /element 1: expected an integer in \[0, 4294967295\]/],
    ['number in BOOL', { inputs: [{ ...ok, datatype: 'BOOL', data: [1, 0] }] }, /element 0: expected true or false for BOOL, got 1/],
    ['number in BYTES', { inputs: [{ ...ok, datatype: 'BYTES', data: ['a', 1] }] }, /element 1: expected a string for BYTES, got 1/],
    ['null in FP64', { inputs: [{ ...ok, datatype: 'FP64', data: [null, 1] }] }, /element 0: expected a number for FP64, got null/],
    ['object in FP16', { inputs: [{ ...ok, datatype: 'FP16', data: [{}, 1] }] }, /element 0: expected a number for FP16, got an object/],
    ['INT64 out of range', { inputs: [{ ...ok, datatype: 'INT64', data: ['9223372036854775808', 1] }] }, /element 0: expected an integer in \[-9223372036854775808, 9223372036854775807\]/],
    ['UINT64 negative', { inputs: [{ ...ok, datatype: 'UINT64', data: [-1, 1] }] }, /element 0: expected an integer in \[0, 18446744073709551615\]/],
    ['INT64 unsafe number', { inputs: [{ ...ok, datatype: 'INT64', data: [2 ** 60, 1] }] }, /element 0: .* beyond 2\^53 .* decimal string/],
    ['INT64 bad string', { inputs: [{ ...ok, datatype: 'INT64', data: ['12a', 1] }] }, /element 0: expected an integer \(or decimal string\) for INT64/],
    ['duplicate input', { inputs: [ok, ok] }, /^inputs\[1\]\.name: duplicate input 'x'/],
    ['duplicate output', { inputs: [ok], outputs: [{ name: 'y' }, { name: 'y' }] }, /^outputs\[1\]\.name: duplicate output 'y'/],
    ['binary_data_output not boolean', { parameters: { binary_data_output: 'yes' }, inputs: [ok] }, /^parameters\.binary_data_output: expected a boolean, got "yes"/],
    ['binary_data not boolean', { inputs: [ok], outputs: [{ name: 'y', parameters: { binary_data: 1 } }] }, /^outputs\[0\]\.parameters\.binary_data: expected a boolean, got 1/],
    ['binary_data_size without the header', { inputs: [{ name: 'x', datatype: 'FP32', shape: [1], parameters: { binary_data_size: 4 } }] }, /binary_data_size given but the Inference-Header-Content-Length header is missing/],
  ];
  it.each(cases)('%s', (_label, value, message) => {
    const err = errorOf(() => decodeJson(value));
    expect(err).toBeInstanceOf(InvalidArgument);
    expect(err.message).toMatch(message);
  });

  it.each([
    ['empty body', '', /request body is empty/],
    ['bad JSON', '{"inputs": [', /request body is not valid JSON/],
    ['not JSON at all', 'hello', /request body is not valid JSON/],
  ])('%s', (_label, text, message) => {
    const err = errorOf(() => decodeInferRequest(new TextEncoder().encode(text), opts));
    expect(err).toBeInstanceOf(InvalidArgument);
    expect(err.message).toMatch(message);
  });

  it('invalid UTF-8 JSON', () => {
    const err = errorOf(() => decodeInferRequest(new Uint8Array([0x7b, 0xff, 0x7d]), opts));
    expect(err).toBeInstanceOf(InvalidArgument);
    expect(err.message).toMatch(/not valid UTF-8/);
  });

  it('a JSON body that is a view into a larger buffer (as the server reads bodies) is decoded from its own bytes, ASCII or not', () => {
    for (const id of ['plain', 'héllo €']) {
      const json = new TextEncoder().encode(JSON.stringify({ id, inputs: [{ name: 'x', shape: [2], datatype: 'FP32', data: [0.5, -1.25] }] }));
      const backing = new Uint8Array(json.byteLength + 16).fill(0xff); // invalid UTF-8 and not JSON on both sides
      backing.set(json, 8);
      const { request } = decodeInferRequest(backing.subarray(8, 8 + json.byteLength), opts);
      expect(request.id).toBe(id);
      expect(request.inputs[0]!.data).toEqual(new Float32Array([0.5, -1.25]));
    }
  });

  it('binary body without the header gets a hint', () => {
    const err = errorOf(() => decodeInferRequest(le('f32', [1, 2]), { ...opts, contentType: 'application/octet-stream' }));
    expect(err.message).toMatch(/needs the Inference-Header-Content-Length header/);
  });

  it('a shape whose element count overflows is InvalidArgument, in JSON and binary (BYTES of size 0)', () => {
    const shape = [...new Array(20).fill(Number.MAX_SAFE_INTEGER), 0]; // Infinity × 0 = NaN elements
    const json = errorOf(() => decodeJson(input('FP32', shape, [])));
    expect(json).toBeInstanceOf(InvalidArgument);
    expect(json.message).toMatch(/inputs\[0\]\).*more elements than can be counted exactly/);
    const b = binaryBody({ inputs: [{ name: 'x', datatype: 'BYTES', shape, parameters: { binary_data_size: 0 } }] }, []);
    const bin = errorOf(() => decodeInferRequest(b.body, { ...opts, inferenceHeaderContentLength: b.headerLength }));
    expect(bin).toBeInstanceOf(InvalidArgument);
    expect(bin.message).toMatch(/more elements than can be counted exactly/);
  });

  it('a JSON part over maxJsonBytes is PayloadTooLarge (whole JSON body, or the binary header), before parsing', () => {
    const value = input('FP32', [4], [1, 2, 3, 4]);
    const size = jsonBody(value).byteLength;
    expect(decodeJson(value, { maxJsonBytes: size }).request.inputs[0]!.data).toEqual(Float32Array.of(1, 2, 3, 4));
    const json = errorOf(() => decodeJson(value, { maxJsonBytes: size - 1 }));
    expect(json).toBeInstanceOf(PayloadTooLarge);
    expect(json.message).toMatch(new RegExp(`JSON is ${size} bytes, over the limit of ${size - 1} \\(KINFER_MAX_JSON_BYTES\\); send large tensors with the binary extension`));
    const b = binaryBody({ inputs: [{ name: 'x', datatype: 'FP32', shape: [4], parameters: { binary_data_size: 16 } }] }, [le('f32', [1, 2, 3, 4])]);
    const header = Number(b.headerLength);
    const ok = decodeInferRequest(b.body, { ...opts, inferenceHeaderContentLength: b.headerLength, maxJsonBytes: header });
    expect(ok.request.inputs[0]!.data).toEqual(Float32Array.of(1, 2, 3, 4)); // the binary section does not count
    const bin = errorOf(() => decodeInferRequest(b.body, { ...opts, inferenceHeaderContentLength: b.headerLength, maxJsonBytes: header - 1 }));
    expect(bin).toBeInstanceOf(PayloadTooLarge);
  });

  it('more than MAX_BYTES_ELEMENTS BYTES elements over the request is PayloadTooLarge before they are made (each is an object; 16 M empty ones ran the heap out)', () => {
    const half = MAX_BYTES_ELEMENTS / 2;
    // Two BYTES inputs of 2^20 + 1 elements each, in the binary extension (4-byte empty prefixes): one over, across inputs.
    const b = binaryBody(
      { inputs: ['a', 'b'].map((name) => ({ name, datatype: 'BYTES', shape: [half + 1], parameters: { binary_data_size: 4 * (half + 1) } })) },
      [new Uint8Array(4 * (half + 1)), new Uint8Array(4 * (half + 1))],
    );
    const t0 = performance.now();
    const err = errorOf(() => decodeInferRequest(b.body, { ...opts, inferenceHeaderContentLength: b.headerLength }));
    expect(err).toBeInstanceOf(PayloadTooLarge);
    expect(err.message).toBe(`input 'b' (inputs[1]): the request's BYTES tensors have more than ${MAX_BYTES_ELEMENTS} elements (${2 * half + 2} so far); each is an object once decoded: send fewer per request`);
    expect(performance.now() - t0).toBeLessThan(2000);
    // Half of it in one input: decoded (JSON, empty strings).
    const ok = decodeJson(input('BYTES', [half], new Array(half).fill('')));
    expect((ok.request.inputs[0]!.data as Uint8Array[]).length).toBe(half);
  });

  it('shared memory parameters are Unsupported without regions, and InvalidArgument when half given', () => {
    const err = errorOf(() => decodeJson({ inputs: [{ name: 'x', datatype: 'FP32', shape: [1], parameters: { shared_memory_region: 'r', shared_memory_byte_size: 4 } }] }));
    expect(err).toBeInstanceOf(Unsupported);
    const out = errorOf(() => decodeJson({ inputs: [{ name: 'x', datatype: 'FP32', shape: [1], data: [1] }], outputs: [{ name: 'y', parameters: { shared_memory_region: 'r', shared_memory_byte_size: 4 } }] }));
    expect(out).toBeInstanceOf(Unsupported);
    const half = errorOf(() => decodeJson({ inputs: [{ name: 'x', datatype: 'FP32', shape: [1], parameters: { shared_memory_region: 'r' } }] }));
    expect(half).toBeInstanceOf(InvalidArgument);
  });

  describe('binary framing', () => {
    const header = (size: unknown, datatype = 'FP32', shape = [2]) => ({
      inputs: [{ name: 'x', datatype, shape, parameters: { binary_data_size: size } }],
    });
    const decodeBin = (value: unknown, chunks: Uint8Array[], headerLength?: string) => {
      const b = binaryBody(value, chunks);
      return decodeInferRequest(b.body, { ...opts, inferenceHeaderContentLength: headerLength ?? b.headerLength });
    };

    it.each([
      ['negative header length', '-5', /Inference-Header-Content-Length header: expected a non-negative integer, got "-5"/],
      ['non-numeric header length', 'abc', /Inference-Header-Content-Length header: expected a non-negative integer/],
      ['fractional header length', '3.5', /expected a non-negative integer/],
      ['header length beyond the body', '100000', /100000 is beyond the body length of \d+ bytes/],
      ['header length of 30 digits', '9'.repeat(30), /is beyond the body length/],
      ['header length cutting the JSON', '10', /request body is not valid JSON/],
    ])('%s', (_label, headerLength, message) => {
      const err = errorOf(() => decodeBin(header(8), [le('f32', [1, 2])], headerLength));
      expect(err).toBeInstanceOf(InvalidArgument);
      expect(err.message).toMatch(message);
    });

    it.each([
      ['size not matching shape × element size', header(4), [le('f32', [1])], /input 'x' \(inputs\[0\]\): binary_data_size 4 does not match shape \(2 elements × 4 bytes = 8\)/],
      ['sizes beyond the binary section', header(16), [le('f32', [1, 2])], /binary_data_size 16 runs past the end of the binary section \(8 bytes left\)/],
      ['bytes left over after the inputs', header(8), [le('f32', [1, 2, 3])], /binary section is 12 bytes but the inputs' binary_data_size add up to 8/],
      ['binary_data_size negative', header(-8), [le('f32', [1, 2])], /inputs\[0\]\.parameters\.binary_data_size: expected a non-negative integer, got -8/],
      ['binary_data_size a string', header('8'), [le('f32', [1, 2])], /inputs\[0\]\.parameters\.binary_data_size: expected a non-negative integer, got "8"/],
      ['both data and binary_data_size', { inputs: [{ ...header(8).inputs[0], data: [1, 2] }] }, [le('f32', [1, 2])], /has both "data" and parameters\.binary_data_size/],
      ['BOOL byte not 0/1', header(2, 'BOOL'), [new Uint8Array([1, 7])], /BOOL byte 1 is 7/],
      ['BYTES length prefix past the end', header(6, 'BYTES', [1]), [new Uint8Array([9, 0, 0, 0, 1, 2])], /BYTES element 0 says 9 bytes but only 2 remain/],
      ['BYTES too few bytes for the prefixes', header(4, 'BYTES', [2]), [framed([''])], /cannot hold 2 BYTES elements/],
      ['BYTES left over', header(7, 'BYTES', [1]), [framed(['a']), new Uint8Array([0, 0])], /2 bytes left over after 1 BYTES elements/],
      ['BYTES prefix past the end after a long element', header(8, 'BYTES', [2]), [new Uint8Array([2, 0, 0, 0, 97, 98, 1, 2])], /BYTES element 1 length prefix runs past/],
      ['BYTES truncated prefix', header(10, 'BYTES', [2]), [framed(['ab']), new Uint8Array([1, 0, 0, 0])], /BYTES element 1 says 1 bytes but only 0 remain/],
    ] as const)('%s', (_label, value, chunks, message) => {
      const err = errorOf(() => decodeBin(value, [...chunks]));
      expect(err).toBeInstanceOf(InvalidArgument);
      expect(err.message).toMatch(message);
    });
  });
});

describe('decodeInferRequest: large tensors (speed is measured by npm run bench)', () => {
  it('decodes a 1×3×224×224 FP32 JSON request, flat and nested, to the same values', () => {
    const n = 3 * 224 * 224;
    const values = Array.from({ length: n }, (_, i) => ((i % 255) - 127) / 128);
    const flatBody = jsonBody(input('FP32', [1, 3, 224, 224], values));
    const nested = [[0, 1, 2].map((c) => Array.from({ length: 224 }, (_, y) => values.slice((c * 224 + y) * 224, (c * 224 + y + 1) * 224)))];
    const nestedBody = jsonBody(input('FP32', [1, 3, 224, 224], nested));
    for (const body of [flatBody, nestedBody]) {
      const t = decodeInferRequest(body, opts).request.inputs[0]!;
      const data = t.data as Float32Array;
      expect(data.length).toBe(n);
      for (const i of [0, 1, 224, n >> 1, n - 1]) expect(data[i]).toBe(Math.fround(values[i]!));
    }
  });
});
