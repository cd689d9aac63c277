import { describe, expect, it } from 'vitest';
import { InvalidArgument, PayloadTooLarge, Unsupported } from '../../core/errors.js';
import { toHalf } from '../../core/datatypes.js';
import { decodeGrpcInferRequest, encodeGrpcInferResponse, type WireInferRequest } from './codec.js';
import { MAX_BYTES_ELEMENTS } from '../v2/decode.js';

/** A request as @grpc/grpc-js hands it over (defaults filled, 64-bit integers as strings). */
function wire(partial: Partial<WireInferRequest>): WireInferRequest {
  return { model_name: 'm', model_version: '', id: '', inputs: [], outputs: [], raw_input_contents: [], ...partial };
}

describe('decodeGrpcInferRequest', () => {
  it('reads typed contents, parameters (64-bit beyond 2^53 kept as a decimal string), requested outputs and the id', () => {
    const { request, raw } = decodeGrpcInferRequest(
      wire({
        id: 'r1',
        model_version: '3',
        parameters: { timeout: { parameter_choice: 'int64_param', int64_param: '5000' }, big: { parameter_choice: 'uint64_param', uint64_param: '18446744073709551615' }, f: { parameter_choice: 'double_param', double_param: 0.5 } },
        inputs: [{ name: 'x', datatype: 'INT16', shape: ['2'], contents: { int_contents: [-3, 4] }, parameters: { note: { parameter_choice: 'string_param', string_param: 'n' } } }],
        outputs: [{ name: 'y', parameters: { classification: { parameter_choice: 'int64_param', int64_param: '2' } } }],
      }),
    );
    expect(raw).toBe(false);
    expect(request).toEqual({
      modelName: 'm',
      modelVersion: '3',
      id: 'r1',
      parameters: { timeout: 5000, big: '18446744073709551615', f: 0.5 },
      inputs: [{ name: 'x', datatype: 'INT16', shape: [2], data: Int16Array.from([-3, 4]), parameters: { note: 'n' } }],
      outputs: [{ name: 'y', parameters: { classification: 2 } }],
    });
  });

  it('views raw bytes (copying only when unaligned) and answers raw', () => {
    const unaligned = Buffer.from(new Uint8Array([0, ...new Uint8Array(Float32Array.from([1.5, -2]).buffer)])).subarray(1);
    const { request, raw } = decodeGrpcInferRequest(wire({ inputs: [{ name: 'x', datatype: 'FP32', shape: ['2'] }], raw_input_contents: [unaligned] }));
    expect(raw).toBe(true);
    expect(Array.from(request.inputs[0]!.data as Float32Array)).toEqual([1.5, -2]);
  });

  it('refuses what the protocol forbids, naming the input', () => {
    const bad = (partial: Partial<WireInferRequest>) => {
      try {
        decodeGrpcInferRequest(wire(partial));
      } catch (err) {
        return err as Error;
      }
      throw new Error('expected a refusal');
    };
    expect(bad({ inputs: [{ name: 'x', datatype: 'FP32', shape: ['-1'] }] }).message).toMatch(/shape\[0\]: expected a non-negative integer/);
    expect(bad({ inputs: [{ name: 'x', datatype: 'FP32', shape: ['9007199254740993', '9007199254740993'] }] }).message).toMatch(/shape\[0\]|more elements than can be counted/);
    expect(bad({ inputs: [{ name: 'x', datatype: 'UINT8', shape: ['1'], contents: { uint_contents: [256] } }] })).toBeInstanceOf(InvalidArgument);
    expect(bad({ inputs: [{ name: 'x', datatype: 'INT64', shape: ['1'], contents: { int64_contents: ['9223372036854775808'] } }] }).message).toMatch(/element 0/);
    expect(bad({ inputs: [{ name: 'x', datatype: 'BOOL', shape: ['1'] }], raw_input_contents: [Buffer.from([2])] }).message).toMatch(/BOOL byte 0 is 2/);
    const one = { name: 'x', datatype: 'FP32', shape: ['1'], contents: { fp32_contents: [1] } };
    expect(bad({ inputs: [one, one] }).message).toMatch(/duplicate input 'x'/);
    expect(bad({ outputs: [{ name: 'y' }, { name: 'y' }] }).message).toMatch(/duplicate output 'y'/);
    expect(bad({ inputs: [{ name: 'x', datatype: 'FP32', shape: ['1'], contents: { fp32_contents: [1] }, parameters: { shared_memory_region: { parameter_choice: 'string_param', string_param: 'r' }, shared_memory_byte_size: { parameter_choice: 'int64_param', int64_param: '4' } } }] })).toBeInstanceOf(Unsupported);
  });
});

describe('encodeGrpcInferResponse', () => {
  const out = (datatype: 'FP32' | 'FP16', data: Float32Array | Uint16Array) => ({ name: datatype, datatype, shape: [data.length], data });

  it('answers typed contents to a typed request, raw to a raw one, and raw for all when an output is FP16', () => {
    const fp32 = out('FP32', Float32Array.from([0.1, 2]));
    const typed = encodeGrpcInferResponse({ modelName: 'm', modelVersion: '1', outputs: [fp32], parameters: { n: 3, s: 'x', b: true, d: 0.25 } }, false);
    expect(typed.outputs[0]!.contents).toEqual({ fp32_contents: [Math.fround(0.1), 2] });
    expect(typed.raw_output_contents).toEqual([]);
    expect(typed.parameters).toEqual({ n: { int64_param: '3' }, s: { string_param: 'x' }, b: { bool_param: true }, d: { double_param: 0.25 } });
    const raw = encodeGrpcInferResponse({ modelName: 'm', outputs: [fp32] }, true);
    expect(raw.outputs[0]!.contents).toBeUndefined();
    expect(Buffer.from(raw.raw_output_contents[0]!)).toEqual(Buffer.from(Float32Array.from([0.1, 2]).buffer));
    const half = encodeGrpcInferResponse({ modelName: 'm', outputs: [fp32, out('FP16', Uint16Array.from([toHalf(1)]))] }, false);
    expect(half.outputs.every((o) => o.contents === undefined)).toBe(true);
    expect(half.raw_output_contents).toHaveLength(2);
  });

  it('refuses more than MAX_BYTES_ELEMENTS BYTES elements in raw_input_contents before making them (PayloadTooLarge)', () => {
    const n = MAX_BYTES_ELEMENTS + 1;
    const err = (() => {
      try {
        decodeGrpcInferRequest(wire({ inputs: [{ name: 's', datatype: 'BYTES', shape: [String(n)] }], raw_input_contents: [new Uint8Array(4 * n)] } as Partial<WireInferRequest>));
      } catch (e) {
        return e as Error;
      }
    })();
    expect(err).toBeInstanceOf(PayloadTooLarge);
    expect(err!.message).toMatch(/BYTES tensors have more than 2097152 elements/);
  });
});
