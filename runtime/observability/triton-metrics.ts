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
import { readFileSync } from 'node:fs';
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

/** How often the CPU figures are sampled: Triton's poll thread runs at half its `--metrics-interval-ms` (2 s). */
export const CPU_METRICS_INTERVAL_MS = 1000;

/**
 * Triton's CPU series, read from /proc as Triton reads them (host-wide, not the container's
 * cgroup): `nv_cpu_utilization`, the busy share of every core's time since the last sample
 * (/proc/stat's `cpu` line: all but idle and iowait), and `nv_cpu_memory_total_bytes` /
 * `nv_cpu_memory_used_bytes` (/proc/meminfo: MemTotal, and MemTotal − MemAvailable). Sampled
 * every `intervalMs`; a sample that cannot be read sets all three to 0, as Triton does; where
 * /proc cannot be read at start (not Linux) the series are not registered.
 */
export function registerTritonCpuMetrics(registry: Registry, read: (path: string) => string = (p) => readFileSync(p, 'utf8'), intervalMs = CPU_METRICS_INTERVAL_MS): { stop: () => void } {
  let last: { busy: number; total: number } | undefined;
  let memory: { total: number; used: number };
  let utilization = 0;
  const sample = (): boolean => {
    try {
      const cpu = read('/proc/stat').split('\n').find((l) => l.startsWith('cpu '));
      const ticks = (cpu ?? '').trim().split(/\s+/).slice(1).map(Number);
      const meminfo = read('/proc/meminfo');
      const kib = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(meminfo)?.[1]) * 1024;
      if (ticks.length < 4 || ticks.some((t) => !Number.isFinite(t)) || !Number.isFinite(kib('MemTotal')) || !Number.isFinite(kib('MemAvailable'))) return false;
      // user nice system idle iowait irq softirq steal (guest time is counted in user already)
      const total = ticks.slice(0, 8).reduce((a, b) => a + b, 0);
      const busy = total - ticks[3]! - (ticks[4] ?? 0);
      if (last && total > last.total) utilization = Math.min(1, Math.max(0, (busy - last.busy) / (total - last.total)));
      last = { busy, total };
      memory = { total: kib('MemTotal'), used: kib('MemTotal') - kib('MemAvailable') };
      return true;
    } catch {
      return false;
    }
  };
  if (!sample()) return { stop: () => undefined };
  const timer = setInterval(() => {
    if (sample()) return;
    utilization = 0;
    memory = { total: 0, used: 0 };
  }, intervalMs);
  timer.unref();
  const gauge = (name: string, help: string, value: () => number) => new Gauge({ name, help, registers: [registry], collect() { this.set(value()); } });
  gauge('nv_cpu_utilization', 'CPU utilization rate [0.0 - 1.0]', () => utilization);
  gauge('nv_cpu_memory_total_bytes', 'CPU total memory (RAM), in bytes', () => memory.total);
  gauge('nv_cpu_memory_used_bytes', 'CPU used memory (RAM), in bytes', () => memory.used);
  return { stop: () => clearInterval(timer) };
}
