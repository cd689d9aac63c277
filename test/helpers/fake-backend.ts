/**
 * @module test/helpers/fake-backend
 * A Backend for batcher tests: y = 2·x per element (FP32 input `x`, any
 * shape), records every batch it sees, and can be held, slowed or made to fail.
 * Several fakes may share one `Activity` to observe parallel runs.
 */
import type { Backend, ModelMetadata } from '../../runtime/backends/backend.js';
import type { Tensor } from '../../runtime/core/tensor.js';

export interface Activity {
  active: number;
  maxActive: number;
  /** [start, end] of each infer call, performance.now() ms. */
  intervals: [number, number][];
}

export function newActivity(): Activity {
  return { active: 0, maxActive: 0, intervals: [] };
}

export class FakeBackend implements Backend {
  /** Copies of the inputs of every batch, in call order. */
  readonly batches: Tensor[][] = [];
  /** The input tensor objects as received (identity checks: not merged → caller's own tensors). */
  readonly received: Tensor[][] = [];
  delayMs = 0;
  /** Returns an error to throw for this batch, or undefined. */
  failWith: ((inputs: Tensor[]) => Error | undefined) | undefined;
  /** Replaces the computed outputs (e.g. to return a wrong dim 0). */
  mangle: ((outputs: Tensor[]) => Tensor[]) | undefined;
  private gate: Promise<void> | undefined;
  private open: (() => void) | undefined;

  constructor(readonly activity: Activity = newActivity()) {}

  /** Until `release()`, every infer call waits (after recording its batch). */
  hold(): void {
    this.gate = new Promise((resolve) => (this.open = resolve));
  }

  release(): void {
    this.open?.();
    this.gate = undefined;
  }

  /** Every row value (x) seen by the backend. */
  seenValues(): number[] {
    return this.batches.flatMap((b) => b.filter((t) => t.name === 'x').flatMap((t) => Array.from(t.data as Float32Array)));
  }

  /** Rows (dim 0 of x) of each batch. */
  batchRows(): number[] {
    return this.batches.map((b) => b.find((t) => t.name === 'x')?.shape[0] ?? -1);
  }

  async load(): Promise<ModelMetadata> {
    return {
      platform: 'fake',
      inputs: [{ name: 'x', datatype: 'FP32', shape: [-1, -1] }],
      outputs: [{ name: 'y', datatype: 'FP32', shape: [-1, -1] }],
      batchable: true,
      maxBatchSize: 0,
    };
  }

  async infer(inputs: Tensor[]): Promise<Tensor[]> {
    const a = this.activity;
    a.active++;
    a.maxActive = Math.max(a.maxActive, a.active);
    const start = performance.now();
    this.received.push(inputs);
    this.batches.push(
      inputs.map((t) => ({ ...t, shape: [...t.shape], data: Array.isArray(t.data) ? [...t.data] : t.data.slice() }) as Tensor),
    );
    try {
      if (this.gate) await this.gate;
      if (this.delayMs > 0) await new Promise((r) => setTimeout(r, this.delayMs));
      const err = this.failWith?.(inputs);
      if (err) throw err;
      const x = inputs.find((t) => t.name === 'x');
      if (!x) throw new Error('fake backend: no input x');
      const y = new Float32Array(x.data.length);
      (x.data as Float32Array).forEach((v, i) => (y[i] = 2 * v));
      const outputs: Tensor[] = [{ name: 'y', datatype: 'FP32', shape: [...x.shape], data: y }];
      return this.mangle ? this.mangle(outputs) : outputs;
    } finally {
      a.active--;
      a.intervals.push([start, performance.now()]);
    }
  }

  async unload(): Promise<void> {}
}

/** An FP32 input `x` of shape [rows, cols] holding `values` (row-major). */
export function xInput(values: number[], cols = 1): Tensor {
  return { name: 'x', datatype: 'FP32', shape: [values.length / cols, cols], data: Float32Array.from(values) };
}
