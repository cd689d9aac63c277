/**
 * @module batching/queue
 * What both batchers share: the bounded queue, deadlines and abort signals of
 * queued requests, the pool of backend instances (each runs one batch at a
 * time, all run in parallel), drain, the observer hooks, and a full queue's
 * Retry-After (the time to run what is queued, at the recent pace). A subclass only
 * decides which queued requests form the next batch (`pick`) and how inputs
 * are merged and outputs split.
 *
 * Triton's priority levels and queue policies: each signature group is kept in
 * the order (level, late, arrival), so a level-1 request is taken before a
 * level-2 one whenever both could run; each level has its own queue bound, and
 * a policy's timeout either refuses a request still queued (REJECT) or moves it
 * behind its level's requests that have not timed out (DELAY).
 */
import type { Backend } from '../backends/backend.js';
import { Cancelled, DeadlineExceeded, Internal, InvalidArgument, ResourceExhausted, Unavailable } from '../core/errors.js';
import { MAX_TIMER_MS } from '../core/within.js';
import type { Tensor } from '../core/tensor.js';
import { activeContext, endSpan, startSpan, type Context, type Span } from '../observability/tracing.js';
import type { PriorityConfig, QueueTimeout } from '../repository/model-config.js';
import type { BatchPolicy, BatchRequest, BatchResult, Batcher } from './batcher.js';

/** Queue size used when the config says 0 (Triton's default is unbounded; ours is not). */
export const DEFAULT_MAX_QUEUE_SIZE = 512;

/** Why a request was answered with an error instead of a result (the `reason` label of `kinfer_rejected_requests_total`). */
export const REJECT_REASONS = ['queue_full', 'deadline_exceeded', 'queue_timeout', 'cancelled', 'unavailable', 'invalid_argument', 'backend_error'] as const;
export type RejectReason = (typeof REJECT_REASONS)[number];

const rejected = new WeakMap<object, RejectReason>();

/**
 * Records why a batcher answered a request with `err`, for `rejectReasonOf`. The first reason
 * stays: an ensemble whose step was cancelled or refused fails with that step's error, and
 * says why (its own batcher would call it a backend error).
 */
export function markRejected(err: unknown, reason: RejectReason): void {
  if (typeof err === 'object' && err !== null && !rejected.has(err)) rejected.set(err, reason);
}

/** Why a batcher answered with `err`; undefined when no batcher did (the request failed before one). */
export function rejectReasonOf(err: unknown): RejectReason | undefined {
  return typeof err === 'object' && err !== null ? rejected.get(err) : undefined;
}

export interface BatchInfo {
  /** Items in the batch (sum of dim 0; 1 per request for non-batchable models). */
  size: number;
  /** Requests (callers) in the batch. */
  requests: number;
  /** Milliseconds each caller waited in the queue, in batch order. */
  queueMs: readonly number[];
  /** Milliseconds to merge the callers' inputs into the backend's (0 for a lone request). */
  inputMs: number;
  /** Milliseconds the backend took for the batch. */
  computeMs: number;
  /** Milliseconds to split the outputs among the callers (0 when the batch failed). */
  outputMs: number;
  /** False when the backend (or the split of its outputs) failed: its callers got that error, or a rerun in halves (onSplit). */
  ok: boolean;
}

/**
 * Hooks for metrics (see `observability/metrics.ts` `batchObserver`). Called
 * synchronously on the batcher's path: keep them cheap. A throwing hook is ignored.
 */
export interface BatchObserver {
  /** A request was accepted; it is pending (queued or running) until the matching `onSettled`. */
  onQueued?(): void;
  /** An accepted request was answered, with a result or an error. Exactly once per `onQueued`. */
  onSettled?(): void;
  /** A batch finished running (successfully or not). */
  onBatch?(info: BatchInfo): void;
  /** A request was answered with an error: at once (queue full, draining, invalid, already expired or aborted), while queued, or because its batch failed. */
  onRejected?(reason: RejectReason): void;
  /**
   * A merged batch of `requests` failed as bad input and is run again in halves to
   * find the culprit. Splits whose halves all succeed mean the model does not batch that input.
   */
  onSplit?(info: { requests: number }): void;
  /** A stateful model's sequences: the change in those holding a slot and in those waiting for one (SequenceBatcher). */
  onSequences?(activeChange: number, backlogChange: number): void;
}

export interface BatcherOptions {
  /** Loaded instances; run in parallel, each used by one batch at a time. At least one. */
  instances: Backend[];
  /** False → never merge (dim 0 is not a batch dim). */
  batchable: boolean;
  /** Max items (sum of dim 0) per merged batch; 0/1 → no merging. A larger single request runs alone. */
  maxBatchSize: number;
  /** How long the oldest queued request may wait for a batch to fill. */
  maxQueueDelayMicroseconds: number;
  /**
   * `delay` (default, Triton's): the delay counts from the head request's arrival (the oldest, without priority levels).
   * `adaptive`: fire as soon as the batch holds as many requests as recently were
   * in flight; otherwise the delay is a gap in arrivals, counted from the newest
   * arrival or the moment an instance became free (see DynamicBatcher).
   */
  policy?: BatchPolicy;
  /** Batch sizes to aim for (Triton `preferred_batch_size`); sizes above maxBatchSize are ignored. */
  preferredBatchSizes: number[];
  /** Queued (not yet running) requests allowed; full → ResourceExhausted at once. ≤0 → DEFAULT_MAX_QUEUE_SIZE. */
  maxQueueSize: number;
  /**
   * The backend's hard limit (ModelMetadata.maxBatchSize; 0 = none known): a
   * request with more rows is refused with InvalidArgument before queueing.
   */
  backendMaxBatchSize?: number;
  /** Model name for error messages and span attributes. */
  name?: string;
  observer?: BatchObserver;
  /** Triton's priority levels (`dynamic_batching.priority_levels` > 0): per-level order, bounds and timeouts. */
  priority?: PriorityConfig;
  /** The default queue policy's timeout rules (`default_queue_policy`), for every level without its own. */
  queueTimeout?: QueueTimeout;
}

/** Dispatch cycles over which `recentConcurrency` remembers its peak. */
const PEAK_CYCLES = 4;

/** The longest Retry-After a full queue answers: past it the estimate says only "much later". */
export const MAX_RETRY_AFTER_SECONDS = 60;

/** Weight of the newest batch in the running pace (an EWMA: about the last 5 batches count). */
const PACE_WEIGHT = 0.2;

/**
 * A refused request's Retry-After from `waitMs` (Batcher.waitMs): whole seconds, as HTTP's
 * delay-seconds are, rounded up, at least 1 and at most MAX_RETRY_AFTER_SECONDS; 1 when there
 * is no estimate yet.
 */
export function retryAfterSeconds(waitMs: number | undefined): number {
  if (waitMs === undefined || !(waitMs > 0)) return 1;
  return Math.min(MAX_RETRY_AFTER_SECONDS, Math.max(1, Math.ceil(waitMs / 1000)));
}

/** One queued or running request. */
export interface QueuedRequest {
  readonly request: BatchRequest;
  /** Signature: only requests with equal keys may share a batch. */
  readonly key: string;
  /** Items this request brings (dim 0, or 1 when not batchable). */
  readonly rows: number;
  /** Arrival order. */
  readonly seq: number;
  /** performance.now() at enqueue. */
  readonly enqueuedAt: number;
  /** Priority level, 1 first; 0 when the model has no levels. */
  readonly level: number;
  /** Timed out under a DELAY queue policy: now behind its level's requests that have not. */
  late: boolean;
}

/** Whether `a` is taken before `b`: by level, then the requests not late first, then by arrival. */
export function before(a: QueuedRequest, b: QueuedRequest): boolean {
  if (a.level !== b.level) return a.level < b.level;
  if (a.late !== b.late) return b.late;
  return a.seq < b.seq;
}

/** A level's queue bound and timeout rules. */
interface LevelRules {
  maxQueueSize: number;
  timeout?: QueueTimeout;
}

interface Entry extends QueuedRequest {
  state: 'queued' | 'running' | 'done';
  /** Milliseconds queued, set when its batch is dispatched. */
  queueMs?: number;
  resolve(result: BatchResult): void;
  reject(err: unknown): void;
  timer?: NodeJS.Timeout;
  /** When it is refused uncomputed if still queued: its deadline, or a REJECT policy's timeout. */
  expiresAt?: number;
  /** Which of the two `expiresAt` is. */
  expiry?: 'deadline' | 'queue_policy';
  /** When a DELAY policy moves it back (schedule() does, before it picks). */
  lateAt?: number;
  onAbort?: () => void;
  parent?: Context;
  span?: Span;
}

/** At most this many re-arms of a deadline timer that fired a little early. */
const MAX_REARM = 3;

export abstract class QueueBatcher implements Batcher {
  /** Queued requests by signature, each list in `before` order (level, late, arrival). */
  protected readonly groups = new Map<string, QueuedRequest[]>();
  protected readonly label: string;
  private readonly free: Backend[];
  private readonly observer: BatchObserver | undefined;
  private queued = 0;
  private readonly priority: PriorityConfig | undefined;
  /** Rules of the levels without a policy of their own (all requests, without levels). */
  private readonly defaultRules: LevelRules;
  private readonly levelRules = new Map<number, LevelRules>();
  /** Queued requests and their rows per level, with levels. */
  private readonly queuedByLevel = new Map<number, { requests: number; rows: number }>();
  /** Some level's policy delays timed-out requests: schedule() looks for them. */
  private readonly delays: boolean;
  /** Items (rows) of the queued requests. */
  private queuedRows = 0;
  private running = 0;
  private readonly instanceCount: number;
  /**
   * The pace of recent successful batches, as EWMAs: milliseconds on the instance (merge, run,
   * split) and items. Both 0 until the first batch; read by waitMs.
   */
  private paceMs = 0;
  private paceItems = 0;
  private nextSeq = 0;
  private wakeTimer: NodeJS.Timeout | undefined;
  private wakeImmediate: NodeJS.Immediate | undefined;
  private scheduleQueued = false;
  private draining = false;
  /** Batches on an instance now, for abandon. */
  private readonly runningBatches = new Set<Entry[]>();
  /**
   * Set by abandon: the model is being released. Batches still running report nothing more
   * (their model's metric series are being removed, and their callers were answered), and a
   * split batch is not run again.
   */
  private abandoned = false;
  private drained: Promise<void> | undefined;
  private resolveDrained: (() => void) | undefined;
  /** performance.now() when the last instance to become free did so (0: free since start). */
  protected freeSince = 0;
  /** Peak `pending` of each of the last PEAK_CYCLES dispatch cycles, and of the current one. */
  private readonly peaks: number[] = new Array<number>(PEAK_CYCLES).fill(0);
  private peakSlot = 0;
  private cyclePeak = 0;

  constructor(opts: BatcherOptions) {
    if (!opts.instances.length) throw new Internal('batcher: at least one backend instance is required');
    this.free = [...opts.instances];
    this.instanceCount = opts.instances.length;
    const maxQueueSize = opts.maxQueueSize > 0 ? Math.floor(opts.maxQueueSize) : DEFAULT_MAX_QUEUE_SIZE;
    this.observer = opts.observer;
    this.label = opts.name ? `model '${opts.name}'` : 'model';
    this.priority = opts.priority;
    this.defaultRules = { maxQueueSize, timeout: opts.queueTimeout };
    for (const [level, p] of Object.entries(opts.priority?.policies ?? {})) {
      this.levelRules.set(Number(level), { maxQueueSize: p.maxQueueSize > 0 ? p.maxQueueSize : maxQueueSize, timeout: p });
    }
    this.delays = [this.defaultRules, ...this.levelRules.values()].some((r) => r.timeout?.action === 'delay' && r.timeout.defaultMicroseconds > 0);
  }

  /** Queued requests of `level`; all queued requests without levels (level 0). */
  private queuedAt(level: number): number {
    return level ? (this.queuedByLevel.get(level)?.requests ?? 0) : this.queued;
  }

  /** The level of a request's `priority`: the default one unless it names a level of the model (Triton's rule). */
  private levelOf(priority: number | undefined): number {
    const p = this.priority;
    if (!p) return 0;
    return priority !== undefined && priority >= 1 && priority <= p.levels ? priority : p.defaultLevel;
  }

  get pending(): number {
    return this.queued + this.running;
  }

  get queuedRequests(): number {
    return this.queued;
  }

  /** Overridden by batchers that never wait for a batch to fill. */
  get startsAtOnce(): boolean {
    return false;
  }

  /**
   * The most requests pending (queued or running) at once over the last few
   * dispatch cycles: how many callers a batch can expect to gather. Closed-loop
   * clients come back as a whole; a lone client gives 1.
   */
  protected get recentConcurrency(): number {
    let peak = this.cyclePeak;
    for (const p of this.peaks) if (p > peak) peak = p;
    return peak;
  }

  waitMs(rows: number): number | undefined {
    return this.paceOf(this.queuedRows + rows);
  }

  /** Milliseconds the instances need for `rows` items at the recent pace; undefined before a batch has run. */
  private paceOf(rows: number): number | undefined {
    if (this.paceItems === 0) return undefined;
    return (rows * this.paceMs) / this.paceItems / this.instanceCount;
  }

  /** Rows queued at `level` and the levels before it: what a request of that level waits behind. */
  private rowsAhead(level: number): number {
    let rows = 0;
    for (const [l, q] of this.queuedByLevel) if (l <= level) rows += q.rows;
    return rows;
  }

  /** Nothing queued and an instance free. */
  protected get idle(): boolean {
    return this.queued === 0 && this.free.length > 0;
  }

  /** Validates a request and says which batch it may join and how many items it brings. Throws InvalidArgument. */
  protected abstract classify(request: BatchRequest): { key: string; rows: number };
  /**
   * The requests of the next batch (removed from the queue by the caller), or
   * the performance.now() time to look again. `flush` = do not wait for more (draining).
   */
  protected abstract pick(now: number, flush: boolean): QueuedRequest[] | number;
  /** The backend inputs for a batch. */
  protected abstract prepare(batch: readonly QueuedRequest[]): Tensor[];
  /** Each caller's outputs, in batch order. Throws Internal when the outputs cannot be split. */
  protected abstract split(outputs: Tensor[], batch: readonly QueuedRequest[]): Tensor[][];
  /** Items in a batch. */
  protected abstract sizeOf(batch: readonly QueuedRequest[]): number;

  enqueue(request: BatchRequest): Promise<BatchResult> {
    if (this.draining) return this.refuse('unavailable', new Unavailable(`${this.label} is shutting down; not accepting requests`));
    if (request.signal?.aborted) {
      return this.refuse('cancelled', new Cancelled('request cancelled before it was queued: the client went away'));
    }
    const now = performance.now();
    if (request.deadline !== undefined && request.deadline <= now) {
      return this.refuse('deadline_exceeded', new DeadlineExceeded('request deadline passed before it was queued; it was not computed'));
    }
    let cls: { key: string; rows: number };
    try {
      cls = this.classify(request);
    } catch (err) {
      return this.refuse('invalid_argument', err);
    }
    const level = this.levelOf(request.priority);
    const rules = (level && this.levelRules.get(level)) || this.defaultRules;
    // Requests of this tick may still wait for the deferred schedule: let free instances take them first.
    if (this.queuedAt(level) >= rules.maxQueueSize && this.free.length > 0) this.schedule();
    if (this.queuedAt(level) >= rules.maxQueueSize) {
      const which = level ? `queue of priority level ${level}` : 'queue';
      // A full level clears as fast as it and the levels before it drain, not the whole queue.
      const waitMs = level ? this.paceOf(this.rowsAhead(level)) : this.waitMs(0);
      return this.refuse('queue_full', new ResourceExhausted(`${this.label}: ${which} is full (${this.queuedAt(level)} requests waiting); retry later`, retryAfterSeconds(waitMs)));
    }
    return new Promise<BatchResult>((resolve, reject) => {
      const parent = activeContext();
      // A REJECT policy's timeout refuses the request if it comes before its deadline; a DELAY one moves it
      // back. A request's own `timeout` is its deadline already (shorter wins, as Triton's override).
      let expiresAt = request.deadline;
      let expiry: Entry['expiry'] = 'deadline';
      let lateAt: number | undefined;
      const t = rules.timeout;
      if (t && t.defaultMicroseconds > 0) {
        const limit = now + t.defaultMicroseconds / 1000;
        if (t.action === 'delay') lateAt = limit;
        else if (expiresAt === undefined || limit < expiresAt) {
          expiresAt = limit;
          expiry = 'queue_policy';
        }
      }
      const entry: Entry = {
        request,
        key: cls.key,
        rows: cls.rows,
        seq: this.nextSeq++,
        enqueuedAt: now,
        level,
        late: false,
        state: 'queued',
        expiresAt,
        expiry,
        lateAt,
        resolve,
        reject,
        parent,
        span: startSpan('kinfer.queue', { 'kinfer.rows': cls.rows }, parent),
      };
      let group = this.groups.get(cls.key);
      if (!group) this.groups.set(cls.key, (group = []));
      insert(group, entry);
      this.queued++;
      this.queuedRows += cls.rows;
      if (level) {
        const q = this.queuedByLevel.get(level);
        if (q) {
          q.requests++;
          q.rows += cls.rows;
        } else this.queuedByLevel.set(level, { requests: 1, rows: cls.rows });
      }
      if (this.pending > this.cyclePeak) this.cyclePeak = this.pending;
      this.notify((o) => o.onQueued?.());
      if (expiresAt !== undefined) this.armDeadline(entry, expiresAt, 0);
      if (request.signal) {
        entry.onAbort = () => {
          if (entry.state !== 'queued') return;
          this.unqueue(entry);
          this.settle(entry, new Cancelled('request cancelled while queued: the client went away; it was not computed'), 'cancelled');
          this.afterChange();
        };
        request.signal.addEventListener('abort', entry.onAbort, { once: true });
      }
      this.scheduleSoon();
    });
  }

  drain(): Promise<void> {
    if (!this.drained) {
      this.draining = true;
      this.drained = new Promise((resolve) => (this.resolveDrained = resolve));
      this.schedule();
      this.afterChange();
    }
    return this.drained;
  }

  abandon(err: unknown): void {
    this.draining = true;
    this.abandoned = true;
    for (const group of [...this.groups.values()]) {
      for (const e of [...group] as Entry[]) {
        this.unqueue(e);
        this.settle(e, err, 'unavailable');
      }
    }
    for (const batch of this.runningBatches) for (const e of batch) this.settle(e, err, 'unavailable');
    this.clearWake();
  }

  private refuse(reason: RejectReason, err: unknown): Promise<never> {
    this.rejected(reason, err);
    return Promise.reject(err);
  }

  /** A request is answered with `err` for `reason`: the error says why (`rejectReasonOf`), the observer counts it. */
  private rejected(reason: RejectReason, err: unknown): void {
    markRejected(err, reason);
    this.notify((o) => o.onRejected?.(reason));
  }

  private notify(call: (o: BatchObserver) => void): void {
    if (!this.observer) return;
    try {
      call(this.observer);
    } catch {
      // Metrics must never break serving.
    }
  }

  private armDeadline(entry: Entry, deadline: number, rearms: number): void {
    const left = Math.max(0, Math.ceil(deadline - performance.now()));
    // setTimeout fires after 1 ms for any delay past 2^31-1 ms (~24.8 days): wait in such steps.
    const capped = left > MAX_TIMER_MS;
    entry.timer = setTimeout(() => {
      entry.timer = undefined;
      if (entry.state !== 'queued') return;
      if (performance.now() < deadline && (capped || rearms < MAX_REARM)) return this.armDeadline(entry, deadline, capped ? rearms : rearms + 1);
      this.expire(entry, performance.now());
      this.afterChange();
    }, capped ? MAX_TIMER_MS : left);
  }

  private expire(entry: Entry, now: number): void {
    this.unqueue(entry);
    const waited = Math.round(now - entry.enqueuedAt);
    // A queue policy's timeout is Triton's "Request timeout expired": UNAVAILABLE, not a deadline.
    const err =
      entry.expiry === 'queue_policy'
        ? new Unavailable(`request timed out by the queue policy's default_timeout_microseconds after ${waited} ms in the queue of ${this.label}; it was not computed`)
        : new DeadlineExceeded(`request deadline passed after ${waited} ms in the queue of ${this.label}; it was not computed`);
    this.settle(entry, err, entry.expiry === 'queue_policy' ? 'queue_timeout' : 'deadline_exceeded');
  }

  /** A DELAY policy's timeout passed: the entry goes behind its level's requests that have not timed out. */
  private markLate(entry: Entry): void {
    const group = this.groups.get(entry.key);
    const i = group ? group.indexOf(entry) : -1;
    if (!group || i < 0) return;
    group.splice(i, 1);
    entry.late = true;
    insert(group, entry);
  }

  private unqueue(entry: Entry): void {
    const group = this.groups.get(entry.key);
    const i = group ? group.indexOf(entry) : -1;
    if (!group || i < 0) return;
    group.splice(i, 1);
    if (!group.length) this.groups.delete(entry.key);
    this.queued--;
    this.queuedRows -= entry.rows;
    if (entry.level) {
      const q = this.queuedByLevel.get(entry.level)!;
      q.requests--;
      q.rows -= entry.rows;
    }
  }

  /** Stops the entry's timer and abort listener; the entry is no longer cancellable. */
  private detach(entry: Entry): void {
    if (entry.timer) clearTimeout(entry.timer);
    entry.timer = undefined;
    if (entry.onAbort) entry.request.signal?.removeEventListener('abort', entry.onAbort);
    entry.onAbort = undefined;
  }

  private settle(entry: Entry, outcome: BatchResult | unknown, reason?: RejectReason): void {
    if (entry.state === 'done') return;
    entry.state = 'done';
    this.detach(entry);
    if (reason) {
      endSpan(entry.span, outcome);
      this.rejected(reason, outcome);
      this.notify((o) => o.onSettled?.());
      entry.reject(outcome);
    } else {
      endSpan(entry.span);
      this.notify((o) => o.onSettled?.());
      entry.resolve(outcome as BatchResult);
    }
  }

  /** After a removal from the queue: wake the scheduler (a slot or a group changed) and check drain. */
  private afterChange(): void {
    this.schedule();
    if (this.draining && this.pending === 0) {
      this.clearWake();
      this.resolveDrained?.();
    }
  }

  /**
   * Enqueues made in the same tick (e.g. every caller of a finished batch
   * sending its next request) are looked at together, so a free instance is
   * not taken by the first of them alone.
   */
  private scheduleSoon(): void {
    if (this.scheduleQueued) return;
    this.scheduleQueued = true;
    queueMicrotask(() => {
      this.scheduleQueued = false;
      this.schedule();
    });
  }

  private clearWake(): void {
    if (this.wakeTimer) clearTimeout(this.wakeTimer);
    if (this.wakeImmediate) clearImmediate(this.wakeImmediate);
    this.wakeTimer = undefined;
    this.wakeImmediate = undefined;
  }

  /**
   * Looks again at `at` (performance.now() ms). Node timers have 1 ms
   * granularity and fire late, so a 500 µs delay used to become 1–2 ms: whole
   * milliseconds wait on a timer, and the sub-millisecond rest on
   * `setImmediate` turns (I/O is still served between them). This only runs
   * while an instance is free and a batch is waiting to fill.
   */
  private wakeAt(at: number, now: number): void {
    const wait = at - now;
    if (wait >= 1) {
      this.wakeTimer = setTimeout(() => {
        this.wakeTimer = undefined;
        this.schedule();
      }, Math.floor(wait));
    } else {
      this.wakeImmediate = setImmediate(() => {
        this.wakeImmediate = undefined;
        this.schedule();
      });
    }
  }

  /** Forms and starts batches while an instance is free; otherwise waits for one or for the delay timer. */
  private schedule(): void {
    this.clearWake();
    if (this.queued === 0 || this.free.length === 0) return;
    const now = performance.now();
    for (const group of [...this.groups.values()]) {
      for (const e of [...group] as Entry[]) {
        if (e.expiresAt !== undefined && e.expiresAt <= now) this.expire(e, now);
        else if (this.delays && e.lateAt !== undefined && !e.late && e.lateAt <= now) this.markLate(e);
      }
    }
    for (let guard = this.queued + 1; guard > 0 && this.queued > 0 && this.free.length > 0; guard--) {
      const choice = this.pick(now, this.draining);
      if (typeof choice === 'number') {
        this.wakeAt(choice, now);
        return;
      }
      if (!choice.length) throw new Internal('batcher: empty batch picked');
      this.dispatch(choice as Entry[], now);
    }
  }

  private dispatch(batch: Entry[], now: number): void {
    const instance = this.free.pop()!;
    const queueMs: number[] = [];
    for (const e of batch) {
      this.unqueue(e);
      this.detach(e);
      e.state = 'running';
      e.queueMs = now - e.enqueuedAt;
      queueMs.push(e.queueMs);
      endSpan(e.span);
    }
    this.running += batch.length;
    this.peaks[this.peakSlot] = this.cyclePeak;
    this.peakSlot = (this.peakSlot + 1) % PEAK_CYCLES;
    this.cyclePeak = this.pending;
    void this.run(instance, batch, queueMs);
  }

  private run(instance: Backend, batch: Entry[], queueMs: number[]): Promise<void> {
    const size = this.sizeOf(batch);
    const attrs = { 'kinfer.batch_size': size, 'kinfer.batch_requests': batch.length };
    for (const e of batch) e.span = startSpan('kinfer.compute', attrs, e.parent);
    this.runningBatches.add(batch);
    return this.attempt(instance, batch, queueMs, size, () => {
      this.runningBatches.delete(batch);
      if (this.free.length === 0) this.freeSince = performance.now();
      this.free.push(instance);
      this.running -= batch.length;
      this.afterChange();
    });
  }

  /**
   * Runs `batch` once on `instance` and answers its callers; a merged batch the
   * backend refuses as bad input goes on to runInHalves. `observed`: the queue
   * times this run reports (the first run's; reruns report none). `done` runs in
   * the same turn as the last answer, before the callers' continuations, so the
   * requests they send next find the instance free.
   */
  private async attempt(instance: Backend, batch: Entry[], observed: readonly number[], size = this.sizeOf(batch), done?: () => void): Promise<void> {
    const t0 = performance.now();
    let t1 = t0;
    let computeMs = 0;
    try {
      const inputs = this.prepare(batch);
      t1 = performance.now();
      // A lone request's deadline and signal go along (an ensemble hands them to its steps).
      const outputs = await instance.infer(inputs, batch[0]!.request.outputNames, batch.length === 1 ? batch[0]!.request : undefined);
      const t2 = performance.now();
      computeMs = t2 - t1;
      const parts = this.split(outputs, batch);
      const t3 = performance.now();
      const info = { size, requests: batch.length, queueMs: observed, inputMs: t1 - t0, computeMs, outputMs: t3 - t2, ok: true };
      this.observePace(t3 - t0, size);
      if (!this.abandoned) this.notify((o) => o.onBatch?.(info));
      batch.forEach((e, i) => this.settle(e, { outputs: parts[i]!, batchSize: size, queueMs: e.queueMs ?? 0, computeMs }));
    } catch (err) {
      computeMs ||= performance.now() - t1;
      if (this.abandoned) return; // its callers were answered; the finally still frees the instance
      this.notify((o) => o.onBatch?.({ size, requests: batch.length, queueMs: observed, inputMs: t1 - t0, computeMs, outputMs: 0, ok: false }));
      if (batch.length > 1 && err instanceof InvalidArgument) await this.runInHalves(instance, batch);
      else for (const e of batch) this.settle(e, err, 'backend_error');
    } finally {
      done?.();
    }
  }

  /** Folds a successful batch into the pace. A batch of 0 rows still took its instance: it counts as 1. */
  private observePace(ms: number, size: number): void {
    const items = Math.max(1, size);
    if (this.paceItems === 0) {
      this.paceMs = ms;
      this.paceItems = items;
    } else {
      this.paceMs += PACE_WEIGHT * (ms - this.paceMs);
      this.paceItems += PACE_WEIGHT * (items - this.paceItems);
    }
  }

  /**
   * The backend refused a merged batch as bad input: one caller's data (an
   * index out of range, say) must not fail the others. The batch is run again
   * in halves on the same instance, and a half that fails the same way is
   * halved again, so each request gets its own answer and one culprit in n
   * costs about 2·log2(n) runs. Queue time was observed with the merged batch,
   * so the reruns report none. A caller whose deadline passed or who went away
   * meanwhile is answered so, not computed again.
   */
  private async runInHalves(instance: Backend, batch: Entry[]): Promise<void> {
    this.notify((o) => o.onSplit?.({ requests: batch.length }));
    const half = Math.ceil(batch.length / 2);
    for (const part of [batch.slice(0, half), batch.slice(half)]) {
      const now = performance.now();
      if (this.abandoned) return;
      const live = part.filter((e) => {
        if (e.state === 'done') return false; // answered meanwhile (abandon)
        if (e.request.signal?.aborted) this.settle(e, new Cancelled('request cancelled while its batch was run again: the client went away'), 'cancelled');
        else if (e.request.deadline !== undefined && e.request.deadline <= now) {
          this.settle(e, new DeadlineExceeded(`request deadline passed while its batch of ${this.label} was run again; it was not computed again`), 'deadline_exceeded');
        } else return true;
        return false;
      });
      if (live.length > 0) await this.attempt(instance, live, []);
    }
  }
}

/** Puts `e` into its group's order (`before`); a request that arrives last in its level is appended. */
function insert(group: QueuedRequest[], e: QueuedRequest): void {
  let i = group.length;
  while (i > 0 && before(e, group[i - 1]!)) i--;
  if (i === group.length) group.push(e);
  else group.splice(i, 0, e);
}
