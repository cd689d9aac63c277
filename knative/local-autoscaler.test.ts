/**
 * kinfer dev's KPA decider (knative/local-autoscaler.ts) against the rules of Knative's
 * pkg/autoscaler/scaling/autoscaler.go: time is passed in, so each case is exact.
 */
import { describe, expect, it } from 'vitest';
import { defineFunction } from '../functions/define.js';
import { deciderSpec, LocalAutoscaler, TimeAverage, type DeciderSpec } from './local-autoscaler.js';

const SPEC: DeciderSpec = { targetValue: 1, stableWindowMs: 60_000, panicWindowMs: 6_000, panicThreshold: 2, scaleDownDelayMs: 0 };

/** Records `value` in every second of [from, to). */
function fill(a: LocalAutoscaler, from: number, to: number, value: number): void {
  for (let s = from; s < to; s++) a.record(s * 1000 + 500, value);
}

describe('LocalAutoscaler (Knative KPA rules)', () => {
  it('without data keeps the count; in stable mode wants ⌈stable average / target⌉, averaged over the seconds seen while the window fills', () => {
    const a = new LocalAutoscaler(SPEC);
    expect(a.scale(0, 1)).toBeUndefined();
    fill(a, 0, 10, 4);
    expect(a.scale(9_900, 4)).toEqual({ desired: 4, panicking: false, stable: 4, panic: 4 }); // 10 s seen, not 60
    fill(a, 10, 60, 4.5);
    expect(a.scale(59_900, 4)?.desired).toBe(5); // (10·4 + 50·4.5) / 60 = 4.42
  });

  it('panics when the panic window wants twice the ready replicas, never scales down while panicking, and stops a stable window after the last such tick', () => {
    const a = new LocalAutoscaler(SPEC);
    fill(a, 0, 54, 1);
    fill(a, 54, 60, 10);
    // stable (54 + 60) / 60 = 1.9 → 2; panic 10 → 10, and 10 / 1 ready ≥ 2: panic, the larger wins.
    expect(a.scale(59_900, 1)).toMatchObject({ desired: 10, panicking: true });
    fill(a, 60, 66, 1);
    expect(a.scale(65_900, 10)).toMatchObject({ desired: 10, panicking: true }); // panic window 1: no decrease
    fill(a, 66, 120, 1);
    expect(a.scale(119_800, 10)).toMatchObject({ desired: 10, panicking: true }); // 59.9 + 60 s not yet passed
    // Out of panic: stable 1 → 1, but one tick halves at most (max-scale-down-rate 2).
    expect(a.scale(120_000, 10)).toMatchObject({ desired: 5, panicking: false });
    expect(a.scale(120_000, 5)?.desired).toBe(2);
    expect(a.scale(120_000, 2)?.desired).toBe(1);
  });

  it('a window without requests wants no replica (zero is the idle timer’s to act on)', () => {
    const a = new LocalAutoscaler(SPEC);
    fill(a, 0, 60, 0);
    expect(a.scale(59_900, 1)).toEqual({ desired: 0, panicking: false, stable: 0, panic: 0 });
  });

  it('scaleDownDelay holds the highest count of its window', () => {
    const spec = { ...SPEC, stableWindowMs: 6_000, panicWindowMs: 1_000 };
    const delayed = new LocalAutoscaler({ ...spec, scaleDownDelayMs: 10_000 });
    const prompt = new LocalAutoscaler(spec);
    for (const a of [delayed, prompt]) {
      fill(a, 0, 6, 4);
      expect(a.scale(5_900, 4)?.desired).toBe(4);
      fill(a, 6, 12, 0);
    }
    expect(prompt.scale(11_900, 4)?.desired).toBe(2);
    expect(delayed.scale(11_900, 4)?.desired).toBe(4); // 5.9 s is within 10 s
    fill(delayed, 12, 16, 0);
    expect(delayed.scale(16_000, 4)?.desired).toBe(2); // now only 11.9 s and 16 s (2 and 2) are
    expect(delayed.scale(30_000, 4)).toBeUndefined(); // nothing recorded in the last stable window
  });

  it("takes a function's settings and Knative's defaults (70 % utilization, 60 s, 10 %, 200 %), a concurrency target capped by containerConcurrency", () => {
    const f = (scaling: Record<string, unknown>) => defineFunction({ name: 'f', model: { name: 'm', storageUri: 'pvc://m/m', platform: 'onnx' }, scaling }).spec;
    expect(deciderSpec(f({}))).toEqual({ targetValue: 0.7, stableWindowMs: 60_000, panicWindowMs: 6_000, panicThreshold: 2, scaleDownDelayMs: 0 });
    expect(deciderSpec(f({ target: 10, containerConcurrency: 4, window: '20s', targetUtilizationPercentage: 50, panicWindowPercentage: 25, panicThresholdPercentage: 150, scaleDownDelay: '30s' }))).toEqual({
      targetValue: 2,
      stableWindowMs: 20_000,
      panicWindowMs: 5_000,
      panicThreshold: 1.5,
      scaleDownDelayMs: 30_000,
    });
    expect(deciderSpec(f({ metric: 'rps', target: 50, containerConcurrency: 4 })).targetValue).toBe(35);
    expect(deciderSpec(f({ window: '6s', panicWindowPercentage: 1 })).panicWindowMs).toBe(1000); // at least one bucket
  });
});

describe('TimeAverage', () => {
  it('reads the time-weighted average of a count since the last read', () => {
    const t = new TimeAverage(0);
    t.add(0, 1);
    t.add(500, 1);
    expect(t.read(1000)).toBe(1.5);
    t.add(1500, -2);
    expect(t.read(2000)).toBe(1);
    expect(t.read(2000)).toBe(0); // no time passed: the current value
  });
});
