/**
 * @module knative/local-autoscaler
 * `kinfer dev`'s Knative Pod Autoscaler: how many processes a function wants, decided as KPA
 * decides pods (knative/serving pkg/autoscaler/scaling/autoscaler.go). The metric (concurrency:
 * requests in flight or waiting, time-averaged per second; rps: arrivals per second) goes into
 * one-second buckets; every tick the stable window's average (`window`, default 60 s) and the
 * panic window's (`panicWindowPercentage` of it, default 10 %) are divided by the target per
 * replica (`target` × `targetUtilizationPercentage`, default 70 %). Panic starts when the panic
 * window wants `panicThresholdPercentage` (default 200 %) of the ready replicas, and lasts until
 * a stable window has passed below it; while panicking the count only grows. One tick moves at
 * most from n to ⌊n/2⌋ down (Knative's max-scale-down-rate 2) and ⌈1000·n⌉ up;
 * `scaleDownDelay` holds the highest count of its window. Pure: time comes in as arguments.
 */
import { durationMs, scalingTarget, type FunctionSpec } from '../functions/define.js';

/** Knative's autoscaler tick (tickInterval). */
export const TICK_MS = 2000;
/** The metric's bucket (Knative's queue-proxy reports each second). */
export const BUCKET_MS = 1000;
const MAX_SCALE_UP_RATE = 1000;
const MAX_SCALE_DOWN_RATE = 2;

export interface DeciderSpec {
  /** The metric's value one replica should carry: target × utilization. */
  targetValue: number;
  stableWindowMs: number;
  panicWindowMs: number;
  /** Panic when the panic window wants this many times the ready replicas (2 = 200 %). */
  panicThreshold: number;
  scaleDownDelayMs: number;
}

/** A function's decider, from its scaling spec and Knative's defaults (config-autoscaler). */
export function deciderSpec(spec: FunctionSpec): DeciderSpec {
  const s = spec.scaling;
  // Knative: a target above containerConcurrency is containerConcurrency (a replica cannot take more).
  const target = s.metric === 'concurrency' && s.containerConcurrency > 0 ? Math.min(scalingTarget(spec), s.containerConcurrency) : scalingTarget(spec);
  const stableWindowMs = durationMs(s.window ?? '60s');
  return {
    targetValue: (target * (s.targetUtilizationPercentage ?? 70)) / 100,
    stableWindowMs,
    // Knative rounds the panic window to the bucket size, at least one bucket.
    panicWindowMs: Math.max(BUCKET_MS, Math.round((stableWindowMs * (s.panicWindowPercentage ?? 10)) / 100 / BUCKET_MS) * BUCKET_MS),
    panicThreshold: (s.panicThresholdPercentage ?? 200) / 100,
    scaleDownDelayMs: durationMs(s.scaleDownDelay),
  };
}

/** What one tick decided, for the log line. */
export interface Decision {
  desired: number;
  panicking: boolean;
  stable: number;
  panic: number;
}

export class LocalAutoscaler {
  /** Per-second sums, keyed by the second (ms since the epoch / 1000, floored). */
  private readonly buckets = new Map<number, number>();
  private firstSecond?: number;
  private panicSince?: number;
  private maxPanicPods = 0;
  /** [time, desired] of the ticks within scaleDownDelay. */
  private recent: [number, number][] = [];

  constructor(readonly spec: DeciderSpec) {}

  /** Adds `value` to the bucket of `now` (concurrency: a second's average; rps: arrivals). */
  record(now: number, value: number): void {
    const second = Math.floor(now / BUCKET_MS);
    this.firstSecond ??= second;
    this.buckets.set(second, (this.buckets.get(second) ?? 0) + value);
    const oldest = second - Math.ceil(this.spec.stableWindowMs / BUCKET_MS);
    for (const k of this.buckets.keys()) if (k <= oldest) this.buckets.delete(k);
  }

  /** The average over the window ending at `now`, over the seconds recorded when fewer than the window; undefined without data. */
  private average(now: number, windowMs: number): number | undefined {
    if (this.firstSecond === undefined) return undefined;
    const last = Math.floor(now / BUCKET_MS);
    const seconds = Math.ceil(windowMs / BUCKET_MS);
    const from = Math.max(last - seconds + 1, this.firstSecond);
    if (from > last) return undefined;
    let sum = 0;
    let any = false;
    for (let s = from; s <= last; s++) {
      const v = this.buckets.get(s);
      if (v !== undefined) (sum += v), (any = true);
    }
    return any ? sum / (last - from + 1) : undefined;
  }

  /** Desired replicas at `now` with `ready` replicas ready; undefined without data (keep the count). */
  scale(now: number, ready: number): Decision | undefined {
    const spec = this.spec;
    const stable = this.average(now, spec.stableWindowMs);
    if (stable === undefined) return undefined;
    const panic = this.average(now, spec.panicWindowMs) ?? 0; // Knative: no data only when the stable window has none
    const readyPods = Math.max(1, ready);
    const maxScaleUp = Math.ceil(MAX_SCALE_UP_RATE * readyPods);
    const maxScaleDown = Math.floor(readyPods / MAX_SCALE_DOWN_RATE);
    const dspc = Math.ceil(stable / spec.targetValue);
    const dppc = Math.ceil(panic / spec.targetValue);
    const clampRate = (n: number) => Math.min(Math.max(n, maxScaleDown), maxScaleUp);
    const over = dppc / readyPods >= spec.panicThreshold;
    if (over) this.panicSince = now;
    else if (this.panicSince !== undefined && this.panicSince + spec.stableWindowMs < now) {
      this.panicSince = undefined;
      this.maxPanicPods = 0;
    }
    let desired = clampRate(dspc);
    if (this.panicSince !== undefined) {
      // Provision for the larger of the two windows, and never down while panicking.
      this.maxPanicPods = Math.max(this.maxPanicPods, desired, clampRate(dppc));
      desired = this.maxPanicPods;
    }
    if (spec.scaleDownDelayMs > 0) {
      this.recent = this.recent.filter(([t]) => t > now - spec.scaleDownDelayMs);
      this.recent.push([now, desired]);
      desired = Math.max(...this.recent.map(([, d]) => d));
    }
    return { desired, panicking: this.panicSince !== undefined, stable, panic };
  }
}

/**
 * A count that changes at moments (requests in flight and waiting), read as its time average
 * over each interval between reads: what Knative's queue-proxy reports each second.
 */
export class TimeAverage {
  private value = 0;
  private area = 0;
  private since: number;
  private last: number;

  constructor(now: number) {
    this.since = now;
    this.last = now;
  }

  add(now: number, delta: number): void {
    this.area += this.value * (now - this.last);
    this.last = now;
    this.value += delta;
  }

  /** The average since the previous read (the current value when no time passed). */
  read(now: number): number {
    this.add(now, 0);
    const span = now - this.since;
    const avg = span > 0 ? this.area / span : this.value;
    this.area = 0;
    this.since = now;
    return avg;
  }
}
