/**
 * @module backends/reshape.test
 * The reshape wrapper over a FakeBackend: what the backend is given and loads, what the
 * caller gets back, variable dims in order, and a backend output its reshape cannot hold.
 */
import { describe, expect, it } from 'vitest';
import { Internal } from '../core/errors.js';
import { defaultConfig, type ModelConfig } from '../repository/model-config.js';
import { FakeBackend } from '../../test/helpers/fake-backend.js';
import type { ModelFiles } from './backend.js';
import { withReshape } from './reshape.js';

const files = (config: ModelConfig): ModelFiles => ({ name: 'm', version: '1', dir: '/nowhere', config });

function reshaped(dims: number[], to: number[], outTo = to): { config: ModelConfig; fake: FakeBackend; loaded: ModelConfig[] } {
  const config: ModelConfig = {
    ...defaultConfig('m'),
    maxBatchSize: 8,
    inputs: [{ name: 'x', datatype: 'FP32', shape: dims }],
    outputs: [{ name: 'y', datatype: 'FP32', shape: dims }],
    reshape: { inputs: { x: to }, outputs: { y: outTo } },
  };
  const fake = new FakeBackend();
  const loaded: ModelConfig[] = [];
  const load = fake.load.bind(fake);
  fake.load = async (f?: ModelFiles) => {
    loaded.push(f!.config);
    return load();
  };
  return { config, fake, loaded };
}

describe('withReshape', () => {
  it('returns the factory itself when the config reshapes nothing', () => {
    const factory = () => new FakeBackend();
    expect(withReshape(factory, defaultConfig('m'))).toBe(factory);
  });

  it('loads the backend with the reshaped specs and serves the config dims', async () => {
    const { config, fake, loaded } = reshaped([-1, 4], [-1, 2, 2]);
    const b = withReshape(() => fake, config)();
    const meta = await b.load(files(config));
    expect(loaded[0]!.inputs).toEqual([{ name: 'x', datatype: 'FP32', shape: [-1, 2, 2] }]);
    expect(loaded[0]!.outputs).toEqual([{ name: 'y', datatype: 'FP32', shape: [-1, 2, 2] }]);
    // The fake reports [-1, -1]: rank 2 against a rank-3 reshape leaves no batch dim to keep.
    expect(meta.inputs).toEqual([{ name: 'x', datatype: 'FP32', shape: [-1, 4] }]);
  });

  it('gives the backend the reshaped tensor (batch dim and variable values kept, in order) and the caller its dims back', async () => {
    const { config, fake } = reshaped([2, -1, 6, -1], [2, -1, 3, 2, -1]);
    const b = withReshape(() => fake, config)();
    await b.load(files(config));
    const data = Float32Array.from({ length: 3 * 2 * 5 * 6 * 7 }, (_, i) => i);
    const [y] = await b.infer([{ name: 'x', datatype: 'FP32', shape: [3, 2, 5, 6, 7], data }], []);
    expect(fake.received[0]![0]!.shape).toEqual([3, 2, 5, 3, 2, 7]);
    expect(fake.received[0]![0]!.data).toBe(data); // a reshape copies nothing
    expect(y!.shape).toEqual([3, 2, 5, 6, 7]);
    expect((y!.data as Float32Array)[11]).toBe(22);
    // Without a batch dim (max_batch_size 0): the whole shape maps.
    const [z] = await b.infer([{ name: 'x', datatype: 'FP32', shape: [2, 1, 6, 1], data: new Float32Array(12) }], []);
    expect(fake.received[1]![0]!.shape).toEqual([2, 1, 3, 2, 1]);
    expect(z!.shape).toEqual([2, 1, 6, 1]);
  });

  it('refuses, as a server fault, a backend output that its reshape cannot hold', async () => {
    const { config, fake } = reshaped([4], [2, 2]);
    fake.mangle = (outs) => outs.map((t) => ({ ...t, shape: [t.shape[0]!, 4] }));
    const b = withReshape(() => fake, config)();
    await b.load(files(config));
    const err = await b.infer([{ name: 'x', datatype: 'FP32', shape: [1, 4], data: new Float32Array(4) }], []).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Internal);
    expect((err as Error).message).toMatch(/model 'm': output 'y' has shape \[1,4\], which is not \[2,2\]/);
  });
});
