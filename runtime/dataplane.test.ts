/**
 * @module dataplane.test
 * DataPlane.infer asks the transport for its (costly) client signal only
 * when the request can wait in a queue, and a disconnect then still drops it.
 */
import { describe, expect, it } from 'vitest';
import { Cancelled } from './core/errors.js';
import { createBatcher } from './batching/dynamic-batcher.js';
import { PassThroughBatcher } from './batching/pass-through.js';
import type { Batcher } from './batching/batcher.js';
import { DataPlane } from './dataplane.js';
import { ModelStatistics } from './observability/statistics.js';
import { defaultConfig, type ModelConfig } from './repository/model-config.js';
import type { ModelRepository } from './repository/model-repository.js';
import { FakeBackend, xInput } from '../test/helpers/fake-backend.js';

function plane(batcher: Batcher, backend: FakeBackend, config = defaultConfig('m')): DataPlane {
  const handle = { name: 'm', version: '1', metadata: { platform: 'fake', inputs: [], outputs: [], batchable: true, maxBatchSize: 0 }, batcher, backend, statistics: new ModelStatistics(), config };
  const repo = { get: () => handle } as unknown as ModelRepository;
  return new DataPlane(repo, { live: () => true, ready: () => true });
}

const request = (v: number) => ({ modelName: 'm', inputs: [xInput([v])] });

describe('DataPlane client signal', () => {
  it('makes no signal for a pass-through request that starts at once, and one when the request must queue', async () => {
    const backend = new FakeBackend();
    const dp = plane(new PassThroughBatcher({ instances: [backend], batchable: false, maxBatchSize: 0, maxQueueDelayMicroseconds: 0, preferredBatchSizes: [], maxQueueSize: 8 }), backend);
    let made = 0;
    const signal = () => {
      made++;
      return new AbortController().signal;
    };
    await dp.infer(request(1), {}, signal);
    expect(made).toBe(0);

    backend.hold();
    const first = dp.infer(request(2), {}, signal); // starts at once, then holds the instance
    const abort = new AbortController();
    const second = dp.infer(request(3), {}, () => {
      made++;
      return abort.signal;
    });
    expect(made).toBe(1); // the second one queues behind the first: it needs the signal
    abort.abort();
    await expect(second).rejects.toBeInstanceOf(Cancelled);
    backend.release();
    await first;
    expect(backend.seenValues()).toEqual([1, 2]); // the cancelled request was never computed
  });

  it('makes no signal for a lone caller of the adaptive policy, and one once its recent peak is above one', async () => {
    const backend = new FakeBackend();
    const batcher = createBatcher({ instances: [backend], batchable: true, maxBatchSize: 8, maxQueueDelayMicroseconds: 1000, policy: 'adaptive', preferredBatchSizes: [], maxQueueSize: 8 });
    const dp = plane(batcher, backend);
    let made = 0;
    const signal = () => {
      made++;
      return new AbortController().signal;
    };
    for (let i = 0; i < 3; i++) expect((await dp.infer(request(i), {}, signal)).batch.batchSize).toBe(1);
    expect(made).toBe(0);
    // Two callers at once: the second is asked for its signal; then the peak of two is remembered for a few cycles.
    await Promise.all([dp.infer(request(10), {}, signal), dp.infer(request(11), {}, signal)]);
    expect(made).toBe(1);
    await dp.infer(request(12), {}, signal);
    expect(made).toBe(2);
  });

  it('gives the signal to a dynamic batcher whose requests wait for their batch (Triton\'s delay rule)', async () => {
    const backend = new FakeBackend();
    const batcher = createBatcher({ instances: [backend], batchable: true, maxBatchSize: 8, maxQueueDelayMicroseconds: 1000, preferredBatchSizes: [], maxQueueSize: 8 });
    const dp = plane(batcher, backend);
    let made = 0;
    const out = await dp.infer(request(4), {}, () => {
      made++;
      return new AbortController().signal;
    });
    expect(made).toBe(1);
    expect(out.batch.batchSize).toBe(1);
  });

  it("gives an ensemble request in a sequence its signal even when it would start at once: its stateful step may wait behind the sequence's previous request", async () => {
    const backend = new FakeBackend();
    const passThrough = () => new PassThroughBatcher({ instances: [backend], batchable: false, maxBatchSize: 0, maxQueueDelayMicroseconds: 0, preferredBatchSizes: [], maxQueueSize: 8 });
    const ensemble = { ...defaultConfig('m'), platform: 'ensemble', ensemble: [{ modelName: 'x', modelVersion: '', inputMap: {}, outputMap: {} }] };
    const dp = plane(passThrough(), backend, ensemble);
    let made = 0;
    const signal = () => {
      made++;
      return new AbortController().signal;
    };
    await dp.infer({ ...request(1), parameters: { sequence_id: 5, sequence_start: true } }, {}, signal);
    expect(made).toBe(1);
    // Triton's id 0 is no sequence: no signal needed.
    await dp.infer({ ...request(2), parameters: { sequence_id: 0 } }, {}, signal);
    expect(made).toBe(1);
  });
});

describe('DataPlane optional inputs', () => {
  it("lets a request leave out an input the config marks optional (Triton's optional: true), and no other", async () => {
    const backend = new FakeBackend();
    const config: ModelConfig = { ...defaultConfig('m'), optionalInputs: ['mask'] };
    const batcher = new PassThroughBatcher({ instances: [backend], batchable: true, maxBatchSize: 0, maxQueueDelayMicroseconds: 0, preferredBatchSizes: [], maxQueueSize: 8 });
    const handle = {
      name: 'm',
      version: '1',
      metadata: { platform: 'fake', inputs: [{ name: 'x', datatype: 'FP32', shape: [-1, -1] }, { name: 'mask', datatype: 'FP32', shape: [-1, -1] }], outputs: [], batchable: true, maxBatchSize: 0 },
      batcher,
      backend,
      statistics: new ModelStatistics(),
      config,
    };
    const dp = new DataPlane({ get: () => handle } as unknown as ModelRepository, { live: () => true, ready: () => true });
    const { response } = await dp.infer(request(4));
    expect(response.outputs[0]!.data).toEqual(Float32Array.of(8));
    expect(backend.received[0]!.map((t) => t.name)).toEqual(['x']); // the backend is not handed a stand-in
    const mask = { name: 'mask', datatype: 'FP32' as const, shape: [1, 1], data: Float32Array.of(0) };
    await dp.infer({ modelName: 'm', inputs: [xInput([5]), mask] });
    expect(backend.received[1]!.map((t) => t.name)).toEqual(['x', 'mask']);
    await expect(dp.infer({ modelName: 'm', inputs: [mask] })).rejects.toThrow("missing input 'x'");
    handle.config = defaultConfig('m');
    await expect(dp.infer(request(4))).rejects.toThrow("missing input 'mask'");
  });
});
