/**
 * @module backends/echo.test
 */
import { describe, expect, it } from 'vitest';
import { InvalidArgument, NotReady } from '../core/errors.js';
import type { Tensor } from '../core/tensor.js';
import { defaultConfig } from '../repository/model-config.js';
import { EchoBackend } from './echo.js';

const files = { name: 'echo', version: '1', dir: '/nonexistent', config: defaultConfig('echo') };

describe('EchoBackend', () => {
  it('declares nothing and is not batchable', async () => {
    expect(await new EchoBackend().load(files)).toEqual({ platform: 'echo', inputs: [], outputs: [], batchable: false, maxBatchSize: 0 });
  });

  it('returns every input as an output with the same name, datatype, shape and values, in copies', async () => {
    const echo = new EchoBackend();
    await echo.load(files);
    const inputs: Tensor[] = [
      { name: 'a', datatype: 'INT64', shape: [2, 1], data: BigInt64Array.from([3n, -4n]) },
      { name: 'b', datatype: 'BYTES', shape: [1], data: [Uint8Array.from([104, 105])] },
      { name: 'c', datatype: 'FP16', shape: [], data: Uint16Array.from([0x3c00]) },
    ];
    const out = await echo.infer(inputs, []);
    expect(out).toEqual(inputs.map((t) => ({ name: t.name, datatype: t.datatype, shape: t.shape, data: t.data })));
    expect(out[0]!.data).not.toBe(inputs[0]!.data);
    expect((out[1]!.data as Uint8Array[])[0]).not.toBe((inputs[1]!.data as Uint8Array[])[0]);
    (inputs[0]!.data as BigInt64Array)[0] = 99n; // the caller reuses its buffer
    expect((out[0]!.data as BigInt64Array)[0]).toBe(3n);
  });

  it('returns only the requested outputs, in the requested order', async () => {
    const echo = new EchoBackend();
    await echo.load(files);
    const inputs: Tensor[] = [
      { name: 'a', datatype: 'FP32', shape: [1], data: Float32Array.from([1]) },
      { name: 'b', datatype: 'FP32', shape: [1], data: Float32Array.from([2]) },
    ];
    expect((await echo.infer(inputs, ['b', 'a'])).map((t) => t.name)).toEqual(['b', 'a']);
    const err = await echo.infer(inputs, ['z']).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InvalidArgument);
    expect((err as Error).message).toBe("model 'echo': unknown output 'z': echo returns its inputs (a, b)");
  });

  it('refuses inference when not loaded', async () => {
    const echo = new EchoBackend();
    await echo.load(files);
    await echo.unload();
    await echo.unload();
    await expect(echo.infer([], [])).rejects.toBeInstanceOf(NotReady);
  });
});
