import { describe, expect, it } from 'vitest';
import { ModelStatistics } from './statistics.js';

const batch = (size: number, requests: number, queueMs: number[], ok = true) => ({ size, requests, queueMs, inputMs: 0.25, computeMs: 2, outputMs: 0.125, ok });

describe('ModelStatistics', () => {
  it('adds an execution once per batch size and its durations once per request in it, in nanoseconds', () => {
    const s = new ModelStatistics();
    s.observer.onBatch!(batch(3, 2, [1, 0.5]));
    s.observer.onBatch!(batch(3, 3, [0, 0, 0]));
    s.observer.onBatch!(batch(1, 1, [2]));
    const snap = s.snapshot('m', '1');
    expect(snap.execution_count).toBe(3);
    expect(snap.inference_count).toBe(7);
    expect(snap.batch_stats.map((b) => [b.batch_size, b.compute_infer.count, b.compute_infer.ns])).toEqual([
      [1, 1, 2e6],
      [3, 2, 4e6],
    ]);
    expect(snap.batch_stats[1]!.compute_input).toEqual({ count: 2, ns: 0.5e6 });
    expect(snap.batch_stats[1]!.compute_output).toEqual({ count: 2, ns: 0.25e6 });
    const i = snap.inference_stats;
    expect(i.queue).toEqual({ count: 6, ns: 3.5e6 });
    expect(i.compute_infer).toEqual({ count: 6, ns: 12e6 });
    expect(i.compute_input).toEqual({ count: 6, ns: 1.5e6 });
  });

  it('counts only the queue time of a failed execution, and request outcomes apart', () => {
    const s = new ModelStatistics();
    s.observer.onBatch!(batch(2, 2, [1, 1], false));
    const t = performance.now();
    s.failed('BACKEND', t - 3, t);
    s.succeeded(t - 1.5, t);
    const snap = s.snapshot('m', '1');
    expect(snap.execution_count).toBe(0);
    expect(snap.batch_stats).toEqual([]);
    expect(snap.inference_stats.queue).toEqual({ count: 2, ns: 2e6 });
    expect(snap.inference_stats.compute_infer.count).toBe(0);
    expect(snap.inference_stats.fail).toEqual({ count: 1, ns: 3e6 });
    expect(snap.inference_stats.success).toEqual({ count: 1, ns: 1.5e6 });
    expect(s.failuresByReason()).toEqual({ REJECTED: 0, CANCELED: 0, BACKEND: 1, OTHER: 0 });
    expect(Math.abs(snap.last_inference - Date.now())).toBeLessThan(1000);
  });

  it('hands out copies: a snapshot does not change with later traffic', () => {
    const s = new ModelStatistics();
    const first = s.snapshot('m', '1');
    s.succeeded(performance.now() - 1, performance.now());
    s.observer.onBatch!(batch(1, 1, [0]));
    expect(first.inference_stats.success.count).toBe(0);
    expect(first.batch_stats).toEqual([]);
    expect(s.snapshot('m', '1').inference_stats.success.count).toBe(1);
  });
});
