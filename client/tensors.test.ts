/**
 * @module client/tensors.test
 * Unit tests of the client's tensor checks and v2 body codec (no server).
 */
import { describe, expect, it } from 'vitest';
import { KinferInputError, KinferProtocolError } from './errors.js';
import { decodeInferResponse, encodeInferRequest, jsonCannotCarry, parseJsonExact, toJsonValues, toNumbers, toTensor } from './tensors.js';

describe('toTensor', () => {
  it('takes the datatype from TypedArrays, strings and booleans, and the shape from nesting', () => {
    expect(toTensor({ name: 'a', data: new Float64Array(3) })).toMatchObject({ datatype: 'FP64', shape: [3] });
    expect(toTensor({ name: 'b', data: new BigUint64Array(2) })).toMatchObject({ datatype: 'UINT64', shape: [2] });
    expect(toTensor({ name: 'c', data: [['x', 'y'], ['z', 'w']] })).toMatchObject({ datatype: 'BYTES', shape: [2, 2] });
    const t = toTensor({ name: 'd', data: [[true], [false], [true]] });
    expect(t).toMatchObject({ datatype: 'BOOL', shape: [3, 1], data: new Uint8Array([1, 0, 1]) });
  });

  it('converts numbers to the datatype, FP16 via half bits, and keeps a matching TypedArray as is', () => {
    const f = new Float32Array([1, 2]);
    expect(toTensor({ name: 'f', datatype: 'FP32', data: f }).data).toBe(f);
    expect(toTensor({ name: 'h', datatype: 'FP16', data: [1, -2, 0.5] }).data).toEqual(new Uint16Array([0x3c00, 0xc000, 0x3800]));
    expect(toTensor({ name: 'i', datatype: 'INT64', data: ['-9223372036854775808', 3] }).data).toEqual(
      new BigInt64Array([-(2n ** 63n), 3n]),
    );
  });

  it('names the input and the problem', () => {
    expect(() => toTensor({ name: 'x', datatype: 'UINT8', data: [1, 256] })).toThrow(/input 'x': element 1: expected an integer in \[0, 255\]/);
    expect(() => toTensor({ name: 'x', data: [[1, 2], [3]] as never, datatype: 'INT32' })).toThrow(/ragged/);
    expect(() => toTensor({ name: 'x', datatype: 'FLOAT' as never, data: [1] })).toThrow(KinferInputError);
    expect(() => toTensor({ name: 'x', datatype: 'INT64', data: [2 ** 60] })).toThrow(/decimal string/);
    expect(() => toTensor({ name: '', data: [1] })).toThrow(/input name/);
  });
});

describe('request and response bodies', () => {
  it('writes the binary extension: JSON header length, sizes, little-endian data and length-prefixed BYTES', () => {
    const enc = encodeInferRequest(
      [toTensor({ name: 'n', data: new Int16Array([1, -1]) }), toTensor({ name: 's', data: ['ab'] })],
      { binary: true, outputs: ['n'] },
    );
    const head = JSON.parse(Buffer.from(enc.body.subarray(0, enc.jsonLength)).toString());
    expect(enc.headers['Inference-Header-Content-Length']).toBe(String(enc.jsonLength));
    expect(head.inputs.map((i: { parameters: { binary_data_size: number } }) => i.parameters.binary_data_size)).toEqual([4, 6]);
    expect(head.parameters).toEqual({ binary_data_output: true });
    expect(head.outputs).toEqual([{ name: 'n' }]);
    expect(Array.from(enc.body.subarray(enc.jsonLength))).toEqual([1, 0, 0xff, 0xff, 2, 0, 0, 0, 0x61, 0x62]);
  });

  it('knows which values JSON numbers cannot carry (INT64 beyond 2^53, NaN, infinities): the client sends those binary', () => {
    expect(jsonCannotCarry(toTensor({ name: 'i', data: new BigInt64Array([1n, 2n ** 53n - 1n]) }))).toBe(false);
    expect(jsonCannotCarry(toTensor({ name: 'i', data: new BigInt64Array([1n, 2n ** 53n + 1n]) }))).toBe(true);
    expect(jsonCannotCarry(toTensor({ name: 'u', data: new BigUint64Array([2n ** 64n - 1n]) }))).toBe(true);
    expect(jsonCannotCarry(toTensor({ name: 'f', datatype: 'FP32', data: [1, Number.NaN] }))).toBe(true);
    expect(jsonCannotCarry(toTensor({ name: 'h', datatype: 'FP16', data: [1, Number.POSITIVE_INFINITY] }))).toBe(true);
    expect(jsonCannotCarry(toTensor({ name: 'f', datatype: 'FP64', data: [1, 2.5] }))).toBe(false);
  });

  it('decodes a mixed JSON + binary response and nested JSON data', () => {
    // Written as text: 9007199254740993 is not a JS number (2^53 + 1).
    const head =
      '{"model_name":"m","model_version":"3","id":"r1","outputs":[' +
      '{"name":"a","datatype":"FP32","shape":[2],"parameters":{"binary_data_size":8}},' +
      '{"name":"b","datatype":"INT64","shape":[2,1],"data":[[9007199254740993],[-5]]},' +
      '{"name":"c","datatype":"FP16","shape":[1],"data":[0.5]}]}';
    const bin = new Uint8Array(new Float32Array([1.5, -3]).buffer);
    const body = Buffer.concat([Buffer.from(head), bin]);
    const r = decodeInferResponse(body, String(Buffer.byteLength(head)));
    expect(r).toMatchObject({ modelName: 'm', modelVersion: '3', id: 'r1' });
    expect(r.output('a').data).toEqual(new Float32Array([1.5, -3]));
    expect(r.output('b').data).toEqual(new BigInt64Array([9007199254740993n, -5n]));
    expect(toNumbers(r.output('c'))).toEqual([0.5]);
    expect(() => r.output('z')).toThrow(/no output 'z'.*outputs: a, b, c/);
  });

  it('rejects responses that do not add up', () => {
    expect(() => decodeInferResponse(Buffer.from('{"outputs":[{"name":"a","datatype":"FP32","shape":[3],"data":[1]}]}'))).toThrow(KinferProtocolError);
    expect(() => decodeInferResponse(Buffer.from('<html>'))).toThrow(/not valid JSON/);
    expect(() => decodeInferResponse(Buffer.from('{"outputs":[]}'), '99')).toThrow(/Inference-Header-Content-Length/);
  });

  it('refuses BOOL values other than true/false/1/0, and INT64/UINT64 values other than integers and decimal strings in range', () => {
    const decode = (datatype: string, data: unknown[]) =>
      decodeInferResponse(Buffer.from(JSON.stringify({ outputs: [{ name: 'o', datatype, shape: [data.length], data }] }))).output('o').data;
    expect(decode('BOOL', [true, false, 1, 0])).toEqual(Uint8Array.of(1, 0, 1, 0));
    for (const v of ['yes', 2, null, 'true', 0.5]) {
      expect(() => decode('BOOL', [true, v])).toThrow(KinferProtocolError);
      expect(() => decode('BOOL', [true, v])).toThrow(/output 'o'.*element 1 is not a BOOL/);
    }
    expect(decode('INT64', [7, '-9223372036854775808', '9007199254740993'])).toEqual(BigInt64Array.of(7n, -(2n ** 63n), 9007199254740993n));
    expect(decode('UINT64', ['18446744073709551615', 0])).toEqual(BigUint64Array.of(2n ** 64n - 1n, 0n));
    for (const v of [true, '', ' 7', '7 ', '0x10', '1e3', 1.5, null, '9223372036854775808']) {
      expect(() => decode('INT64', [v])).toThrow(KinferProtocolError);
      expect(() => decode('INT64', [v])).toThrow(/element 0 is not a INT64/);
    }
    expect(() => decode('UINT64', [-1])).toThrow(/element 0 is not a UINT64/);
  });

  it('parseJsonExact quotes only long integer literals outside strings', () => {
    const v = parseJsonExact('{"d":"INT64","s":"12345678901234567890","x":[12345678901234567890,1.2345678901234567,-98765432109876543,1e21]}') as {
      s: string;
      x: unknown[];
    };
    expect(v.s).toBe('12345678901234567890');
    expect(v.x).toEqual(['12345678901234567890', 1.2345678901234567, '-98765432109876543', 1e21]);
  });

  it('toJsonValues gives printable values: NaN as a string, big integers as decimal strings, raw bytes as base64', () => {
    expect(toJsonValues(toTensor({ name: 'f', data: new Float32Array([NaN, 1]) }))).toEqual(['NaN', 1]);
    expect(toJsonValues(toTensor({ name: 'i', data: new BigInt64Array([2n ** 62n]) }))).toEqual([String(2n ** 62n)]);
    expect(toJsonValues(toTensor({ name: 'b', data: [new Uint8Array([0xff])] }))).toEqual([{ b64: '/w==' }]);
  });
});
