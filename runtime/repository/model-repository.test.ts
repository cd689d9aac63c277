import { describe, expect, it } from 'vitest';
import { InvalidArgument } from '../core/errors.js';
import { defaultConfig } from './model-config.js';
import { applyLoadParameters, checkModelName } from './model-repository.js';

describe('applyLoadParameters', () => {
  const base = { ...defaultConfig('m'), platform: 'onnxruntime_onnx', parameters: { keep: 'me' } };

  it("maps the original server's batch_size, threads and timeout (ms) onto batching and instances", () => {
    const c = applyLoadParameters(base, { batch_size: 16, threads: '3', timeout: 5 }, 'm');
    expect(c.maxBatchSize).toBe(16);
    expect(c.instanceCount).toBe(3);
    expect(c.dynamicBatching).toEqual({ maxQueueDelayMicroseconds: 5000, preferredBatchSize: [], maxQueueSize: 0 });
    expect(c.parameters).toEqual({ keep: 'me' });
    expect(base.maxBatchSize).toBe(0); // the file config is not mutated
  });

  it("replaces the file config with Triton's `config` parameter and passes other keys to the backend", () => {
    const c = applyLoadParameters(
      base,
      { config: JSON.stringify({ platform: 'echo', max_batch_size: 4, dynamic_batching: {} }), intra_op_thread_count: 2 },
      'm',
    );
    expect(c.platform).toBe('echo');
    expect(c.maxBatchSize).toBe(4);
    expect(c.parameters).toEqual({ keep: 'me', intra_op_thread_count: '2' });
  });

  it('refuses bad values naming the parameter', () => {
    expect(() => applyLoadParameters(base, { batch_size: 0 }, 'm')).toThrow(/parameters.batch_size/);
    expect(() => applyLoadParameters(base, { threads: 'many' }, 'm')).toThrow(InvalidArgument);
    expect(() => applyLoadParameters(base, { config: '{not json' }, 'm')).toThrow(/parameters.config/);
    expect(() => applyLoadParameters(base, { config: 5 }, 'm')).toThrow(/parameters.config/);
  });
});

describe('checkModelName', () => {
  it('accepts plain names and refuses paths', () => {
    expect(checkModelName('ocr-det')).toBe('ocr-det');
    expect(checkModelName('xmodel-resnet_v1.2')).toBe('xmodel-resnet_v1.2');
    for (const bad of ['../x', 'a/b', '..', '.', '', '-x', 'a\\b']) expect(() => checkModelName(bad), bad).toThrow(InvalidArgument);
  });
});
