/**
 * @module server/batcher-factory
 * Model config → batcher options: Triton semantics, so a model batches only
 * when its config asks for `dynamic_batching` with `max_batch_size` > 1 and
 * its dim 0 is a batch dim. The config parameter `batch_policy` (`delay`, the
 * default, or `adaptive`) picks the DynamicBatcher's firing rule.
 */
import { createBatcher } from '../batching/dynamic-batcher.js';
import type { BatchObserver } from '../batching/queue.js';
import type { ModelStatistics } from '../observability/statistics.js';
import { BATCH_POLICIES, isBatchPolicy } from '../batching/batcher.js';
import { InvalidArgument } from '../core/errors.js';
import { batchObserver, type BatchEvents, type Metrics } from '../observability/metrics.js';
import type { BatcherFactory } from '../repository/model-repository.js';

export function makeBatcherFactory(metrics: Metrics, defaults: { maxQueueSize?: number } = {}): BatcherFactory {
  return ({ name, version, instances, metadata, config, statistics }) => {
    const dyn = config.dynamicBatching;
    const policy = config.parameters.batch_policy ?? BATCH_POLICIES[0];
    if (!isBatchPolicy(policy)) {
      throw new InvalidArgument(`model '${name}': parameter batch_policy: expected ${BATCH_POLICIES.join(' or ')}, got ${JSON.stringify(policy)}`);
    }
    return createBatcher({
      name,
      instances,
      batchable: metadata.batchable,
      maxBatchSize: dyn ? config.maxBatchSize : 0,
      maxQueueDelayMicroseconds: dyn?.maxQueueDelayMicroseconds ?? 0,
      preferredBatchSizes: dyn?.preferredBatchSize ?? [],
      policy,
      maxQueueSize: dyn?.maxQueueSize || defaults.maxQueueSize || 0,
      priority: dyn?.priority,
      queueTimeout: dyn?.queueTimeout,
      backendMaxBatchSize: metadata.maxBatchSize,
      observer: statistics ? withStatistics(batchObserver(metrics, name, version), statistics) : batchObserver(metrics, name, version),
    });
  };
}

/**
 * The metrics observer with the statistics' onBatch after its own: one object, not a loop over
 * observers, since onQueued, onSettled and onBatch run for every request.
 */
function withStatistics(metrics: BatchEvents, statistics: ModelStatistics): BatchObserver {
  const stats = statistics.observer;
  return {
    onQueued: metrics.onQueued,
    onSettled: metrics.onSettled,
    onRejected: metrics.onRejected,
    onSplit: metrics.onSplit,
    onBatch: (info) => {
      try {
        metrics.onBatch(info);
      } finally {
        stats.onBatch!(info);
      }
    },
  };
}
