/**
 * @module observability/metrics
 * One prom-client registry per server, served at /metrics (the route must not
 * measure itself). Default labels come from K_SERVICE / K_REVISION. Per-model
 * series are labelled `model` and `version`; `batchObserver` feeds the
 * batching series from a batcher's hooks.
 *
 * @example
 * const metrics = createMetrics();
 * const batcher = createBatcher({ ...opts, observer: batchObserver(metrics, 'ocr-det', '1') });
 * metrics.requestDuration.labels({ model, version, protocol: 'v2-json', status: '200' }).observe(seconds);
 * metrics.coldStart.set(process.uptime());   // once, when the server turns ready
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { REJECT_REASONS } from '../batching/queue.js';

/** What the observer needs to know about a batcher's events (structurally `BatchObserver` of `batching/queue.ts`). */
export interface BatchEvents {
  onQueued(): void;
  onSettled(): void;
  onBatch(info: { size: number; requests: number; queueMs: readonly number[]; computeMs: number; ok: boolean }): void;
  onRejected(reason: string): void;
  onSplit(): void;
  onSequences(activeChange: number, backlogChange: number): void;
}

const LATENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
const STAGE_BUCKETS = [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1];
const BATCH_BUCKETS = [1, 2, 4, 8, 16, 32, 64, 128, 256];
const LOAD_BUCKETS = [0.01, 0.05, 0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300];

type ModelLabels = 'model' | 'version';

/**
 * Period of the event-loop delay sampler behind `nodejs_eventloop_lag_*`.
 * prom-client's default (10 ms) wakes the event loop 100 times a second: on
 * the 2-vCPU VM here that cost 8 ms of CPU per second in an idle server, and
 * each wake-up preempted the model's thread on a shared core. At 100 ms a
 * stall of 100 ms or more is always seen and shorter ones are sampled.
 */
export const EVENT_LOOP_SAMPLE_MS = 100;

export interface Metrics {
  registry: Registry;
  /** Receipt to response, by protocol (`v2-json`, `v2-binary`, `cloudevent`, ...) and HTTP status. */
  requestDuration: Histogram<ModelLabels | 'protocol' | 'status'>;
  /** Requests answered (kept from the first skeleton; equals requestDuration's _count). */
  requests: Counter<ModelLabels | 'protocol' | 'status'>;
  /** Time from enqueue to the start of the batch, per request. */
  queueDuration: Histogram<ModelLabels>;
  /** Backend time per executed batch. */
  computeDuration: Histogram<ModelLabels>;
  /** Items per executed batch. */
  batchSize: Histogram<ModelLabels>;
  /** Items computed (sum of batch sizes of successful batches). */
  inferenceCount: Counter<ModelLabels>;
  /** Successful backend executions (batches). */
  executionCount: Counter<ModelLabels>;
  /** Merged batches that failed as bad input and were run again in halves to find the culprit. */
  batchSplits: Counter<ModelLabels>;
  /** Requests queued or running. */
  pendingRequests: Gauge<ModelLabels>;
  /** A stateful model's sequences: holding a slot (`active`) or waiting for one (`backlog`). */
  sequences: Gauge<ModelLabels | 'state'>;
  /** Requests answered with an error by the batcher or data plane, by reason. */
  rejectedRequests: Counter<ModelLabels | 'reason'>;
  /** Body → InferRequest. */
  decodeDuration: Histogram<ModelLabels>;
  /** InferResponse → body. */
  encodeDuration: Histogram<ModelLabels>;
  /** Load of one model version into its backend instances. */
  modelLoadDuration: Histogram<ModelLabels | 'outcome'>;
  /** Process start to ready, set once. */
  coldStart: Gauge<string>;
}

export function createMetrics(env: NodeJS.ProcessEnv = process.env): Metrics {
  const registry = new Registry();
  const labels: Record<string, string> = {};
  if (env.K_SERVICE) labels.service = env.K_SERVICE;
  if (env.K_REVISION) labels.revision = env.K_REVISION;
  registry.setDefaultLabels(labels);
  // Standard names (process_*, nodejs_*) so stock Node.js dashboards and alerts apply.
  collectDefaultMetrics({ register: registry, eventLoopMonitoringPrecision: EVENT_LOOP_SAMPLE_MS });
  const registers = [registry];
  const model: ModelLabels[] = ['model', 'version'];
  return {
    registry,
    requestDuration: new Histogram({
      name: 'kinfer_request_duration_seconds',
      help: 'Inference request latency from receipt to response, by model, protocol and status',
      labelNames: [...model, 'protocol', 'status'],
      buckets: LATENCY_BUCKETS,
      registers,
    }),
    requests: new Counter({
      name: 'kinfer_requests_total',
      help: 'Inference requests answered, by model, protocol and status',
      labelNames: [...model, 'protocol', 'status'],
      registers,
    }),
    queueDuration: new Histogram({
      name: 'kinfer_queue_duration_seconds',
      help: 'Time a request waited in the batcher queue before its batch started',
      labelNames: model,
      buckets: LATENCY_BUCKETS,
      registers,
    }),
    computeDuration: new Histogram({
      name: 'kinfer_compute_duration_seconds',
      help: 'Backend time per executed batch',
      labelNames: model,
      buckets: LATENCY_BUCKETS,
      registers,
    }),
    batchSize: new Histogram({
      name: 'kinfer_batch_size',
      help: 'Items (sum of dim 0) per executed batch',
      labelNames: model,
      buckets: BATCH_BUCKETS,
      registers,
    }),
    inferenceCount: new Counter({
      name: 'kinfer_inference_count_total',
      help: 'Items inferred (a request with batch dim 4 counts 4)',
      labelNames: model,
      registers,
    }),
    executionCount: new Counter({
      name: 'kinfer_execution_count_total',
      help: 'Backend executions (batches); inference_count / execution_count is the mean batch size',
      labelNames: model,
      registers,
    }),
    batchSplits: new Counter({
      name: 'kinfer_batch_splits_total',
      help: 'Merged batches that failed as bad input and were run again in halves to find the culprit; rising with few rejections means the model does not batch its inputs',
      labelNames: model,
      registers,
    }),
    pendingRequests: new Gauge({
      name: 'kinfer_pending_requests',
      help: 'Requests queued or running in the batcher',
      labelNames: model,
      registers,
    }),
    sequences: new Gauge({
      name: 'kinfer_sequences',
      help: "A stateful model's sequences holding a slot (state=active) or waiting for one (state=backlog)",
      labelNames: [...model, 'state'],
      registers,
    }),
    rejectedRequests: new Counter({
      name: 'kinfer_rejected_requests_total',
      help: 'Requests answered with an error instead of a result, by reason (queue_full, deadline_exceeded, queue_timeout, cancelled, unavailable, invalid_argument, backend_error)',
      labelNames: [...model, 'reason'],
      registers,
    }),
    decodeDuration: new Histogram({
      name: 'kinfer_decode_duration_seconds',
      help: 'Time to decode a request body into tensors',
      labelNames: model,
      buckets: STAGE_BUCKETS,
      registers,
    }),
    encodeDuration: new Histogram({
      name: 'kinfer_encode_duration_seconds',
      help: 'Time to encode a response body from tensors',
      labelNames: model,
      buckets: STAGE_BUCKETS,
      registers,
    }),
    modelLoadDuration: new Histogram({
      name: 'kinfer_model_load_duration_seconds',
      help: 'Time to load a model version into its backend',
      labelNames: [...model, 'outcome'],
      buckets: LOAD_BUCKETS,
      registers,
    }),
    coldStart: new Gauge({
      name: 'kinfer_cold_start_seconds',
      help: 'Seconds from process start to the server reporting ready',
      registers,
    }),
  };
}

/**
 * Hooks for one model version's batcher. Label children are bound once here,
 * so each event is a few additions.
 */
export function batchObserver(metrics: Metrics, model: string, version: string): BatchEvents {
  const l = { model, version };
  const queue = metrics.queueDuration.labels(l);
  const compute = metrics.computeDuration.labels(l);
  const size = metrics.batchSize.labels(l);
  const inferences = metrics.inferenceCount.labels(l);
  const executions = metrics.executionCount.labels(l);
  const pending = metrics.pendingRequests.labels(l);
  // Touch the series so they read 0 rather than being absent before traffic.
  inferences.inc(0);
  executions.inc(0);
  pending.inc(0);
  return {
    onQueued: () => pending.inc(),
    onSettled: () => pending.dec(),
    onBatch: (info) => {
      for (const ms of info.queueMs) queue.observe(ms / 1000);
      if (!info.ok) return;
      compute.observe(info.computeMs / 1000);
      size.observe(info.size);
      inferences.inc(info.size);
      executions.inc();
    },
    onRejected: (reason) => metrics.rejectedRequests.inc({ ...l, reason }),
    onSplit: () => metrics.batchSplits.inc(l),
    onSequences: (active, backlog) => {
      metrics.sequences.inc({ ...l, state: 'active' }, active);
      metrics.sequences.inc({ ...l, state: 'backlog' }, backlog);
    },
  };
}

/** A bound series: one `observe` feeds every metric it stands for. */
export interface BoundSeries {
  observe(seconds: number): void;
}

/** Label sets cached per registry; past this many the cache starts over (model names come from URLs). */
const MAX_BOUND = 1024;
const bound = new WeakMap<Metrics, Map<string, BoundSeries>>();

function boundSeries(metrics: Metrics, key: string, make: () => BoundSeries): BoundSeries {
  let cache = bound.get(metrics);
  if (!cache) bound.set(metrics, (cache = new Map()));
  let s = cache.get(key);
  if (!s) {
    if (cache.size >= MAX_BOUND) cache.clear();
    cache.set(key, (s = make()));
  }
  return s;
}

/**
 * `kinfer_request_duration_seconds` and `kinfer_requests_total` for one label
 * set, bound once (per request only a Map lookup).
 */
export function requestSeries(metrics: Metrics, model: string, version: string, protocol: string, status: number): BoundSeries {
  return boundSeries(metrics, `r\0${model}\0${version}\0${protocol}\0${status}`, () => {
    const labels = { model, version, protocol, status: String(status) };
    rememberRequestLabels(metrics, labels);
    const duration = metrics.requestDuration.labels(labels);
    const count = metrics.requests.labels(labels);
    return {
      observe(seconds) {
        duration.observe(seconds);
        count.inc();
      },
    };
  });
}

/** `kinfer_decode_duration_seconds` / `kinfer_encode_duration_seconds` for one model version, bound once. */
export function stageSeries(metrics: Metrics, stage: 'decode' | 'encode', model: string, version: string): BoundSeries {
  return boundSeries(metrics, `${stage}\0${model}\0${version}`, () =>
    (stage === 'decode' ? metrics.decodeDuration : metrics.encodeDuration).labels({ model, version }),
  );
}

/**
 * Every request label set made per model version, so forgetModel can remove them (prom-client
 * removes only full label sets). Bounded: a model name is a label only once it serves
 * (routes check first), times a handful of protocols and statuses.
 */
const requestLabelSets = new WeakMap<Metrics, Map<string, Map<string, Record<'model' | 'version' | 'protocol' | 'status', string>>>>();

function rememberRequestLabels(metrics: Metrics, labels: Record<'model' | 'version' | 'protocol' | 'status', string>): void {
  let byModel = requestLabelSets.get(metrics);
  if (!byModel) requestLabelSets.set(metrics, (byModel = new Map()));
  const key = `${labels.model}\0${labels.version}`;
  let sets = byModel.get(key);
  if (!sets) byModel.set(key, (sets = new Map()));
  sets.set(`${labels.protocol}\0${labels.status}`, labels);
}

/** Drops a model version's series (after unload in multi-model mode): batching, stages, requests, rejections, loads. */
export function forgetModel(metrics: Metrics, model: string, version: string): void {
  const l = { model, version };
  const byModel = requestLabelSets.get(metrics);
  for (const labels of byModel?.get(`${model}\0${version}`)?.values() ?? []) {
    metrics.requestDuration.remove(labels);
    metrics.requests.remove(labels);
  }
  byModel?.delete(`${model}\0${version}`);
  for (const reason of REJECT_REASONS) metrics.rejectedRequests.remove({ ...l, reason });
  for (const outcome of ['success', 'failure']) metrics.modelLoadDuration.remove({ ...l, outcome });
  for (const state of ['active', 'backlog']) metrics.sequences.remove({ ...l, state });
  const cache = bound.get(metrics);
  if (cache) {
    for (const key of cache.keys()) {
      const [, m, v] = key.split('\0');
      if (m === model && v === version) cache.delete(key);
    }
  }
  for (const m of [
    metrics.queueDuration,
    metrics.computeDuration,
    metrics.batchSize,
    metrics.inferenceCount,
    metrics.executionCount,
    metrics.batchSplits,
    metrics.pendingRequests,
    metrics.decodeDuration,
    metrics.encodeDuration,
  ]) {
    m.remove(l);
  }
}

/** What `/metrics` reads of the response cache (structurally `ResponseCache`). */
export interface ResponseCacheState {
  readonly bytes: number;
  readonly size: number;
  readonly maxBytes: number;
  readonly hits: number;
  readonly misses: number;
}

/** The server's response cache in `/metrics`, read at each scrape. */
export function registerResponseCacheMetrics(registry: Registry, cache: ResponseCacheState): void {
  new Gauge({
    name: 'kinfer_response_cache_bytes',
    help: 'Bytes held by the response cache, by kind (used, limit)',
    labelNames: ['kind'],
    registers: [registry],
    collect() {
      this.set({ kind: 'used' }, cache.bytes);
      this.set({ kind: 'limit' }, cache.maxBytes);
    },
  });
  new Gauge({
    name: 'kinfer_response_cache_entries',
    help: 'Results held by the response cache',
    registers: [registry],
    collect() {
      this.set(cache.size);
    },
  });
  new Counter({
    name: 'kinfer_response_cache_lookups_total',
    help: 'Response cache lookups by result (hit, miss), all models',
    labelNames: ['result'],
    registers: [registry],
    collect() {
      this.reset();
      this.inc({ result: 'hit' }, cache.hits);
      this.inc({ result: 'miss' }, cache.misses);
    },
  });
}
