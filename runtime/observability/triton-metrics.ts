/**
 * @module observability/triton-metrics
 * Triton's per-model Prometheus metrics under Triton's names (`nv_inference_request_success`,
 * `nv_inference_queue_duration_us`, ...; labels `model`, `version`), so dashboards, alerts and
 * autoscalers (KEDA, HPA through prometheus-adapter) written for Triton read a kinfer `/metrics`
 * unchanged. Triton derives them from the same counts as its statistics extension; so does this
 * module, at each scrape, from the loaded versions' `ModelStatistics` (nothing is added to the
 * request path). Durations are cumulative microseconds. A version's series go with its unload,
 * and a reload starts them from zero, as Triton's do.
 */
import { Counter, Gauge, type Registry } from 'prom-client';
import { FAILURE_REASONS, type DurationStat, type FailureReason, type ModelStat } from './statistics.js';

/**
 * What a scrape reads of each loaded version: its statistics, its failures by reason, its
 * requests not running yet, and the seconds its load took.
 */
export type TritonMetricsSource = () => { stat: ModelStat; failures: Record<FailureReason, number>; pending: number; loadSeconds: number }[];

const LABELS = ['model', 'version'] as const;
const us = (d: DurationStat) => Math.round(d.ns / 1000);

/** [name, help, value] of each counter, in Triton's words. */
const COUNTERS: [string, string, (s: ModelStat) => number][] = [
  ['nv_inference_request_success', 'Number of successful inference requests, all batch sizes', (s) => s.inference_stats.success.count],
  ['nv_inference_count', 'Number of inferences performed (does not include cached requests)', (s) => s.inference_count],
  ['nv_inference_exec_count', 'Number of model executions performed (does not include cached requests)', (s) => s.execution_count],
  ['nv_inference_request_duration_us', 'Cumulative inference request duration in microseconds (includes cached requests)', (s) => us(s.inference_stats.success)],
  ['nv_inference_queue_duration_us', 'Cumulative inference queuing duration in microseconds (includes cached requests)', (s) => us(s.inference_stats.queue)],
  ['nv_inference_compute_input_duration_us', 'Cumulative compute input duration in microseconds (does not include cached requests)', (s) => us(s.inference_stats.compute_input)],
  ['nv_inference_compute_infer_duration_us', 'Cumulative compute inference duration in microseconds (does not include cached requests)', (s) => us(s.inference_stats.compute_infer)],
  ['nv_inference_compute_output_duration_us', 'Cumulative inference compute output duration in microseconds (does not include cached requests)', (s) => us(s.inference_stats.compute_output)],
  ['nv_cache_num_hits_per_model', 'Number of cache hits per model', (s) => s.inference_stats.cache_hit.count],
  ['nv_cache_num_misses_per_model', 'Number of cache misses per model', (s) => s.inference_stats.cache_miss.count],
  ['nv_cache_hit_duration_per_model', 'Total cache hit duration per model, in microseconds', (s) => us(s.inference_stats.cache_hit)],
  ['nv_cache_miss_duration_per_model', 'Total cache miss (insert + lookup) duration per model, in microseconds', (s) => us(s.inference_stats.cache_miss)],
];

export function registerTritonMetrics(registry: Registry, source: TritonMetricsSource): void {
  // One read per scrape: a scrape calls every collect() in one synchronous pass, so the
  // read is dropped at the next microtask.
  let scrape: ReturnType<TritonMetricsSource> | undefined;
  const versions = () => {
    if (!scrape) {
      scrape = source();
      queueMicrotask(() => (scrape = undefined));
    }
    return scrape;
  };
  for (const [name, help, value] of COUNTERS) {
    new Counter({
      name,
      help,
      labelNames: LABELS,
      registers: [registry],
      collect() {
        this.reset();
        for (const { stat } of versions()) this.inc({ model: stat.name, version: stat.version }, value(stat));
      },
    });
  }
  // Every reason's series from the load on, at 0 until such a failure, as Triton's.
  new Counter({
    name: 'nv_inference_request_failure',
    help: 'Number of failed inference requests, all batch sizes',
    labelNames: [...LABELS, 'reason'],
    registers: [registry],
    collect() {
      this.reset();
      for (const { stat, failures } of versions()) {
        for (const reason of FAILURE_REASONS) this.inc({ model: stat.name, version: stat.version, reason }, failures[reason]);
      }
    },
  });
  new Gauge({
    name: 'nv_model_load_duration_secs',
    help: 'Model load time in seconds',
    labelNames: LABELS,
    registers: [registry],
    collect() {
      this.reset();
      for (const { stat, loadSeconds } of versions()) this.set({ model: stat.name, version: stat.version }, loadSeconds);
    },
  });
  new Gauge({
    name: 'nv_inference_pending_request_count',
    help: 'Instantaneous number of pending requests awaiting execution per-model',
    labelNames: LABELS,
    registers: [registry],
    collect() {
      this.reset();
      for (const { stat, pending } of versions()) this.set({ model: stat.name, version: stat.version }, pending);
    },
  });
}
