/**
 * The sequence batcher over a real DynamicBatcher and an accumulating backend
 * (OUT = X + STATE_IN, STATE_OUT = OUT, START/CORRID echoed), so the state each run
 * sees, the controls it gets and the order of runs are all observable.
 */
import { describe, expect, it } from 'vitest';
import type { Backend, ModelMetadata } from '../backends/backend.js';
import { Cancelled, DeadlineExceeded, InvalidArgument, ResourceExhausted, Unavailable } from '../core/errors.js';
import type { Tensor } from '../core/tensor.js';
import type { SequenceControl } from '../repository/model-config.js';
import type { SequenceFlags } from '../core/infer.js';
import { createBatcher } from './dynamic-batcher.js';
import type { BatchObserver } from './queue.js';
import { SequenceBatcher, sequenceFlags, type SequencePlan } from './sequence-batcher.js';

const META: ModelMetadata = { platform: 'test', inputs: [], outputs: [], batchable: true, maxBatchSize: 8 };

class Accumulator implements Backend {
  /** Each run's rows: [x, state, start, end, corrid]. */
  readonly runs: number[][][] = [];
  delayMs = 0;
  /** A batch holding this x fails as bad input. */
  failOn = 666;
  async load(): Promise<ModelMetadata> {
    return META;
  }
  async infer(inputs: Tensor[]): Promise<Tensor[]> {
    const get = (n: string) => inputs.find((t) => t.name === n)!;
    const x = get('X').data as Float32Array;
    const st = get('STATE_IN').data as Float32Array;
    const start = get('START').data as Int32Array;
    const end = get('END').data as Int32Array;
    const corr = get('CORRID').data as BigUint64Array;
    this.runs.push(Array.from(x, (v, i) => [v, st[i]!, start[i]!, end[i]!, Number(corr[i])]));
    if (this.delayMs) await new Promise((r) => setTimeout(r, this.delayMs));
    if (x.includes(this.failOn)) throw new InvalidArgument(`x ${this.failOn} is refused`);
    const out = Float32Array.from(x, (v, i) => v + st[i]!);
    const rows = x.length;
    return [
      { name: 'OUT', datatype: 'FP32', shape: [rows, 1], data: out },
      { name: 'STATE_OUT', datatype: 'FP32', shape: [rows, 1], data: out.slice() },
    ];
  }
  async unload(): Promise<void> {}
}

const CONTROLS: SequenceControl[] = [
  { input: 'START', kind: 'start', datatype: 'INT32', values: [0, 1] },
  { input: 'END', kind: 'end', datatype: 'INT32', values: [0, 1] },
  { input: 'CORRID', kind: 'corrid', datatype: 'UINT64' },
];

function setup(opts: Partial<SequencePlan> = {}, batch = { maxBatchSize: 8, delayUs: 0 }, observer?: BatchObserver) {
  const backend = new Accumulator();
  const inner = createBatcher({ name: 'acc', instances: [backend], batchable: true, maxBatchSize: batch.maxBatchSize, maxQueueDelayMicroseconds: batch.delayUs, preferredBatchSizes: [], maxQueueSize: 64 });
  const events: [string, number | string][] = [];
  const plan: SequencePlan = {
    model: "model 'acc'",
    batchable: true,
    controls: CONTROLS,
    states: [{ input: 'STATE_IN', output: 'STATE_OUT', datatype: 'FP32', shape: [1, 1], initial: new Float32Array(1) }],
    maxActive: 8,
    idleMs: 1000,
    maxQueued: 64,
    onEvent: (e, id) => events.push([e, id]),
    ...opts,
  };
  const batcher = new SequenceBatcher(inner, plan, observer);
  const send = (x: number, sequence: SequenceFlags, extra: { signal?: AbortSignal; deadline?: number } = {}) =>
    batcher.enqueue({ inputs: [{ name: 'X', datatype: 'FP32', shape: [1, 1], data: Float32Array.of(x) }], outputNames: [], sequence, ...extra });
  const value = async (p: ReturnType<typeof send>) => {
    const r = await p;
    expect(r.outputs.map((t) => t.name)).toEqual(['OUT']); // the state output stays with the server
    return (r.outputs[0]!.data as Float32Array)[0];
  };
  return { backend, batcher, send, value, events };
}

const seq = (id: number | string, start = false, end = false): SequenceFlags => ({ id, start, end });

describe('sequenceFlags', () => {
  it('reads Triton\'s parameters and refuses a missing, zero, empty or mistyped id', () => {
    expect(sequenceFlags({ sequence_id: 7, sequence_start: true }, 'm')).toEqual({ id: 7, start: true, end: false });
    expect(sequenceFlags({ sequence_id: 'abc', sequence_end: true }, 'm')).toEqual({ id: 'abc', start: false, end: true });
    for (const bad of [undefined, {}, { sequence_id: 0 }, { sequence_id: '' }] as (Record<string, number | string> | undefined)[]) {
      expect(() => sequenceFlags(bad, 'm')).toThrow(/^inference request to model 'm' must specify a non-zero or non-empty correlation ID/);
    }
    expect(() => sequenceFlags({ sequence_id: -3 }, 'm')).toThrow(InvalidArgument);
    expect(() => sequenceFlags({ sequence_id: 1.5 }, 'm')).toThrow(/expected an unsigned integer or a string/);
    expect(() => sequenceFlags({ sequence_id: true }, 'm')).toThrow(/expected an unsigned integer or a string/);
    expect(() => sequenceFlags({ sequence_id: 1, sequence_start: 'yes' }, 'm')).toThrow(/parameters.sequence_start: expected true or false/);
  });
});

describe('SequenceBatcher', () => {
  it('carries each sequence\'s state from run to run and fills the controls', async () => {
    const { backend, send, value } = setup();
    expect(await value(send(1, seq(5, true)))).toBe(1);
    expect(await value(send(10, seq(6, true)))).toBe(10);
    expect(await value(send(2, seq(5)))).toBe(3);
    expect(await value(send(20, seq(6)))).toBe(30);
    expect(await value(send(3, seq(5, false, true)))).toBe(6);
    // [x, state, START, END, CORRID] per run.
    expect(backend.runs).toEqual([[[1, 0, 1, 0, 5]], [[10, 0, 1, 0, 6]], [[2, 1, 0, 0, 5]], [[20, 10, 0, 0, 6]], [[3, 3, 0, 1, 5]]]);
  });

  it('runs a sequence\'s requests one at a time in arrival order, and batches across sequences', async () => {
    const { backend, send, value } = setup({}, { maxBatchSize: 8, delayUs: 20_000 });
    backend.delayMs = 5;
    // Three sequences, each sending all its requests at once.
    const a = [send(1, seq(1, true)), send(2, seq(1)), send(3, seq(1, false, true))];
    const b = [send(10, seq(2, true)), send(20, seq(2)), send(30, seq(2, false, true))];
    const c = [send(100, seq(3, true)), send(200, seq(3)), send(300, seq(3, false, true))];
    expect(await Promise.all(a.map(value))).toEqual([1, 3, 6]);
    expect(await Promise.all(b.map(value))).toEqual([10, 30, 60]);
    expect(await Promise.all(c.map(value))).toEqual([100, 300, 600]);
    // One request per sequence per batch, the three sequences in each.
    expect(backend.runs.map((r) => r.map((row) => row[4]).sort())).toEqual([[1, 2, 3], [1, 2, 3], [1, 2, 3]]);
  });

  it('refuses a request for a sequence that was never started, or has ended', async () => {
    const { send, value, batcher } = setup();
    await expect(send(1, seq(9))).rejects.toThrow(/^inference request for sequence 9 to model 'acc' must specify the START flag on the first request of the sequence/);
    await value(send(1, seq(9, true, true)));
    await expect(send(1, seq(9))).rejects.toThrow(InvalidArgument);
    // A new START under the ended id begins from the initial state.
    expect(await value(send(4, seq(9, true)))).toBe(4);
    await expect(batcher.enqueue({ inputs: [], outputNames: [] })).rejects.toThrow(/must specify a non-zero or non-empty correlation ID/);
  });

  it('refuses a request queued behind its sequence\'s END that does not start it again', async () => {
    const { send, value, backend } = setup();
    backend.delayMs = 10;
    const first = send(1, seq(4, true, true));
    const after = send(2, seq(4));
    const restart = send(5, seq(4, true));
    expect(await value(first)).toBe(1);
    await expect(after).rejects.toThrow(/the sequence ended with an earlier request/);
    expect(await value(restart)).toBe(5);
  });

  it('resets the state on a START for a sequence that never ended, and says so', async () => {
    const { send, value, events } = setup();
    await value(send(1, seq(3, true)));
    expect(await value(send(2, seq(3)))).toBe(3);
    expect(await value(send(7, seq(3, true)))).toBe(7);
    expect(events).toEqual([['conflict', 3]]);
  });

  it('keeps sequences past maxActive in a backlog until a slot frees, and refuses past the backlog', async () => {
    const { send, value, batcher } = setup({ maxActive: 1, maxQueued: 1 });
    expect(await value(send(1, seq(1, true)))).toBe(1);
    let second = false;
    const waiting = send(10, seq(2, true)).then((r) => ((second = true), r));
    await expect(send(100, seq(3, true))).rejects.toThrow(/1 requests wait for a sequence slot; retry later/);
    await new Promise((r) => setTimeout(r, 20));
    expect(second).toBe(false);
    expect(batcher.sequenceCount).toEqual({ active: 1, backlog: 1 });
    expect(await value(send(2, seq(1, false, true)))).toBe(3);
    expect(await value(waiting)).toBe(10);
    expect(batcher.sequenceCount).toEqual({ active: 1, backlog: 0 });
  });

  it('bounds the requests queued behind a running one apart from the backlog', async () => {
    const { send, value, backend } = setup({ maxActive: 1, maxQueued: 1 });
    backend.delayMs = 30;
    const a = send(1, seq(1, true));
    const b = send(2, seq(1));
    await expect(send(3, seq(1))).rejects.toThrow(/1 requests wait behind their sequence's previous request; retry later/);
    // The backlog has its own room: a new sequence does not take the running one's.
    const c = send(10, seq(2, true));
    await expect(send(20, seq(3, true))).rejects.toThrow(ResourceExhausted);
    expect(await value(a)).toBe(1);
    await new Promise((r) => setTimeout(r, 0)); // b has started: its room is free
    const end = send(4, seq(1, false, true));
    expect(await Promise.all([b, end].map(value))).toEqual([3, 7]);
    expect(await value(c)).toBe(10);
  });

  it("answers a full queue behind running sequences with the model batcher's estimate (1 s before a run), a full backlog with 1 s", async () => {
    const { send, backend, batcher } = setup({ maxActive: 1, maxQueued: 25 });
    backend.delayMs = 100;
    const retryOf = async (p: Promise<unknown>) => {
      const err = await p.then(() => undefined, (e: unknown) => e);
      expect(err).toBeInstanceOf(ResourceExhausted);
      return err as ResourceExhausted;
    };
    const all: Promise<unknown>[] = [send(1, seq(1, true))];
    for (let i = 0; i < 25; i++) all.push(send(1, seq(1)));
    const early = await retryOf(send(1, seq(1)));
    expect(early.message).toMatch(/25 requests wait behind their sequence's previous request/);
    expect(early.retryAfterSeconds).toBe(1); // no run has finished: no pace yet
    await all[0];
    await new Promise((r) => setTimeout(r, 0)); // the next has started: its room is free
    // The START took ~100 ms for one item; its next request runs, 24 wait: one more (the END) fills the queue again.
    all.push(send(1, seq(1, false, true)));
    const paced = await retryOf(send(1, seq(1)));
    expect(batcher.waitMs(0)).toBeGreaterThanOrEqual(2400);
    expect(paced.retryAfterSeconds).toBeGreaterThanOrEqual(3); // 25 runs of ~100 ms
    expect(paced.retryAfterSeconds).toBeLessThanOrEqual(8); // room for 100 ms timers firing late on a busy machine
    // The backlog waits for clients to end sequences, which compute time does not tell.
    for (let id = 2; id <= 26; id++) all.push(send(1, seq(id, true, true)));
    const backlog = await retryOf(send(1, seq(99, true, true)));
    expect(backlog.message).toMatch(/25 requests wait for a sequence slot/);
    expect(backlog.retryAfterSeconds).toBe(1);
    backend.delayMs = 0;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([Promise.all(all), new Promise((_, reject) => (timer = setTimeout(() => reject(new Error('requests not answered within 3 s')), 3000)))]);
    clearTimeout(timer);
  });

  it('answers 400 for a batch of more than one row: controls are one row per request', async () => {
    const { batcher } = setup();
    const two = { name: 'X', datatype: 'FP32' as const, shape: [2, 1], data: Float32Array.of(1, 2) };
    await expect(batcher.enqueue({ inputs: [two], outputNames: [], sequence: seq(1, true) })).rejects.toThrow(
      "inference request to model 'acc' must specify batch-size 1 due to requirements of sequence batcher",
    );
  });

  it('counts START and END only once they succeed', async () => {
    const { send, value, backend } = setup();
    backend.delayMs = 10;
    // A failed START: the requests queued behind it are refused, not run as its continuation.
    const failed = send(666, seq(1, true));
    const after = send(1, seq(1));
    await expect(failed).rejects.toThrow(/x 666 is refused/);
    await expect(after).rejects.toThrow(/must specify the START flag: the request that started the sequence failed/);
    // A failed END leaves the sequence and its state: the client retries it.
    expect(await value(send(1, seq(2, true)))).toBe(1);
    await expect(send(666, seq(2, false, true))).rejects.toThrow(/x 666 is refused/);
    expect(await value(send(2, seq(2, false, true)))).toBe(3);
    await expect(send(1, seq(2))).rejects.toThrow(/must specify the START flag on the first request/);
  });

  it('refuses the requests behind a START that gave up in the backlog', async () => {
    const { send, value, backend } = setup({ maxActive: 1 });
    backend.delayMs = 40;
    const busy = send(1, seq(1, true, true));
    const start = send(5, seq(2, true), { deadline: performance.now() + 10 });
    const next = send(6, seq(2));
    await expect(start).rejects.toThrow(DeadlineExceeded);
    expect(await value(busy)).toBe(1);
    await expect(next).rejects.toThrow(/the request that started the sequence failed/);
  });

  it('keeps a running sequence when a START that would restart it fails', async () => {
    const { send, value } = setup();
    expect(await value(send(1, seq(8, true)))).toBe(1);
    expect(await value(send(2, seq(8)))).toBe(3);
    await expect(send(666, seq(8, true))).rejects.toThrow(/x 666 is refused/);
    expect(await value(send(4, seq(8)))).toBe(7);
  });

  it('takes a number and its digits as one sequence when CORRID is an integer', async () => {
    const { send, value } = setup();
    expect(await value(send(1, seq(42, true)))).toBe(1);
    expect(await value(send(2, seq('42')))).toBe(3);
    expect(await value(send(3, seq(42, false, true)))).toBe(6);
  });

  it('ends a sequence idle past idleMs, dropping its state and freeing its slot for the backlog', async () => {
    const { send, value, events } = setup({ maxActive: 1, idleMs: 40 });
    await value(send(1, seq(1, true)));
    const backlogged = send(5, seq(2, true));
    expect(await value(backlogged)).toBe(5); // admitted once sequence 1 went idle
    expect(events).toContainEqual(['idle', 1]);
    await expect(send(2, seq(1))).rejects.toThrow(/must specify the START flag/);
  });

  it('drops a waiting request whose client went away or whose deadline passed; the sequence goes on', async () => {
    const { send, value, backend } = setup();
    backend.delayMs = 40;
    const first = send(1, seq(1, true));
    const abort = new AbortController();
    const cancelled = send(100, seq(1), { signal: abort.signal });
    const late = send(1000, seq(1), { deadline: performance.now() + 10 });
    const next = send(2, seq(1));
    abort.abort();
    await expect(cancelled).rejects.toThrow(Cancelled);
    await expect(late).rejects.toThrow(DeadlineExceeded);
    expect(await value(first)).toBe(1);
    expect(await value(next)).toBe(3);
    expect(backend.runs.flat().map((r) => r[0])).toEqual([1, 2]);
  });

  it('drains the requests queued in sequences, then refuses new ones', async () => {
    const { send, value, batcher, backend } = setup();
    backend.delayMs = 10;
    const a = send(1, seq(1, true));
    const b = send(2, seq(1));
    const drained = batcher.drain();
    await expect(send(3, seq(2, true))).rejects.toThrow(Unavailable);
    expect(await value(a)).toBe(1);
    expect(await value(b)).toBe(3);
    await drained;
    expect(batcher.pending).toBe(0);
  });

  it('lets the backlog run at drain instead of waiting for idle sequences to time out', async () => {
    const { send, value, batcher } = setup({ maxActive: 1, idleMs: 60_000 });
    await value(send(1, seq(1, true)));
    const waiting = send(7, seq(2, true));
    const drained = batcher.drain();
    expect(await value(waiting)).toBe(7);
    await drained;
    // Draining, a sequence gives up its slot once it has nothing left to run.
    expect(batcher.sequenceCount).toEqual({ active: 0, backlog: 0 });
  });

  it('releases at drain the slot of a sequence whose last request was still running', async () => {
    const { send, value, batcher, backend } = setup({ maxActive: 1, idleMs: 60_000 });
    backend.delayMs = 30;
    const running = send(1, seq(1, true));
    const waiting = send(7, seq(2, true));
    const drained = batcher.drain();
    expect(await value(running)).toBe(1);
    expect(await value(waiting)).toBe(7);
    await drained;
  });

  it("reports its waiting requests, refusals and sequence counts to the model's observer", async () => {
    const seen = { pending: 0, rejected: [] as string[], counts: [] as string[], active: 0, backlog: 0 };
    const observer: BatchObserver = {
      onQueued: () => seen.pending++,
      onSettled: () => seen.pending--,
      onRejected: (r) => seen.rejected.push(r),
      // Reported as changes (a gauge shared by an old and a new batcher of one version adds them up).
      onSequences: (active, backlog) => seen.counts.push(`${(seen.active += active)}/${(seen.backlog += backlog)}`),
    };
    const { send, value, backend } = setup({ maxActive: 1 }, undefined, observer);
    backend.delayMs = 20;
    const a = send(1, seq(1, true));
    const b = send(2, seq(1));
    const c = send(10, seq(2, true)); // backlog
    expect(seen.pending).toBe(2); // a went on to the model's batcher; b and c wait here
    await expect(send(1, seq(3))).rejects.toThrow(InvalidArgument);
    const abort = new AbortController();
    const d = send(3, seq(1), { signal: abort.signal });
    abort.abort();
    await expect(d).rejects.toThrow(Cancelled);
    const end = send(4, seq(1, false, true));
    expect(await Promise.all([a, b, end].map(value))).toEqual([1, 3, 7]);
    expect(await value(c)).toBe(10);
    expect(seen.pending).toBe(0);
    expect(seen.rejected).toEqual(['invalid_argument', 'cancelled']);
    // 1 started; 2 queued behind it; 1 ended and 2 took its slot.
    expect(seen.counts).toEqual(['1/0', '1/1', '1/0']);
  });

  it('abandon drops its sequences and takes its counts back off the shared series', async () => {
    let active = 0;
    let backlog = 0;
    const observer: BatchObserver = { onSequences: (a, b) => ((active += a), (backlog += b)) };
    const { send, value, batcher, backend } = setup({ maxActive: 1 }, undefined, observer);
    await value(send(1, seq(1, true)));
    backend.delayMs = 50;
    const running = send(2, seq(1));
    const waiting = send(3, seq(2, true));
    expect([active, backlog]).toEqual([1, 1]);
    batcher.abandon(new Unavailable('gone'));
    await expect(waiting).rejects.toThrow('gone');
    await expect(running).rejects.toThrow('gone');
    expect([active, backlog]).toEqual([0, 0]);
    expect(batcher.sequenceCount).toEqual({ active: 0, backlog: 0 });
  });

  it('puts the correlation id in the CORRID control\'s type', async () => {
    const corrid = (datatype: SequenceControl['datatype']) => {
      const backend = new (class extends Accumulator {
        seen: Tensor[] = [];
        override async infer(inputs: Tensor[]): Promise<Tensor[]> {
          this.seen.push(inputs.find((t) => t.name === 'C')!);
          return [{ name: 'STATE_OUT', datatype: 'FP32', shape: [1, 1], data: new Float32Array(1) }];
        }
      })();
      const inner = createBatcher({ name: 'c', instances: [backend], batchable: true, maxBatchSize: 1, maxQueueDelayMicroseconds: 0, preferredBatchSizes: [], maxQueueSize: 64 });
      const b = new SequenceBatcher(inner, {
        model: "model 'c'", batchable: true, controls: [{ input: 'C', kind: 'corrid', datatype }],
        states: [{ input: 'S', output: 'STATE_OUT', datatype: 'FP32', shape: [1, 1], initial: new Float32Array(1) }], maxActive: 4, idleMs: 1000, maxQueued: 4,
      });
      return { b, seen: backend.seen };
    };
    const u64 = corrid('UINT64');
    await u64.b.enqueue({ inputs: [], outputNames: [], sequence: seq('18446744073709551615', true, true) });
    await expect(u64.b.enqueue({ inputs: [], outputNames: [], sequence: seq('abc', true) })).rejects.toThrow(/takes numeric correlation ids \(its CORRID control is UINT64\)/);
    expect(u64.seen[0]!.data).toEqual(BigUint64Array.of(2n ** 64n - 1n));
    const i32 = corrid('INT32');
    await i32.b.enqueue({ inputs: [], outputNames: [], sequence: seq(2 ** 32 + 7, true, true) });
    expect(i32.seen[0]!.data).toEqual(Int32Array.of(7)); // the low-order 32 bits, as Triton
    const bytes = corrid('BYTES');
    await bytes.b.enqueue({ inputs: [], outputNames: [], sequence: seq('user-42', true, true) });
    expect(new TextDecoder().decode((bytes.seen[0]!.data as Uint8Array[])[0])).toBe('user-42');
    expect(bytes.seen[0]!.shape).toEqual([1, 1]);
  });
});
