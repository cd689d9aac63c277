/**
 * @module batching/batcher
 * Between the data plane and a model's backend instances. The batcher never
 * sees HTTP: it gets validated tensors and a deadline/abort signal.
 */
import type { SequenceFlags } from '../core/infer.js';
import type { Tensor } from '../core/tensor.js';

/**
 * When a partial batch fires (see DynamicBatcher): `delay` is Triton's rule,
 * `adaptive` kinfer's. The config parameter and a function's `batching.policy`
 * take these names; the first is the default.
 */
export const BATCH_POLICIES = ['delay', 'adaptive'] as const;
export type BatchPolicy = (typeof BATCH_POLICIES)[number];

export function isBatchPolicy(v: string): v is BatchPolicy {
  return (BATCH_POLICIES as readonly string[]).includes(v);
}

export interface BatchRequest {
  inputs: Tensor[];
  /** Outputs to compute; empty = all. */
  outputNames: readonly string[];
  /** Absolute deadline in `performance.now()` ms; passed → DeadlineExceeded, never computed. */
  deadline?: number;
  /** Aborted → Cancelled, dropped before compute if still queued. */
  signal?: AbortSignal;
  /**
   * Set for a model with `sequence_batching` (the SequenceBatcher reads it) and for an ensemble
   * request that names a sequence (its backend passes it on to the composing models).
   */
  sequence?: SequenceFlags;
  /**
   * Triton's request `priority`: 1 is served first. 0, absent or past the model's levels: its
   * default level. Read only by a batcher with priority levels.
   */
  priority?: number;
}

export interface BatchResult {
  outputs: Tensor[];
  /** Size of the batch this request ran in (items, dim 0 total). */
  batchSize: number;
  /** Milliseconds spent queued and computing. */
  queueMs: number;
  computeMs: number;
}

export interface Batcher {
  /**
   * Queues one request and resolves with its own rows of the outputs.
   * Rejects with ResourceExhausted at once when the queue is full,
   * DeadlineExceeded / Cancelled if it expires or is aborted while queued,
   * or the backend's error (every caller of a failed batch gets the same one, except that a merged
   * batch refused as bad input runs again in halves, so only the callers whose data fails get it).
   * The caller keeps ownership of its input buffers; the batcher copies when merging.
   */
  enqueue(request: BatchRequest): Promise<BatchResult>;
  /** Requests queued or running. */
  readonly pending: number;
  /** Requests accepted and not running yet (Triton's pending request count). */
  readonly queuedRequests: number;
  /**
   * True when a request enqueued now would start computing in the same tick
   * (nothing queued, an instance free, no batching delay to wait, e.g. the
   * adaptive policy with a lone caller). Transports use it to skip disconnect
   * tracking for requests that can never sit in a queue.
   */
  readonly startsAtOnce: boolean;
  /**
   * Milliseconds the instances would need to run the items queued now plus `rows` more, at the
   * pace of the recent batches (their time on an instance per item, over the instances);
   * undefined before a batch has run. Read only when a request is refused, for its Retry-After
   * (`retryAfterSeconds`). A batcher without a queue of its own may leave it out.
   */
  waitMs?(rows: number): number | undefined;
  /** Stops accepting, waits for queued and running work to finish. */
  drain(): Promise<void>;
  /**
   * Answers every queued and running request with `err` now, for a drain that took too long
   * (a backend that never returns): their results, if they still come, are dropped.
   */
  abandon(err: unknown): void;
}
