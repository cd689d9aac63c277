/**
 * @module server/batcher-factory
 * Model config → batcher options: Triton semantics, so a model batches only
 * when its config asks for `dynamic_batching` with `max_batch_size` > 1 and
 * its dim 0 is a batch dim.
 */
import { createBatcher } from '../batching/dynamic-batcher.js';
import { batchObserver, type Metrics } from '../observability/metrics.js';
import type { BatcherFactory } from '../repository/model-repository.js';

export function makeBatcherFactory(metrics: Metrics, defaults: { maxQueueSize?: number } = {}): BatcherFactory {
  return ({ name, version, instances, metadata, config }) => {
    const dyn = config.dynamicBatching;
    return createBatcher({
      name,
      instances,
      batchable: metadata.batchable,
      maxBatchSize: dyn ? config.maxBatchSize : 0,
      maxQueueDelayMicroseconds: dyn?.maxQueueDelayMicroseconds ?? 0,
      preferredBatchSizes: dyn?.preferredBatchSize ?? [],
      maxQueueSize: dyn?.maxQueueSize || defaults.maxQueueSize || 0,
      backendMaxBatchSize: metadata.maxBatchSize,
      observer: batchObserver(metrics, name, version),
    });
  };
}
