/**
 * @module batching/pass-through
 * The batcher for models that must not be merged (dim 0 is not a batch dim,
 * or batching is off): every request is a batch of one. It still has the
 * bounded queue, deadlines, abort and the parallel instance pool.
 */
import { InvalidArgument } from '../core/errors.js';
import type { Tensor } from '../core/tensor.js';
import type { BatchRequest } from './batcher.js';
import { rowsOf } from './merge.js';
import { QueueBatcher, type BatcherOptions, type QueuedRequest } from './queue.js';

/**
 * @example
 * const batcher = new PassThroughBatcher({ instances: [backend], batchable: false, maxBatchSize: 0,
 *   maxQueueDelayMicroseconds: 0, preferredBatchSizes: [], maxQueueSize: 64 });
 * const { outputs } = await batcher.enqueue({ inputs, outputNames: [] });
 */
export class PassThroughBatcher extends QueueBatcher {
  private readonly batchable: boolean;
  private readonly hardLimit: number;

  constructor(opts: BatcherOptions) {
    super(opts);
    this.batchable = opts.batchable;
    this.hardLimit = opts.backendMaxBatchSize ?? 0;
  }

  override get startsAtOnce(): boolean {
    return this.idle;
  }

  protected classify(request: BatchRequest): { key: string; rows: number } {
    if (!this.batchable) return { key: '', rows: 1 };
    const rows = rowsOf(request.inputs);
    if (this.hardLimit > 0 && rows > this.hardLimit) {
      throw new InvalidArgument(`batch size ${rows} exceeds the ${this.label}'s maximum batch size ${this.hardLimit}`);
    }
    return { key: '', rows };
  }

  protected pick(): QueuedRequest[] {
    // One group (key ''), in queue order (level, then arrival).
    const head = this.groups.get('')?.[0];
    return head ? [head] : [];
  }

  protected prepare(batch: readonly QueuedRequest[]): Tensor[] {
    return batch[0]!.request.inputs;
  }

  protected split(outputs: Tensor[]): Tensor[][] {
    return [outputs];
  }

  protected sizeOf(batch: readonly QueuedRequest[]): number {
    return batch[0]!.rows;
  }
}
