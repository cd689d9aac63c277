/**
 * @module observability/statistics
 * Triton's statistics extension: per model version, cumulative counts and
 * durations since the version was loaded (`GET /v2/models/{m}/stats`, gRPC
 * `ModelStatistics`), which perf_analyzer and `tritonclient`'s
 * `get_inference_statistics` read. One `ModelStatistics` lives on each loaded
 * version's handle, so a reload starts from zero and an unload forgets it, as
 * in Triton. Fed from two places: the data plane (each request's outcome and
 * duration) and the batcher's observer hooks (queue time and each execution's
 * input, infer and output times).
 */
import type { BatchInfo, BatchObserver, RejectReason } from '../batching/queue.js';

/** Triton's reasons for a failed request (the `reason` label of `nv_inference_request_failure`). */
export const FAILURE_REASONS = ['REJECTED', 'CANCELED', 'BACKEND', 'OTHER'] as const;
export type FailureReason = (typeof FAILURE_REASONS)[number];

/**
 * Triton's reason for a request its batcher answered with an error (`rejectReasonOf`): a queue
 * full or timed out is REJECTED, a client gone CANCELED, a failed execution BACKEND; anything
 * else (a request that failed before any batcher, a model unloading) OTHER.
 */
export function failureReasonOf(reason: RejectReason | undefined): FailureReason {
  switch (reason) {
    case 'queue_full':
    case 'queue_timeout':
    case 'deadline_exceeded':
      return 'REJECTED';
    case 'cancelled':
      return 'CANCELED';
    case 'backend_error':
      return 'BACKEND';
    default:
      return 'OTHER';
  }
}

/** A count and a total duration in nanoseconds (Triton's `StatisticDuration`). */
export interface DurationStat {
  count: number;
  ns: number;
}

export interface InferStats {
  success: DurationStat;
  fail: DurationStat;
  queue: DurationStat;
  compute_input: DurationStat;
  compute_infer: DurationStat;
  compute_output: DurationStat;
  /** Requests answered from the response cache: the lookup's duration. */
  cache_hit: DurationStat;
  /** Requests the response cache did not have: the lookup's and the insertion's duration. */
  cache_miss: DurationStat;
}

export interface BatchStat {
  batch_size: number;
  compute_input: DurationStat;
  compute_infer: DurationStat;
  compute_output: DurationStat;
}

/** One `$model_stat` of the REST body (the gRPC message has the same field names). */
export interface ModelStat {
  name: string;
  version: string;
  /** Milliseconds since the epoch of the last request's end; 0 before any. */
  last_inference: number;
  /** Items inferred in successful executions (a request with batch dim 4 counts 4). */
  inference_count: number;
  /** Successful backend executions (a merged batch counts 1). */
  execution_count: number;
  inference_stats: InferStats;
  batch_stats: BatchStat[];
}

const NS_PER_MS = 1e6;

function zero(): DurationStat {
  return { count: 0, ns: 0 };
}

function add(s: DurationStat, ms: number, count = 1): void {
  s.count += count;
  s.ns += Math.round(ms * NS_PER_MS) * count;
}

/**
 * Durations are kept as JavaScript numbers of nanoseconds: exact to 2^53 ns
 * (104 days of summed request time), and past that off by a few ns in 10^16.
 */
export class ModelStatistics {
  /** Milliseconds since the epoch at the end of the last request; 0 before any. */
  private lastInference = 0;
  private inferences = 0;
  private executions = 0;
  private readonly stats: InferStats = {
    success: zero(),
    fail: zero(),
    queue: zero(),
    compute_input: zero(),
    compute_infer: zero(),
    compute_output: zero(),
    cache_hit: zero(),
    cache_miss: zero(),
  };
  private readonly byBatchSize = new Map<number, BatchStat>();
  /** `fail.count` by Triton's reason (not in the extension's JSON; Triton's metrics carry it). */
  private readonly failures: Record<FailureReason, number> = { REJECTED: 0, CANCELED: 0, BACKEND: 0, OTHER: 0 };

  /**
   * The batcher's hooks. A successful execution adds one to its batch size's
   * `batch_stats` and, as Triton does, adds the execution's durations to
   * `compute_*` once per request in it, so those counts match `success` when
   * nothing fails. Each request that reached an execution adds its wait to
   * `queue` once: a rerun in halves (QueueBatcher.runInHalves) reports none. A
   * failed execution adds nothing else (its callers count under `fail`).
   */
  readonly observer: BatchObserver = {
    onBatch: (info: BatchInfo) => {
      for (const ms of info.queueMs) add(this.stats.queue, ms);
      if (!info.ok) return;
      this.executions++;
      this.inferences += info.size;
      let b = this.byBatchSize.get(info.size);
      if (!b) {
        b = { batch_size: info.size, compute_input: zero(), compute_infer: zero(), compute_output: zero() };
        this.byBatchSize.set(info.size, b);
      }
      add(b.compute_input, info.inputMs);
      add(b.compute_infer, info.computeMs);
      add(b.compute_output, info.outputMs);
      add(this.stats.compute_input, info.inputMs, info.requests);
      add(this.stats.compute_infer, info.computeMs, info.requests);
      add(this.stats.compute_output, info.outputMs, info.requests);
    },
  };

  /**
   * A request that succeeded, as the data plane saw it: from its arrival there (`started`,
   * performance.now() ms) to its response (`ended`). `last_inference` is wall time (Date.now(), ~30 ns),
   * so it does not drift from the monotonic clock in a long-lived pod.
   */
  succeeded(started: number, ended: number): void {
    add(this.stats.success, ended - started);
    this.lastInference = Date.now();
  }

  /** As `succeeded`, for a request answered with an error, counted under its reason too. */
  failed(reason: FailureReason, started: number, ended: number): void {
    add(this.stats.fail, ended - started);
    this.failures[reason]++;
    this.lastInference = Date.now();
  }

  /** Failed requests by Triton's reason; they add up to `fail.count`. */
  failuresByReason(): Record<FailureReason, number> {
    return { ...this.failures };
  }

  /**
   * A request answered from the response cache. Triton counts hits in `queue` (with no wait) so
   * that its count stays the request count; it ran no execution, so no compute time.
   */
  cacheHit(ms: number): void {
    add(this.stats.cache_hit, ms);
    add(this.stats.queue, 0);
  }

  /** A request the response cache did not have: its lookup and the insertion of its result. */
  cacheMiss(ms: number): void {
    add(this.stats.cache_miss, ms);
  }

  /** A copy in Triton's JSON form; batch sizes ascending. */
  snapshot(name: string, version: string): ModelStat {
    const copy = (s: DurationStat): DurationStat => ({ count: s.count, ns: s.ns });
    const stats = Object.fromEntries(Object.entries(this.stats).map(([k, v]) => [k, copy(v)])) as unknown as InferStats;
    return {
      name,
      version,
      last_inference: this.lastInference,
      inference_count: this.inferences,
      execution_count: this.executions,
      inference_stats: stats,
      batch_stats: [...this.byBatchSize.values()]
        .sort((a, b) => a.batch_size - b.batch_size)
        .map((b) => ({ batch_size: b.batch_size, compute_input: copy(b.compute_input), compute_infer: copy(b.compute_infer), compute_output: copy(b.compute_output) })),
    };
  }
}
