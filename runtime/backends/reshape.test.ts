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

/** A FakeBackend behind a reshape of x and y, declaring the shapes it is loaded with (batch dim first when batching). */
function reshaped(dims: number[], to: number[], maxBatchSize = 8): { config: ModelConfig; fake: FakeBackend; loaded: ModelConfig[] } {
  const config: ModelConfig = {
    ...defaultConfig('m'),
    maxBatchSize,
    inputs: [{ name: 'x', datatype: 'FP32', shape: dims }],
    outputs: [{ name: 'y', datatype: 'FP32', shape: dims }],
    reshape: { inputs: { x: to }, outputs: { y: to } },
  };
  const fake = new FakeBackend();
  const loaded: ModelConfig[] = [];
  fake.load = async (f?: ModelFiles) => {
    const c = f!.config;
    loaded.push(c);
    const declared = (specs: ModelConfig['inputs']) => specs.map((x) => ({ ...x, shape: c.maxBatchSize > 0 ? [-1, ...x.shape] : x.shape }));
    return { platform: 'fake', inputs: declared(c.inputs), outputs: declared(c.outputs), batchable: c.maxBatchSize > 0, maxBatchSize: c.maxBatchSize };
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
    expect(meta.inputs).toEqual([{ name: 'x', datatype: 'FP32', shape: [-1, -1, 4] }]);
    expect(meta.outputs).toEqual([{ name: 'y', datatype: 'FP32', shape: [-1, -1, 4] }]);
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
    // A batching model's tensor without its batch dim is not taken for one of another shape.
    await expect(b.infer([{ name: 'x', datatype: 'FP32', shape: [2, 5, 6, 7], data: new Float32Array(420) }], [])).rejects.toThrow(/input 'x' has shape \[2,5,6,7\], which is not \[-1,2,-1,6,-1\]/);
    // Without a batch dim (max_batch_size 0): the whole shape maps.
    const flat = reshaped([2, -1, 6, -1], [2, -1, 3, 2, -1], 0);
    const c = withReshape(() => flat.fake, flat.config)();
    expect((await c.load(files(flat.config))).inputs[0]!.shape).toEqual([2, -1, 6, -1]);
    const [z] = await c.infer([{ name: 'x', datatype: 'FP32', shape: [2, 1, 6, 1], data: new Float32Array(12) }], []);
    expect(flat.fake.received[0]![0]!.shape).toEqual([2, 1, 3, 2, 1]);
    expect(z!.shape).toEqual([2, 1, 6, 1]);
  });

  it('refuses, as a server fault, a backend output that its reshape cannot hold', async () => {
    const { config, fake } = reshaped([4], [2, 2]);
    fake.mangle = (outs) => outs.map((t) => ({ ...t, shape: [t.shape[0]!, 4] }));
    const b = withReshape(() => fake, config)();
    await b.load(files(config));
    const err = await b.infer([{ name: 'x', datatype: 'FP32', shape: [1, 4], data: new Float32Array(4) }], []).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Internal);
    expect((err as Error).message).toMatch(/model 'm': output 'y' has shape \[1,4\], which is not \[-1,2,2\]/);
  });

  it('refuses to load a backend whose tensor does not end in its reshape', async () => {
    const { config, fake } = reshaped([4], [2, 2]);
    fake.load = async () => ({ platform: 'fake', inputs: [{ name: 'x', datatype: 'FP32', shape: [-1, 4] }], outputs: [], batchable: true, maxBatchSize: 0 });
    await expect(withReshape(() => fake, config)().load(files(config))).rejects.toThrow("model 'm': the backend's input 'x' is [-1,4], which does not end in its reshape [2,2]");
  });
});
