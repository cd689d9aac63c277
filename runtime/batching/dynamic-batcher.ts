/**
 * @module batching/dynamic-batcher
 * Merges queued requests with the same input signature along dim 0, runs them
 * once on a free instance, and splits the outputs back by each caller's rows
 * (Triton's dynamic batcher: max batch size, max queue delay, preferred sizes).
 *
 * Policy, per signature group (requests in queue order: arrival, or with priority
 * levels level first; see queue.ts):
 * - take requests from the front while their rows fit in `maxBatchSize`;
 * - fire at once when that reaches the largest preferred size (or the max);
 * - otherwise fire when the group's head (first in queue order) has waited
 *   `maxQueueDelayMicroseconds`: the longest prefix of a preferred size if
 *   there is one, else all that fit;
 * - among groups ready at once, the one whose head goes first (the highest
 *   priority level, then the oldest request), so without priorities no
 *   signature waits longer than its own delay plus running batches;
 * - a request alone larger than `maxBatchSize` runs alone.
 *
 * The `adaptive` policy (kinfer's; config parameter `batch_policy: adaptive`)
 * changes two rules, for closed-loop and bursty callers:
 * - a group also fires once it holds as many requests as were pending at the
 *   peak of the last few cycles (`recentConcurrency`): a lone client never
 *   waits, and a full house does not wait for the delay either;
 * - the delay is the longest gap the batch waits for its next request,
 *   counted from the group's newest arrival or from when an instance became
 *   free, whichever is later. So requests that queued behind a running batch
 *   still wait for the callers of that batch to come back (with Triton's rule
 *   closed-loop callers split into two cohorts that alternate at half the
 *   batch size), and a batch keeps filling while requests keep coming. A wait
 *   is bounded by the running batches plus one delay per request the batch
 *   can still take (Triton's bound: the larger of running batches and one delay).
 */
import { InvalidArgument } from '../core/errors.js';
import type { Tensor } from '../core/tensor.js';
import type { BatchRequest, Batcher } from './batcher.js';
import { mergeInputs, rowsOf, signatureOf, splitOutputs } from './merge.js';
import { PassThroughBatcher } from './pass-through.js';
import { before, QueueBatcher, type BatcherOptions, type QueuedRequest } from './queue.js';

export type { BatcherOptions, BatchObserver, BatchInfo, RejectReason } from './queue.js';
export { DEFAULT_MAX_QUEUE_SIZE } from './queue.js';

/**
 * @example
 * const batcher = new DynamicBatcher({ instances: [a, b], batchable: true, maxBatchSize: 8,
 *   maxQueueDelayMicroseconds: 2000, preferredBatchSizes: [4, 8], maxQueueSize: 256 });
 * const { outputs, batchSize } = await batcher.enqueue({ inputs: [x], outputNames: [] });
 */
export class DynamicBatcher extends QueueBatcher {
  private readonly maxBatchSize: number;
  private readonly delayMs: number;
  private readonly preferred: Set<number>;
  private readonly target: number;
  private readonly hardLimit: number;
  private readonly adaptive: boolean;

  constructor(opts: BatcherOptions) {
    super(opts);
    this.adaptive = opts.policy === 'adaptive';
    this.hardLimit = opts.backendMaxBatchSize ?? 0;
    let max = Math.max(1, Math.floor(opts.maxBatchSize));
    if (this.hardLimit > 0) max = Math.min(max, this.hardLimit);
    this.maxBatchSize = max;
    this.delayMs = Math.max(0, opts.maxQueueDelayMicroseconds) / 1000;
    this.preferred = new Set(opts.preferredBatchSizes.filter((n) => Number.isInteger(n) && n > 0 && n <= max));
    this.target = this.preferred.size ? Math.max(...this.preferred) : max;
  }

  /**
   * Nothing queued, an instance free, and a batch of one would fire at once:
   * with no delay, or under `adaptive` while the recent peak is one caller
   * (its pick then expects one request). A lone client's request so never
   * waits for a batch, and the transport need not track its disconnect.
   */
  override get startsAtOnce(): boolean {
    if (!this.idle) return false;
    return this.delayMs === 0 || (this.adaptive && this.pending === 0 && this.recentConcurrency <= 1);
  }

  protected classify(request: BatchRequest): { key: string; rows: number } {
    const rows = rowsOf(request.inputs);
    if (this.hardLimit > 0 && rows > this.hardLimit) {
      throw new InvalidArgument(`batch size ${rows} exceeds the ${this.label}'s maximum batch size ${this.hardLimit}`);
    }
    return { key: signatureOf(request.inputs, request.outputNames), rows };
  }

  protected pick(now: number, flush: boolean): QueuedRequest[] | number {
    let best: QueuedRequest[] | undefined;
    let wakeAt = Infinity;
    const expected = this.adaptive ? Math.max(1, this.recentConcurrency) : Infinity;
    for (const group of this.groups.values()) {
      const head = group[0];
      if (!head) continue;
      if (best && !before(head, best[0]!)) continue;
      if (head.rows >= this.maxBatchSize || head.rows === 0) {
        best = [head];
        continue;
      }
      let total = 0;
      let n = 0;
      let preferredN = 0;
      // The newest arrival among those taken (with priorities the last taken need not be the newest).
      let newest = 0;
      // The next request in line does not fit: the batch cannot grow, so waiting gains nothing (Triton sends it).
      let full = false;
      for (const e of group) {
        if (e.rows === 0 || total + e.rows > this.maxBatchSize) {
          full = true;
          break;
        }
        total += e.rows;
        n++;
        if (e.enqueuedAt > newest) newest = e.enqueuedAt;
        if (this.preferred.has(total)) preferredN = n;
        if (total >= this.target) break;
      }
      const since = this.adaptive ? Math.max(newest, this.freeSince) : head.enqueuedAt;
      if (total >= this.target || n >= expected || full) {
        best = group.slice(0, n);
      } else if (flush || now - since >= this.delayMs) {
        best = group.slice(0, preferredN || n);
      } else {
        wakeAt = Math.min(wakeAt, since + this.delayMs);
      }
    }
    return best ?? wakeAt;
  }

  protected prepare(batch: readonly QueuedRequest[]): Tensor[] {
    if (batch.length === 1) return batch[0]!.request.inputs;
    return mergeInputs(
      batch.map((e) => e.request.inputs),
      batch.map((e) => e.rows),
    );
  }

  protected split(outputs: Tensor[], batch: readonly QueuedRequest[]): Tensor[][] {
    if (batch.length === 1) return [outputs];
    return splitOutputs(
      outputs,
      batch.map((e) => e.rows),
    );
  }

  protected sizeOf(batch: readonly QueuedRequest[]): number {
    return batch.reduce((n, e) => n + e.rows, 0);
  }
}

/**
 * The batcher a model's config asks for: DynamicBatcher when dim 0 is a batch
 * dim and more than one item may share a run, PassThroughBatcher otherwise.
 */
export function createBatcher(opts: BatcherOptions): Batcher {
  if (opts.batchable && opts.maxBatchSize > 1) return new DynamicBatcher(opts);
  return new PassThroughBatcher(opts);
}
