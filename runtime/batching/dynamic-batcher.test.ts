import { afterEach, describe, expect, it } from 'vitest';
import { Cancelled, DeadlineExceeded, Internal, InvalidArgument, ResourceExhausted, Unavailable } from '../core/errors.js';
import type { Tensor } from '../core/tensor.js';
import { FakeBackend, newActivity, xInput } from '../../test/helpers/fake-backend.js';
import type { Batcher } from './batcher.js';
import { createBatcher, DynamicBatcher, type BatchInfo, type BatcherOptions } from './dynamic-batcher.js';
import { PassThroughBatcher } from './pass-through.js';
import { MAX_RETRY_AFTER_SECONDS, retryAfterSeconds } from './queue.js';
import type { QueuePolicy } from '../repository/model-config.js';

const batchers: Batcher[] = [];
const fakes: FakeBackend[] = [];

/** A fake released (unblocked) after each test, so a failing test cannot hang the drain. */
function fake(activity = newActivity()): FakeBackend {
  const f = new FakeBackend(activity);
  fakes.push(f);
  return f;
}

function make(backends: FakeBackend[] | FakeBackend, opts: Partial<BatcherOptions> = {}): Batcher {
  const b = createBatcher({
    instances: Array.isArray(backends) ? backends : [backends],
    batchable: true,
    maxBatchSize: 8,
    maxQueueDelayMicroseconds: 2000,
    preferredBatchSizes: [],
    maxQueueSize: 128,
    ...opts,
  });
  batchers.push(b);
  return b;
}

afterEach(async () => {
  for (const f of fakes.splice(0)) f.release();
  // Every batcher must drain without leaving timers behind.
  await within(Promise.all(batchers.splice(0).map((b) => b.drain())), 'drain');
});

const values = (t: Tensor | undefined) => Array.from((t?.data ?? []) as Float32Array);
const tick = (ms = 0) => new Promise((r) => setTimeout(r, ms));
/** Fails (rather than hangs) when `p` does not settle within 2 s. */
async function within<T>(p: Promise<T>, what: string, ms = 2000): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: not settled within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([p, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
async function caught(p: Promise<unknown>): Promise<unknown> {
  try {
    await within(p, 'expected rejection');
  } catch (err) {
    return err;
  }
  throw new Error('expected a rejection');
}

describe('createBatcher', () => {
  it('picks DynamicBatcher only for batchable models with maxBatchSize > 1', () => {
    const fb = fake();
    expect(make(fb)).toBeInstanceOf(DynamicBatcher);
    expect(make(fb, { batchable: false })).toBeInstanceOf(PassThroughBatcher);
    expect(make(fb, { maxBatchSize: 1 })).toBeInstanceOf(PassThroughBatcher);
    expect(make(fb, { maxBatchSize: 0 })).toBeInstanceOf(PassThroughBatcher);
  });
});

describe('DynamicBatcher', () => {
  it('merges 32 concurrent requests into fewer executions and gives each caller its own rows', async () => {
    const fb = fake();
    fb.delayMs = 2;
    const b = make(fb);
    // Distinct inputs; some requests carry 2 rows.
    const inputs = Array.from({ length: 32 }, (_, i) => (i % 5 === 0 ? [i, i + 0.25, i + 0.5, i + 0.75] : [i + 0.1, i + 0.2]));
    const results = await Promise.all(inputs.map((v) => b.enqueue({ inputs: [xInput(v, 2)], outputNames: [] })));
    results.forEach((r, i) => {
      expect(r.outputs).toHaveLength(1);
      expect(r.outputs[0]!.shape).toEqual([inputs[i]!.length / 2, 2]);
      expect(values(r.outputs[0])).toEqual(inputs[i]!.map((v) => Math.fround(v) * 2));
      expect(r.batchSize).toBeGreaterThanOrEqual(inputs[i]!.length / 2);
      expect(r.batchSize).toBeLessThanOrEqual(8);
    });
    const items = inputs.reduce((n, v) => n + v.length / 2, 0);
    expect(fb.batches.length).toBeLessThan(32);
    expect(fb.batchRows().reduce((a, c) => a + c, 0)).toBe(items);
    expect(Math.max(...fb.batchRows())).toBeLessThanOrEqual(8);
    expect(b.pending).toBe(0);
  });

  it('with no delay, looks at requests sent in the same tick together (closed-loop clients get full batches)', async () => {
    const fb = fake();
    fb.delayMs = 3;
    const b = make(fb, { maxBatchSize: 8, maxQueueDelayMicroseconds: 0 });
    const client = async (id: number) => {
      for (let round = 0; round < 3; round++) {
        const r = await b.enqueue({ inputs: [xInput([id * 10 + round])], outputNames: [] });
        expect(values(r.outputs[0])).toEqual([2 * (id * 10 + round)]);
      }
    };
    await Promise.all(Array.from({ length: 8 }, (_, id) => client(id)));
    expect(fb.batchRows()).toEqual([8, 8, 8]);
  });

  it('fires at once on reaching the largest preferred size; the rest after the delay', async () => {
    const fb = fake();
    const b = make(fb, { maxBatchSize: 16, preferredBatchSizes: [4], maxQueueDelayMicroseconds: 400_000 });
    const t0 = performance.now();
    const ps = [1, 2, 3, 4, 5, 6].map((v) => b.enqueue({ inputs: [xInput([v])], outputNames: [] }));
    const first = await ps[3]!;
    expect(performance.now() - t0).toBeLessThan(300); // did not wait for the 400 ms delay
    expect(first.batchSize).toBe(4);
    const rest = await ps[5]!;
    expect(performance.now() - t0).toBeGreaterThanOrEqual(39);
    expect(rest.batchSize).toBe(2);
    expect(fb.batchRows()).toEqual([4, 2]);
  });

  it.each(['delay', 'adaptive'] as const)('%s: sends a batch the next request cannot join at once, not after the delay', async (policy) => {
    const fb = fake();
    const b = make(fb, { maxBatchSize: 8, maxQueueDelayMicroseconds: 400_000, policy });
    const t0 = performance.now();
    // 3 + 3 rows fit in 8, the third request's 3 do not: the first two cannot be joined by anyone.
    const ps = [1, 2, 3].map((v) => b.enqueue({ inputs: [xInput([v, v, v])], outputNames: [] }));
    const first = await within(ps[1]!, 'first batch');
    expect(performance.now() - t0).toBeLessThan(300); // did not wait for the 400 ms delay
    expect(first.batchSize).toBe(6);
    expect((await within(ps[2]!, 'second batch')).batchSize).toBe(3);
    expect(fb.batchRows()).toEqual([6, 3]);
  });

  it('at the delay, sends the longest prefix of a preferred size first', async () => {
    const fb = fake();
    const b = make(fb, { maxBatchSize: 8, preferredBatchSizes: [2, 4], maxQueueDelayMicroseconds: 5000 });
    const rs = await Promise.all([1, 2, 3].map((v) => b.enqueue({ inputs: [xInput([v])], outputNames: [] })));
    expect(fb.batchRows()).toEqual([2, 1]);
    expect(rs.map((r) => values(r.outputs[0]))).toEqual([[2], [4], [6]]);
  });

  it('never merges requests with different signatures, and keeps each signature in order', async () => {
    const fb = fake();
    fb.hold();
    const b = make(fb, { maxQueueDelayMicroseconds: 0 });
    const blocker = b.enqueue({ inputs: [xInput([0])], outputNames: [] });
    await tick();
    const narrow = [1, 2, 3].map((v) => b.enqueue({ inputs: [xInput([v, v], 2)], outputNames: [] }));
    const wide = [4, 5].map((v) => b.enqueue({ inputs: [xInput([v, v, v], 3)], outputNames: [] }));
    const int: Tensor = { name: 'x', datatype: 'INT32', shape: [1, 2], data: Int32Array.from([9, 9]) };
    const other = b.enqueue({ inputs: [int], outputNames: [] }).catch((e: unknown) => e); // the fake only computes FP32
    fb.release();
    await Promise.all([blocker, ...narrow, ...wide, other]);
    const shapes = fb.batches.slice(1).map((batch) => `${batch[0]!.datatype}:${batch[0]!.shape.join('x')}`);
    expect(shapes.sort()).toEqual(['FP32:2x3', 'FP32:3x2', 'INT32:1x2']);
    expect(values((await narrow[2]!).outputs[0])).toEqual([6, 6]);
    expect(values((await wide[0]!).outputs[0])).toEqual([8, 8, 8]);
    // Arrival order within a signature is kept in the merged batch.
    const narrowBatch = fb.batches.find((batch) => batch[0]!.shape[1] === 2)!;
    expect(values(narrowBatch[0])).toEqual([1, 1, 2, 2, 3, 3]);
  });

  it('runs a request larger than maxBatchSize alone', async () => {
    const fb = fake();
    fb.hold();
    const b = make(fb, { maxBatchSize: 4, maxQueueDelayMicroseconds: 0 });
    const blocker = b.enqueue({ inputs: [xInput([0])], outputNames: [] });
    await tick();
    const small = b.enqueue({ inputs: [xInput([1])], outputNames: [] });
    const big = b.enqueue({ inputs: [xInput([10, 11, 12, 13, 14, 15])], outputNames: [] });
    const small2 = b.enqueue({ inputs: [xInput([2])], outputNames: [] });
    fb.release();
    const [, , r] = await Promise.all([blocker, small, big, small2]);
    expect(r.batchSize).toBe(6);
    expect(values(r.outputs[0])).toEqual([20, 22, 24, 26, 28, 30]);
    expect(fb.batchRows()).toContain(6);
    expect(fb.batches.find((batch) => batch[0]!.shape[0] === 6)!.length).toBe(1);
  });

  it('refuses a request over the backend hard limit, and inputs that disagree on dim 0', async () => {
    const fb = fake();
    const b = make(fb, { maxBatchSize: 8, backendMaxBatchSize: 4 });
    const err = await caught(b.enqueue({ inputs: [xInput([1, 2, 3, 4, 5])], outputNames: [] }));
    expect(err).toBeInstanceOf(InvalidArgument);
    expect((err as Error).message).toMatch(/batch size 5 exceeds .* maximum batch size 4/);
    const mask: Tensor = { name: 'm', datatype: 'FP32', shape: [3], data: new Float32Array(3) };
    expect(await caught(b.enqueue({ inputs: [xInput([1, 2]), mask], outputNames: [] }))).toBeInstanceOf(InvalidArgument);
    expect(fb.batches).toHaveLength(0);
  });

  it('runs two instances in parallel from one queue', async () => {
    const activity = newActivity();
    const a = fake(activity);
    const c = fake(activity);
    a.delayMs = c.delayMs = 40;
    const b = make([a, c], { maxBatchSize: 2, maxQueueDelayMicroseconds: 0 });
    const t0 = performance.now();
    await Promise.all([1, 2, 3, 4].map((v) => b.enqueue({ inputs: [xInput([v])], outputNames: [] })));
    expect(activity.maxActive).toBe(2);
    expect(a.batches.length).toBeGreaterThan(0);
    expect(c.batches.length).toBeGreaterThan(0);
    const [i1, i2] = [activity.intervals[0]!, activity.intervals[1]!];
    expect(Math.max(i1[0], i2[0])).toBeLessThan(Math.min(i1[1], i2[1])); // overlap
    expect(performance.now() - t0).toBeLessThan(4 * 40);
  });

  it('answers ResourceExhausted at once when the queue is full, with a Retry-After of 1 s before any batch has finished', async () => {
    const fb = fake();
    fb.hold();
    const b = make(fb, { maxQueueSize: 2, maxQueueDelayMicroseconds: 0 });
    const running = b.enqueue({ inputs: [xInput([1])], outputNames: [] });
    await tick();
    const q1 = b.enqueue({ inputs: [xInput([2])], outputNames: [] });
    const q2 = b.enqueue({ inputs: [xInput([3])], outputNames: [] });
    const err = await caught(b.enqueue({ inputs: [xInput([4])], outputNames: [] }));
    expect(err).toBeInstanceOf(ResourceExhausted);
    expect((err as ResourceExhausted).retryAfterSeconds).toBe(1);
    expect(b.waitMs?.(0)).toBeUndefined();
    expect((err as Error).message).toMatch(/queue is full/);
    expect(b.pending).toBe(3);
    fb.release();
    expect((await Promise.all([running, q1, q2])).map((r) => values(r.outputs[0]))).toEqual([[2], [4], [6]]);
    expect(fb.seenValues()).not.toContain(4);
  });

  it('rejects a queued request whose deadline passes with DeadlineExceeded, promptly, and never computes it', async () => {
    const fb = fake();
    fb.hold();
    const b = make(fb, { maxQueueDelayMicroseconds: 0 });
    const running = b.enqueue({ inputs: [xInput([1])], outputNames: [] });
    await tick();
    const t0 = performance.now();
    const late = caught(b.enqueue({ inputs: [xInput([777])], outputNames: [], deadline: t0 + 20 }));
    const err = await late; // the instance is still held: answered by the timer, not by a batch forming
    expect(performance.now() - t0).toBeGreaterThanOrEqual(19);
    expect(performance.now() - t0).toBeLessThan(500);
    expect(err).toBeInstanceOf(DeadlineExceeded);
    expect((err as Error).message).toMatch(/deadline passed after \d+ ms in the queue.*not computed/);
    fb.release();
    await running;
    await b.enqueue({ inputs: [xInput([5])], outputNames: [] });
    expect(fb.seenValues()).toEqual([1, 5]);
    // Already expired at enqueue.
    expect(await caught(b.enqueue({ inputs: [xInput([888])], outputNames: [], deadline: performance.now() - 1 }))).toBeInstanceOf(
      DeadlineExceeded,
    );
    expect(fb.seenValues()).not.toContain(888);
  });

  it('keeps a request queued whose deadline is past what setTimeout can wait (2^31-1 ms), then computes it', async () => {
    const fb = fake();
    fb.hold();
    const b = make(fb, { maxQueueDelayMicroseconds: 0 });
    const running = b.enqueue({ inputs: [xInput([1])], outputNames: [] });
    await tick();
    // e.g. parameters.timeout of 1.8e19 µs ("no timeout"): Node would fire such a timer after 1 ms.
    const patient = b.enqueue({ inputs: [xInput([2])], outputNames: [], deadline: performance.now() + 1.8e16 });
    let settled = false;
    void patient.then(() => (settled = true), () => (settled = true));
    await tick(50);
    expect(settled).toBe(false);
    fb.release();
    await running;
    expect(values((await within(patient, 'patient')).outputs[0])).toEqual([4]);
  });

  it('drops a queued request whose signal aborts with Cancelled, never computed', async () => {
    const fb = fake();
    fb.hold();
    const b = make(fb, { maxQueueDelayMicroseconds: 0 });
    const running = b.enqueue({ inputs: [xInput([1])], outputNames: [] });
    await tick();
    const ac = new AbortController();
    const gone = caught(b.enqueue({ inputs: [xInput([666])], outputNames: [], signal: ac.signal }));
    const kept = b.enqueue({ inputs: [xInput([2])], outputNames: [] });
    expect(b.pending).toBe(3);
    ac.abort();
    const err = await gone;
    expect(err).toBeInstanceOf(Cancelled);
    expect(b.pending).toBe(2);
    fb.release();
    await Promise.all([running, kept]);
    expect(fb.seenValues()).not.toContain(666);
    expect(fb.seenValues().sort()).toEqual([1, 2]);
    const pre = new AbortController();
    pre.abort();
    expect(await caught(b.enqueue({ inputs: [xInput([3])], outputNames: [], signal: pre.signal }))).toBeInstanceOf(Cancelled);
  });

  it('fails every caller of a failed batch with the same error; the next batch runs normally', async () => {
    const fb = fake();
    fb.hold();
    const b = make(fb, { maxQueueDelayMicroseconds: 0 });
    const blocker = b.enqueue({ inputs: [xInput([0])], outputNames: [] });
    await tick();
    const boom = new Internal('fake backend: device fell over');
    fb.failWith = (inputs) => ((inputs[0]!.data as Float32Array).includes(13) ? boom : undefined);
    const doomed = [11, 12, 13].map((v) => caught(b.enqueue({ inputs: [xInput([v])], outputNames: [] })));
    fb.release();
    await blocker;
    const errs = await Promise.all(doomed);
    expect(fb.batchRows()[1]).toBe(3); // the three were one batch
    for (const e of errs) expect(e).toBe(boom);
    const next = await b.enqueue({ inputs: [xInput([21])], outputNames: [] });
    expect(values(next.outputs[0])).toEqual([42]);
  });

  it('runs a merged batch the backend refuses as bad input again in halves: only the culprit fails, the others get their rows', async () => {
    const fb = fake();
    fb.hold();
    const splits: number[] = [];
    const b = make(fb, { maxQueueDelayMicroseconds: 0, observer: { onSplit: (i) => splits.push(i.requests) } });
    const blocker = b.enqueue({ inputs: [xInput([0])], outputNames: [] });
    await tick();
    const bad = new InvalidArgument('fake backend: 13 is out of range');
    fb.failWith = (inputs) => ((inputs[0]!.data as Float32Array).includes(13) ? bad : undefined);
    const values8 = [11, 12, 14, 15, 16, 13, 17, 18];
    const ps = values8.map((v) => b.enqueue({ inputs: [xInput([v])], outputNames: [] }).catch((e: unknown) => e));
    fb.release();
    await blocker;
    const results = await within(Promise.all(ps), 'the eight requests');
    // Merged 8 fails; halves 4 (ok) and 4 (fails); that one's halves 2 (fails: 1 ok, 1 the culprit) and 2 (ok).
    expect(fb.batchRows()).toEqual([1, 8, 4, 4, 2, 1, 1, 2]);
    expect(splits).toEqual([8, 4, 2]);
    results.forEach((r, i) => {
      if (values8[i] === 13) expect(r).toBe(bad);
      else expect(values((r as { outputs: Tensor[] }).outputs[0])).toEqual([2 * values8[i]!]);
    });
  });

  it('answers a caller that went away or whose deadline passed during the failed merged run, without running it again', async () => {
    const fb = fake();
    fb.hold();
    const b = make(fb, { maxQueueDelayMicroseconds: 0 });
    const blocker = b.enqueue({ inputs: [xInput([0])], outputNames: [] });
    await tick();
    const bad = new InvalidArgument('fake backend: 13 is out of range');
    fb.failWith = (inputs) => ((inputs[0]!.data as Float32Array).includes(13) ? bad : undefined);
    const gone = new AbortController();
    const ps = [
      b.enqueue({ inputs: [xInput([13])], outputNames: [] }),
      b.enqueue({ inputs: [xInput([12])], outputNames: [], signal: gone.signal }),
      b.enqueue({ inputs: [xInput([14])], outputNames: [], deadline: performance.now() + 30 }),
    ].map((p) => p.catch((e: unknown) => e));
    fb.release();
    fb.hold(); // the merged batch starts and waits here, past the deadline and the client's abort
    await blocker;
    await tick(50);
    expect(fb.batchRows()).toEqual([1, 3]);
    gone.abort();
    fb.release();
    const [culprit, left, late] = await within(Promise.all(ps), 'the three requests');
    expect(culprit).toBe(bad);
    expect(left).toBeInstanceOf(Cancelled);
    expect(late).toBeInstanceOf(DeadlineExceeded);
    expect(fb.seenValues().filter((v) => v === 12 || v === 14)).toEqual([12, 14]); // only in the merged run
  });

  it('fails a merged batch with Internal naming an output whose dim 0 is not the batch size', async () => {
    const fb = fake();
    fb.hold();
    const b = make(fb, { maxQueueDelayMicroseconds: 0 });
    const blocker = b.enqueue({ inputs: [xInput([0])], outputNames: [] });
    await tick();
    fb.mangle = (outs) => [...outs, { name: 'summary', datatype: 'FP32', shape: [1], data: new Float32Array(1) }];
    const ps = [1, 2].map((v) => caught(b.enqueue({ inputs: [xInput([v])], outputNames: [] })));
    fb.release();
    await blocker.catch(() => undefined);
    for (const e of await Promise.all(ps)) {
      expect(e).toBeInstanceOf(Internal);
      expect((e as Error).message).toMatch(/output 'summary'/);
    }
  });

  it('drain stops accepting, flushes the queue without waiting for the delay, and waits for running work', async () => {
    const fb = fake();
    fb.delayMs = 30;
    const b = make(fb, { maxQueueDelayMicroseconds: 10_000_000 });
    const t0 = performance.now();
    const ps = [1, 2].map((v) => b.enqueue({ inputs: [xInput([v])], outputNames: [] }));
    let settled = 0;
    for (const p of ps) void p.then(() => settled++);
    const drained = b.drain();
    expect(await caught(b.enqueue({ inputs: [xInput([3])], outputNames: [] }))).toBeInstanceOf(Unavailable);
    await drained;
    expect(settled).toBe(2);
    expect(b.pending).toBe(0);
    expect(performance.now() - t0).toBeLessThan(1000);
    expect(fb.seenValues()).toEqual([1, 2]);
  });
});

describe('abandon (an unload whose drain took too long)', () => {
  it('answers the running and the queued requests with the error at once, computes nothing more, and drops a late result', async () => {
    const fb = fake();
    const events = { settled: 0, rejected: [] as string[], batches: 0 };
    const b = make(fb, {
      maxBatchSize: 1,
      observer: { onSettled: () => events.settled++, onRejected: (r) => events.rejected.push(r), onBatch: () => events.batches++ },
    });
    fb.hold();
    const running = b.enqueue({ inputs: [xInput([1])], outputNames: [] });
    await tick();
    const queued = [2, 3].map((v) => b.enqueue({ inputs: [xInput([v])], outputNames: [] }));
    await tick();
    expect(fb.seenValues()).toEqual([1]); // one on the instance, two waiting
    void b.drain();
    const err = new Unavailable('unloaded');
    b.abandon(err);
    for (const p of [running, ...queued]) expect(await caught(p)).toBe(err);
    expect(events).toEqual({ settled: 3, rejected: ['unavailable', 'unavailable', 'unavailable'], batches: 0 });
    fb.release(); // the backend returns after all: its result goes nowhere, and is not reported
    await tick(5);
    expect(fb.seenValues()).toEqual([1]);
    expect(events).toMatchObject({ settled: 3, batches: 0 });
    expect(await caught(b.enqueue({ inputs: [xInput([4])], outputNames: [] }))).toBeInstanceOf(Unavailable);
  });

  it('stops a merged batch being run again in halves once abandoned: the half still queued never reaches the backend', async () => {
    const fb = fake();
    fb.failWith = (inputs) => (Array.from(inputs[0]!.data as Float32Array).includes(13) ? new InvalidArgument('13 is out of range') : undefined);
    const batches: boolean[] = [];
    const b = make(fb, { maxBatchSize: 8, maxQueueDelayMicroseconds: 20_000, observer: { onBatch: (i) => batches.push(i.ok) } });
    fb.hold();
    const calls = [1, 2, 13].map((v) => b.enqueue({ inputs: [xInput([v])], outputNames: [] }));
    for (let i = 0; i < 100 && fb.batches.length === 0; i++) await tick(5);
    expect(fb.batchRows()).toEqual([3]); // merged, held
    fb.release();
    fb.hold(); // the first rerun (half [1, 2]) will wait here
    for (let i = 0; i < 100 && fb.batches.length < 2; i++) await tick(5);
    expect(fb.batchRows()).toEqual([3, 2]);
    const err = new Unavailable('unloaded');
    b.abandon(err);
    for (const p of calls) expect(await caught(p)).toBe(err);
    fb.release();
    await tick(10);
    expect(fb.batchRows()).toEqual([3, 2]); // the half [13] was never run
    expect(batches).toEqual([false]); // only the merged failure, reported before the abandon
  });
});

describe('DynamicBatcher, adaptive policy', () => {
  /** Clients 0-3 start at once, clients 4-7 5 ms later (while the first batch runs); each sends 3 requests in a closed loop. */
  async function staggeredClosedLoop(policy: 'delay' | 'adaptive'): Promise<number[]> {
    const fb = fake();
    fb.delayMs = 20;
    const b = make(fb, { maxBatchSize: 8, maxQueueDelayMicroseconds: 2000, policy });
    const client = async (id: number) => {
      for (let round = 0; round < 3; round++) {
        const r = await b.enqueue({ inputs: [xInput([id * 10 + round])], outputNames: [] });
        expect(values(r.outputs[0])).toEqual([2 * (id * 10 + round)]);
      }
    };
    const first = Array.from({ length: 4 }, (_, id) => client(id));
    await tick(5);
    const second = Array.from({ length: 4 }, (_, id) => client(id + 4));
    await within(Promise.all([...first, ...second]), 'closed loop');
    return fb.batchRows();
  }

  it('merges two cohorts of closed-loop clients that the delay policy keeps apart', async () => {
    // Triton's rule: the second cohort has waited past the delay when the instance frees, so it runs alone, forever.
    expect(await staggeredClosedLoop('delay')).toEqual([4, 4, 4, 4, 4, 4]);
    // Adaptive: the delay counts from the free instance, and 8 were pending, so the second cohort waits for the first.
    expect(await staggeredClosedLoop('adaptive')).toEqual([4, 8, 8, 4]);
  });

  it('does not make a lone closed-loop client wait for the delay', async () => {
    const timeOf = async (policy: 'delay' | 'adaptive') => {
      const b = make(fake(), { maxQueueDelayMicroseconds: 100_000, policy });
      const t0 = performance.now();
      for (let i = 0; i < 3; i++) await within(b.enqueue({ inputs: [xInput([i])], outputNames: [] }), `request ${i}`);
      return performance.now() - t0;
    };
    expect(await timeOf('delay')).toBeGreaterThanOrEqual(295);
    expect(await timeOf('adaptive')).toBeLessThan(150);
  });

  it('waits at most the delay for callers that do not come back, then forgets them after a few cycles', async () => {
    const fb = fake();
    const b = make(fb, { maxBatchSize: 8, maxQueueDelayMicroseconds: 60_000, policy: 'adaptive' });
    await within(Promise.all(Array.from({ length: 8 }, (_, i) => b.enqueue({ inputs: [xInput([i])], outputNames: [] }))), 'burst');
    const waits: number[] = [];
    for (let i = 0; i < 7; i++) {
      const t0 = performance.now();
      await within(b.enqueue({ inputs: [xInput([100 + i])], outputNames: [] }), `single ${i}`);
      waits.push(performance.now() - t0);
    }
    expect(fb.batchRows()).toEqual([8, 1, 1, 1, 1, 1, 1, 1]);
    // The burst's peak of 8 is remembered for 4 more dispatch cycles (each waits the full delay), then expected is 1.
    for (const w of waits.slice(0, 5)) expect(w).toBeGreaterThanOrEqual(55);
    for (const w of waits.slice(5)) expect(w).toBeLessThan(30);
  });
});

describe('DynamicBatcher.startsAtOnce', () => {
  const microtask = () => new Promise<void>((r) => queueMicrotask(r));

  it('holds for a lone adaptive caller, whose request then reaches the backend before any timer or I/O', async () => {
    const fb = fake();
    const b = make(fb, { maxQueueDelayMicroseconds: 60_000, policy: 'adaptive' });
    for (let i = 0; i < 3; i++) {
      expect(b.startsAtOnce).toBe(true);
      const r = b.enqueue({ inputs: [xInput([i])], outputNames: [] });
      await microtask();
      expect(fb.batches).toHaveLength(i + 1);
      await within(r, `lone ${i}`);
    }
  });

  it('does not hold while a request is pending, after a burst, or under the delay rule with a delay', async () => {
    const fb = fake();
    const b = make(fb, { maxQueueDelayMicroseconds: 60_000, policy: 'adaptive' });
    fb.hold();
    const running = b.enqueue({ inputs: [xInput([1])], outputNames: [] });
    await tick();
    expect(b.startsAtOnce).toBe(false); // the one instance is busy
    fb.release();
    await within(running, 'running');
    await within(Promise.all([1, 2, 3].map((v) => b.enqueue({ inputs: [xInput([v])], outputNames: [] }))), 'burst');
    expect(b.startsAtOnce).toBe(false); // the burst's peak of 3 is remembered

    const delayed = make(fake(), { maxQueueDelayMicroseconds: 2000 });
    expect(delayed.startsAtOnce).toBe(false);
    const noDelay = make(fake(), { maxQueueDelayMicroseconds: 0 });
    expect(noDelay.startsAtOnce).toBe(true);
  });
});

describe('PassThroughBatcher', () => {
  it('never merges a non-batchable model: each request runs alone with its own tensors', async () => {
    const fb = fake();
    const b = make(fb, { batchable: false, maxBatchSize: 8 });
    const inputs = [1, 2, 3, 4, 5].map((v) => xInput([v, v + 1]));
    const rs = await Promise.all(inputs.map((x) => b.enqueue({ inputs: [x], outputNames: [] })));
    expect(fb.batches).toHaveLength(5);
    fb.received.forEach((batch, i) => expect(batch[0]).toBe(inputs[i]));
    rs.forEach((r, i) => {
      expect(values(r.outputs[0])).toEqual([2 * (i + 1), 2 * (i + 2)]);
      expect(r.batchSize).toBe(1);
    });
  });

  it('has the same queue bound, deadlines and instance pool', async () => {
    const activity = newActivity();
    const a = fake(activity);
    const c = fake(activity);
    a.hold();
    c.hold();
    const b = make([a, c], { batchable: false, maxQueueSize: 1 });
    const r1 = b.enqueue({ inputs: [xInput([1])], outputNames: [] });
    const r2 = b.enqueue({ inputs: [xInput([2])], outputNames: [] });
    await tick();
    expect(activity.active).toBe(2);
    const late = caught(b.enqueue({ inputs: [xInput([3])], outputNames: [], deadline: performance.now() + 10 }));
    expect(await caught(b.enqueue({ inputs: [xInput([4])], outputNames: [] }))).toBeInstanceOf(ResourceExhausted);
    expect(await late).toBeInstanceOf(DeadlineExceeded);
    a.release();
    c.release();
    await Promise.all([r1, r2]);
    expect([...a.seenValues(), ...c.seenValues()].sort()).toEqual([1, 2]);
  });
});

describe('Retry-After of a full queue', () => {
  /**
   * A real batcher over fakes taking `delayMs` per batch: `seed` one-row requests run first as
   * one batch (the pace), then every instance is held busy and `queued` one-row requests fill
   * the queue; one more is refused. Returns its Retry-After and the seed batch's time on its
   * instance, as the batcher reported it.
   */
  async function refusedAfter(o: { delayMs: number; seed: number; queued: number; instances?: number; opts?: Partial<BatcherOptions> }) {
    const activity = newActivity();
    const fbs = Array.from({ length: o.instances ?? 1 }, () => fake(activity));
    for (const f of fbs) f.delayMs = o.delayMs;
    const batches: BatchInfo[] = [];
    const b = make(fbs, { maxBatchSize: 8, maxQueueDelayMicroseconds: 0, maxQueueSize: o.queued, observer: { onBatch: (i) => batches.push(i) }, ...o.opts });
    const one = (v: number) => b.enqueue({ inputs: [xInput([v])], outputNames: [] });
    await within(Promise.all(Array.from({ length: o.seed }, (_, i) => one(i))), 'seed');
    expect(batches.map((i) => [i.size, i.ok])).toEqual([[o.seed, true]]);
    const seedMs = batches[0]!.inputMs + batches[0]!.computeMs + batches[0]!.outputMs;
    for (const f of fbs) f.hold();
    const all: Promise<unknown>[] = [];
    // One at a time, so that each takes an instance of its own.
    for (let i = 0; i < fbs.length; i++) {
      all.push(one(100 + i));
      await tick();
    }
    expect(activity.active).toBe(fbs.length);
    for (let i = 0; i < o.queued; i++) all.push(one(1000 + i));
    expect(b.pending).toBe(fbs.length + o.queued);
    const err = await caught(one(-1));
    expect(err).toBeInstanceOf(ResourceExhausted);
    // The queued ones are not needed at the pace: finish quickly.
    for (const f of fbs) {
      f.delayMs = 0;
      f.release();
    }
    await within(Promise.all(all), 'queued requests');
    return { retry: (err as ResourceExhausted).retryAfterSeconds, seedMs };
  }

  it('grows with the items queued and with the time per item, in whole seconds', async () => {
    const small = await refusedAfter({ delayMs: 100, seed: 8, queued: 40 });
    const long = await refusedAfter({ delayMs: 100, seed: 8, queued: 200 });
    const slowBatch = await refusedAfter({ delayMs: 300, seed: 8, queued: 200 });
    const smallBatch = await refusedAfter({ delayMs: 100, seed: 2, queued: 200 });
    // The queued items times the seed batch's time per item, rounded up.
    expect(small.retry).toBe(retryAfterSeconds((40 * small.seedMs) / 8));
    expect(long.retry).toBe(retryAfterSeconds((200 * long.seedMs) / 8));
    expect(slowBatch.retry).toBe(retryAfterSeconds((200 * slowBatch.seedMs) / 8));
    expect(smallBatch.retry).toBe(retryAfterSeconds((200 * smallBatch.seedMs) / 2));
    // 40 × 12.5 ms, 200 × 12.5 ms, 200 × 37.5 ms and 200 × 50 ms at least; timers fire late (the upper
    // bounds leave room for a busy machine), never early.
    expect(small.retry).toBe(1);
    expect(long.retry).toBeGreaterThanOrEqual(3);
    expect(long.retry).toBeLessThanOrEqual(6);
    expect(slowBatch.retry).toBeGreaterThanOrEqual(8);
    expect(slowBatch.retry).toBeLessThanOrEqual(16);
    expect(smallBatch.retry).toBeGreaterThanOrEqual(10);
    expect(smallBatch.retry).toBeLessThanOrEqual(20);
    for (const r of [small, long, slowBatch, smallBatch]) expect(Number.isInteger(r.retry)).toBe(true);
  });

  it('is shared by the instances: two take half as long', async () => {
    const one = await refusedAfter({ delayMs: 100, seed: 8, queued: 400 });
    const two = await refusedAfter({ delayMs: 100, seed: 8, queued: 400, instances: 2 });
    expect(one.retry).toBe(retryAfterSeconds((400 * one.seedMs) / 8));
    expect(two.retry).toBe(retryAfterSeconds((400 * two.seedMs) / 8 / 2));
    expect(one.retry).toBeGreaterThanOrEqual(5); // 400 × 12.5 ms
    expect(two.retry).toBeLessThan(one.retry);
  });

  it('is capped at MAX_RETRY_AFTER_SECONDS', async () => {
    // 1000 items at 100 ms each would be 100 s.
    const r = await refusedAfter({ delayMs: 100, seed: 1, queued: 1000 });
    expect(MAX_RETRY_AFTER_SECONDS).toBe(60);
    expect(r.retry).toBe(60);
  });

  it('PassThroughBatcher estimates the same way, one request per run', async () => {
    const r = await refusedAfter({ delayMs: 100, seed: 1, queued: 25, opts: { batchable: false } });
    expect(r.retry).toBe(retryAfterSeconds(25 * r.seedMs));
    expect(r.retry).toBeGreaterThanOrEqual(3); // 25 × 100 ms
    expect(r.retry).toBeLessThanOrEqual(6);
  });

  it('rounds up, and is at least 1 s and at most the cap', () => {
    expect([undefined, 0, -5, Number.NaN, 1, 999, 1000, 1001, 59_500, 60_001, 1e9].map(retryAfterSeconds)).toEqual([1, 1, 1, 1, 1, 1, 1, 2, 60, 60, 60]);
  });
});

describe("Triton's priority levels and queue policies", () => {
  /** Polls `done` every 2 ms, for at most 2 s. */
  async function until(done: () => boolean): Promise<void> {
    for (let i = 0; i < 1000 && !done(); i++) await new Promise((r) => setTimeout(r, 2));
    expect(done()).toBe(true);
  }
  const policy = (p: Partial<QueuePolicy>): QueuePolicy => ({ maxQueueSize: 0, action: 'reject', defaultMicroseconds: 0, allowOverride: false, ...p });
  const levels = (n: number, defaultLevel: number, policies: Record<number, QueuePolicy> = {}) => ({ priority: { levels: n, defaultLevel, policies } });
  /** Holds the one instance with a first request, queues `sends` in order, releases it: the values of each later batch. */
  async function order(b: Batcher, f: FakeBackend, sends: [value: number, priority?: number][]): Promise<number[][]> {
    f.hold();
    const first = b.enqueue({ inputs: [xInput([0])], outputNames: [] });
    await until(() => f.batches.length === 1);
    const rest = sends.map(([v, priority]) => b.enqueue({ inputs: [xInput([v])], outputNames: [], ...(priority === undefined ? {} : { priority }) }));
    f.release();
    await Promise.all([first, ...rest]);
    return f.batches.slice(1).map((batch) => values(batch[0]));
  }

  it('takes level 1 before level 2 whenever both could run, in arrival order within a level; no or an out-of-range priority is the default level', async () => {
    const f = fake();
    const b = make(f, { maxBatchSize: 2, maxQueueDelayMicroseconds: 0, ...levels(3, 2) });
    // 10 and 11 at level 2, 12 and 14 at 1, 13 without a priority (2), 15 past the levels (2), 16 at 3.
    expect(await order(b, f, [[10, 2], [11, 2], [12, 1], [13], [14, 1], [15, 9], [16, 3]])).toEqual([[12, 14], [10, 11], [13, 15], [16]]);
    // Without levels the priority is not read: arrival order.
    const g = fake();
    expect(await order(make(g, { maxBatchSize: 2, maxQueueDelayMicroseconds: 0 }), g, [[10, 2], [11, 1], [12, 1]])).toEqual([[10, 11], [12]]);
    // The pass-through batcher keeps the same order, one request per run.
    const h = fake();
    expect(await order(make(h, { maxBatchSize: 1, ...levels(2, 2) }), h, [[10], [11, 1], [12, 2], [13, 1]])).toEqual([[11], [13], [10], [12]]);
  });

  it('bounds each level by its own policy, the others by the default policy', async () => {
    const f = fake();
    const b = make(f, { maxBatchSize: 1, maxQueueSize: 3, ...levels(2, 2, { 1: policy({ maxQueueSize: 1 }) }) });
    f.hold();
    const running = b.enqueue({ inputs: [xInput([0])], outputNames: [] });
    await until(() => f.batches.length === 1);
    const queued = [b.enqueue({ inputs: [xInput([1])], outputNames: [], priority: 1 })];
    const err = await b.enqueue({ inputs: [xInput([2])], outputNames: [], priority: 1 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ResourceExhausted);
    expect((err as Error).message).toBe("model: queue of priority level 1 is full (1 requests waiting); retry later");
    for (let i = 0; i < 3; i++) queued.push(b.enqueue({ inputs: [xInput([3 + i])], outputNames: [] })); // level 2 still has room for three
    await expect(b.enqueue({ inputs: [xInput([9])], outputNames: [], priority: 2 })).rejects.toThrow('queue of priority level 2 is full (3 requests waiting)');
    f.release();
    await Promise.all([running, ...queued]);
    expect(f.seenValues()).toEqual([0, 1, 3, 4, 5]);
  });

  it("refuses a request its REJECT policy timed out, uncomputed (Triton's UNAVAILABLE); a request's own timeout wins only when shorter", async () => {
    const f = fake();
    const b = make(f, { maxBatchSize: 1, queueTimeout: policy({ defaultMicroseconds: 60_000, allowOverride: true }) });
    f.hold();
    const running = b.enqueue({ inputs: [xInput([0])], outputNames: [] });
    await until(() => f.batches.length === 1);
    const t0 = performance.now();
    const timedOut = b.enqueue({ inputs: [xInput([1])], outputNames: [] }).catch((e: unknown) => e);
    // A longer timeout of its own does not lift the policy's (Triton: the override applies when shorter).
    const longer = b.enqueue({ inputs: [xInput([2])], outputNames: [], deadline: performance.now() + 10_000 }).catch((e: unknown) => e);
    const shorter = b.enqueue({ inputs: [xInput([3])], outputNames: [], deadline: performance.now() + 15 }).catch((e: unknown) => e);
    expect(await shorter).toBeInstanceOf(DeadlineExceeded);
    expect(performance.now() - t0).toBeLessThan(55);
    const err = await timedOut;
    expect(err).toBeInstanceOf(Unavailable);
    expect((err as Error).message).toMatch(/^request timed out by the queue policy's default_timeout_microseconds after \d+ ms in the queue of model; it was not computed$/);
    expect(performance.now() - t0).toBeGreaterThanOrEqual(55);
    expect(await longer).toBeInstanceOf(Unavailable);
    f.release();
    await running;
    expect(f.seenValues()).toEqual([0]);
    // A level's own policy times its requests out; a level under the default policy (no timeout) waits.
    const g = fake();
    const c = make(g, { maxBatchSize: 1, ...levels(2, 2, { 1: policy({ defaultMicroseconds: 30_000 }) }) });
    g.hold();
    const held = c.enqueue({ inputs: [xInput([0])], outputNames: [] });
    await until(() => g.batches.length === 1);
    await expect(c.enqueue({ inputs: [xInput([1])], outputNames: [], priority: 1 })).rejects.toBeInstanceOf(Unavailable);
    const level2 = c.enqueue({ inputs: [xInput([2])], outputNames: [], priority: 2 });
    await new Promise((r) => setTimeout(r, 50));
    g.release();
    await Promise.all([held, level2]);
    expect(g.seenValues()).toEqual([0, 2]);
  });

  it("answers a full level with its own Retry-After: the rows of it and the levels before it, not the whole queue", async () => {
    const f = fake();
    f.delayMs = 100;
    const b = make(f, { maxBatchSize: 8, maxQueueDelayMicroseconds: 0, maxQueueSize: 240, ...levels(2, 2, { 1: policy({ maxQueueSize: 2 }) }) });
    const one = (v: number, priority?: number) => b.enqueue({ inputs: [xInput([v])], outputNames: [], ...(priority ? { priority } : {}) });
    await within(Promise.all(Array.from({ length: 8 }, (_, i) => one(i))), 'seed'); // sets the pace: ~12.5 ms per item
    f.hold();
    const all: Promise<unknown>[] = [one(100)];
    await until(() => f.batches.length === 2);
    for (let i = 0; i < 240; i++) all.push(one(1000 + i)); // level 2 full: 240 rows, ~3 s
    all.push(one(1, 1), one(2, 1)); // level 1 full: 2 rows
    const l1 = (await caught(one(3, 1))) as ResourceExhausted;
    const l2 = (await caught(one(4, 2))) as ResourceExhausted;
    expect(l1).toBeInstanceOf(ResourceExhausted);
    expect(l1.message).toMatch(/queue of priority level 1 is full \(2 requests waiting\)/);
    expect(l1.retryAfterSeconds).toBe(1); // 2 rows ahead of it
    expect(l2.retryAfterSeconds).toBeGreaterThanOrEqual(3); // 242 rows ahead of it
    f.delayMs = 0;
    f.release();
    await within(Promise.all(all), 'queued requests');
  });

  it('moves a request its DELAY policy timed out behind the requests of its level that have not, and still computes it', async () => {
    const f = fake();
    const b = make(f, { maxBatchSize: 1, queueTimeout: policy({ action: 'delay', defaultMicroseconds: 40_000 }) });
    f.hold();
    const running = b.enqueue({ inputs: [xInput([0])], outputNames: [] });
    await until(() => f.batches.length === 1);
    const late = b.enqueue({ inputs: [xInput([1])], outputNames: [] });
    await new Promise((r) => setTimeout(r, 60));
    const fresh = [b.enqueue({ inputs: [xInput([2])], outputNames: [] }), b.enqueue({ inputs: [xInput([3])], outputNames: [] })];
    f.release();
    await Promise.all([running, late, ...fresh]);
    // 1 came first but timed out: 2 and 3 (not timed out when the instance freed) go before it.
    expect(f.seenValues()).toEqual([0, 2, 3, 1]);
  });
});
