/**
 * @module batching/sequence-batcher
 * Triton's sequence batcher, for stateful models (`sequence_batching` in the config): each
 * request names its sequence (`sequence_id`, the correlation id) and says whether it starts or
 * ends it. A sequence's requests run one at a time, in arrival order; requests of different
 * sequences batch together in the model's own batcher (below this one). For each run the
 * batcher fills the model's control inputs (START, END, READY, CORRID) and its implicit state
 * inputs (the state the sequence's previous run output, or the initial state at START), and
 * keeps the state outputs for the next run instead of returning them.
 *
 * At most `maxActive` sequences hold a slot at once (Triton's direct strategy: instances ×
 * max batch size; oldest: `max_candidate_sequences`); a sequence started past that waits in a
 * backlog until a slot frees: at its END, or when it has had no request for `idleMs`.
 *
 * @example
 * const batcher = new SequenceBatcher(inner, plan);
 * await batcher.enqueue({ inputs, outputNames: [], sequence: { id: 7, start: true, end: false } });
 */
import type { Datatype, TensorData } from '../core/datatypes.js';
import { BIG_RANGES } from '../core/datatypes.js';
import { Cancelled, DeadlineExceeded, InvalidArgument, ResourceExhausted, Unavailable } from '../core/errors.js';
import type { Parameters, Tensor } from '../core/tensor.js';
import type { SequenceControl } from '../repository/model-config.js';
import { MAX_TIMER_MS } from '../core/within.js';
import type { SequenceFlags } from '../core/infer.js';
import type { BatchRequest, BatchResult, Batcher } from './batcher.js';
import { markRejected, retryAfterSeconds, type BatchObserver, type RejectReason } from './queue.js';

/** One implicit state, resolved at load: its initial value has the batch dim when the model batches. */
export interface PlannedState {
  input: string;
  output: string;
  datatype: Datatype;
  /** The initial state's shape and data, as fed at a sequence's START. */
  shape: number[];
  initial: TensorData;
}

export interface SequencePlan {
  /** For messages: `model 'name'`. */
  model: string;
  /** Control tensors get shape [1, 1] when the model batches, [1] when not. */
  batchable: boolean;
  controls: readonly SequenceControl[];
  states: readonly PlannedState[];
  /** Sequences holding a slot at once. */
  maxActive: number;
  /** A sequence with no request queued or running for this long loses its slot and state. */
  idleMs: number;
  /**
   * Requests waiting here, counted apart for sequences holding a slot (behind their sequence's
   * previous request) and for the backlog (waiting for a slot), so new sequences cannot crowd out
   * the requests that end running ones; past it a request is ResourceExhausted. The model's own
   * queue holds at most one request per sequence.
   */
  maxQueued: number;
  /** Told when a sequence is ended for being idle, and when a START meets a sequence that never ended. */
  onEvent?: (event: 'idle' | 'conflict', id: number | string) => void;
}

/**
 * The request's sequence flags from its parameters (Triton's `sequence_id`, `sequence_start`,
 * `sequence_end`). InvalidArgument when the id is missing, zero, empty or of the wrong kind.
 */
export function sequenceFlags(params: Parameters | undefined, model: string): SequenceFlags {
  const id = params?.sequence_id;
  if (id === undefined || !namesSequence(params)) throw noCorrelationId(`model '${model}'`);
  if (typeof id === 'boolean' || (typeof id === 'number' && (!Number.isSafeInteger(id) || id < 0))) {
    throw new InvalidArgument(`parameters.sequence_id: expected an unsigned integer or a string, got ${JSON.stringify(id)}`);
  }
  return { id, start: flag(params, 'sequence_start'), end: flag(params, 'sequence_end') };
}

/** The parameters name a sequence: a `sequence_id` other than Triton's "none" (absent, 0 or ""). */
export function namesSequence(params: Parameters | undefined): boolean {
  const id = params?.sequence_id;
  return id !== undefined && id !== 0 && id !== '';
}

/** Triton's refusal of a request to a stateful model that names no sequence. */
function noCorrelationId(model: string): InvalidArgument {
  return new InvalidArgument(`inference request to ${model} must specify a non-zero or non-empty correlation ID (parameters.sequence_id)`);
}

/** The request parameters that name `flags` (what `sequenceFlags` reads). */
export function sequenceParameters(flags: SequenceFlags): Parameters {
  const p: Parameters = { sequence_id: flags.id };
  if (flags.start) p.sequence_start = true;
  if (flags.end) p.sequence_end = true;
  return p;
}

function flag(params: Parameters | undefined, key: 'sequence_start' | 'sequence_end'): boolean {
  const v = params?.[key];
  if (v === undefined) return false;
  if (typeof v !== 'boolean') throw new InvalidArgument(`parameters.${key}: expected true or false, got ${JSON.stringify(v)}`);
  return v;
}

interface Waiting {
  request: BatchRequest;
  flags: SequenceFlags;
  /** Its control tensors, made (and the correlation id checked) when it arrived. */
  controls: Tensor[];
  resolve: (r: BatchResult) => void;
  reject: (err: unknown) => void;
  timer?: ReturnType<typeof setTimeout>;
  onAbort?: () => void;
}

interface Sequence {
  key: string;
  id: number | string;
  queue: Waiting[];
  running: boolean;
  /** Holds one of the `maxActive` slots (false while in the backlog). */
  active: boolean;
  /** Its START succeeded: later requests continue it (a START now restarts it). */
  started: boolean;
  /** Its END succeeded: only a START may follow. */
  ended: boolean;
  /** The state inputs of its next run; undefined: the initial state. */
  state?: Tensor[];
  /** performance.now() of its last request's end. */
  lastUsed: number;
}

export class SequenceBatcher implements Batcher {
  /** A request always waits for its sequence's previous one: the transport must give a signal. */
  readonly startsAtOnce = false;
  private readonly sequences = new Map<string, Sequence>();
  private readonly backlog: Sequence[] = [];
  private active = 0;
  private waiting = 0;
  /** Of `waiting`, the requests of sequences in the backlog. */
  private backlogWaiting = 0;
  /** The counts the observer was last told. */
  private reported = { active: 0, backlog: 0 };
  private draining = false;
  private drained?: Promise<void>;
  private resolveDrained?: () => void;
  private sweeper?: ReturnType<typeof setInterval>;
  private readonly stateOutputs: Set<string>;
  private readonly integerCorrid: boolean;

  constructor(
    private readonly inner: Batcher,
    private readonly plan: SequencePlan,
    /** The model's metric hooks: requests waiting here are pending, refusals here are rejections. */
    private readonly observer?: BatchObserver,
  ) {
    this.stateOutputs = new Set(plan.states.map((s) => s.output));
    this.integerCorrid = plan.controls.some((c) => c.kind === 'corrid' && c.datatype !== 'BYTES');
  }

  get pending(): number {
    return this.waiting + this.inner.pending;
  }

  get queuedRequests(): number {
    return this.waiting + this.inner.queuedRequests;
  }

  /**
   * The model's batcher's estimate for the requests waiting here behind their sequence's previous
   * one (one row each) on top of its own queue: at the recent pace, a round of the sequences'
   * next requests costs what a batch of that many items did.
   */
  waitMs(rows: number): number | undefined {
    return this.inner.waitMs?.(this.waiting - this.backlogWaiting + rows);
  }

  /** Sequences holding a slot, and those waiting for one. */
  get sequenceCount(): { active: number; backlog: number } {
    return { active: this.active, backlog: this.backlog.length };
  }

  enqueue(request: BatchRequest): Promise<BatchResult> {
    if (this.draining) return this.refuse('unavailable', new Unavailable(`${this.plan.model} is shutting down; not accepting requests`));
    const flags = request.sequence;
    if (!flags) return this.refuse('invalid_argument', noCorrelationId(this.plan.model));
    let controls: Tensor[];
    try {
      // The controls are one row per request: the server cannot split a sequence's request into several.
      if (this.plan.batchable && request.inputs.some((t) => t.shape[0] !== 1)) {
        throw new InvalidArgument(`inference request to ${this.plan.model} must specify batch-size 1 due to requirements of sequence batcher`);
      }
      // Made now: a correlation id the CORRID control cannot hold fails here, not when its turn comes.
      controls = this.controls(flags);
    } catch (err) {
      return this.refuse('invalid_argument', err);
    }
    const key = this.keyOf(flags.id);
    let seq = this.sequences.get(key);
    if (!seq && !flags.start) {
      return this.refuse('invalid_argument', new InvalidArgument(`inference request for sequence ${flags.id} to ${this.plan.model} must specify the START flag on the first request of the sequence (parameters.sequence_start: true); a sequence also ends after ${this.plan.idleMs} ms without requests`));
    }
    const toBacklog = seq ? !seq.active : this.active >= this.plan.maxActive;
    const queued = toBacklog ? this.backlogWaiting : this.waiting - this.backlogWaiting;
    if (queued >= this.plan.maxQueued) {
      const where = toBacklog ? 'wait for a sequence slot' : "wait behind their sequence's previous request";
      // A slot frees when a client ends its sequence or leaves it idle, which compute time does not tell: 1 s.
      const retry = toBacklog ? 1 : retryAfterSeconds(this.waitMs(0));
      return this.refuse('queue_full', new ResourceExhausted(`${this.plan.model}: ${queued} requests ${where}; retry later`, retry));
    }
    if (!seq) {
      seq = { key, id: flags.id, queue: [], running: false, active: false, started: false, ended: false, lastUsed: performance.now() };
      if (this.active < this.plan.maxActive) {
        seq.active = true;
        this.active++;
      } else {
        this.backlog.push(seq);
      }
      this.sequences.set(key, seq);
      this.countChanged();
      this.sweeper ??= setInterval(() => this.sweep(), Math.max(10, Math.min(1000, this.plan.idleMs / 4))).unref();
    }
    const s = seq;
    return new Promise<BatchResult>((resolve, reject) => {
      const w: Waiting = { request, flags, controls, resolve, reject };
      s.queue.push(w);
      this.waiting++;
      this.notify((o) => o.onQueued?.());
      if (!s.active) this.backlogWaiting++;
      const drop = (reason: RejectReason, err: unknown) => {
        const i = s.queue.indexOf(w);
        if (i < 0) return;
        s.queue.splice(i, 1);
        if (!s.active) this.backlogWaiting--;
        this.finishWaiting(w);
        this.rejected(reason, err);
        reject(err);
        // A sequence still in the backlog whose every request went away never started: forget it.
        if (!s.active && s.queue.length === 0) this.forget(s);
      };
      // A deadline past setTimeout's range is left to the model's batcher.
      if (request.deadline !== undefined && request.deadline - performance.now() < MAX_TIMER_MS) {
        w.timer = setTimeout(() => drop('deadline_exceeded', new DeadlineExceeded('request deadline passed while it waited for its sequence\'s previous request; it was not computed')), Math.max(0, request.deadline - performance.now()));
      }
      if (request.signal) {
        w.onAbort = () => drop('cancelled', new Cancelled('request cancelled while it waited for its sequence\'s previous request; it was not computed'));
        request.signal.addEventListener('abort', w.onAbort, { once: true });
      }
      this.pump(s);
    });
  }

  drain(): Promise<void> {
    if (!this.drained) {
      this.draining = true;
      // Sequences waiting for nothing give their slots to the backlog's queued requests now, not at
      // their idle end (pump does the same for those whose last request is still running).
      for (const s of [...this.sequences.values()]) if (s.active && !s.running && s.queue.length === 0) this.release(s);
      this.drained = new Promise<void>((resolve) => (this.resolveDrained = resolve)).then(() => this.inner.drain());
      this.checkDrained();
    }
    return this.drained;
  }

  abandon(err: unknown): void {
    this.draining = true;
    for (const s of [...this.sequences.values()]) {
      for (const w of s.queue.splice(0)) {
        this.finishWaiting(w);
        this.rejected('unavailable', err);
        w.reject(err);
      }
    }
    this.backlogWaiting = 0;
    // Nothing of this batcher runs again: its sequences and slots are gone (a run still settling releases nothing).
    for (const s of this.sequences.values()) s.active = false;
    this.sequences.clear();
    this.backlog.length = 0;
    this.active = 0;
    clearInterval(this.sweeper);
    this.sweeper = undefined;
    this.countChanged();
    this.inner.abandon(err);
    this.checkDrained();
  }

  /** Runs the sequence's next request when nothing of it runs and it holds a slot. */
  private pump(s: Sequence): void {
    if (s.running || !s.active) return;
    const w = s.queue.shift();
    if (!w) {
      // Ended, never started (its START failed or went away), or draining: the slot goes to the backlog.
      if (s.ended || !s.started || this.draining) this.release(s);
      this.checkDrained();
      return;
    }
    this.finishWaiting(w);
    if ((s.ended || !s.started) && !w.flags.start) {
      const why = s.ended ? 'the sequence ended with an earlier request' : 'the request that started the sequence failed';
      const err = new InvalidArgument(`inference request for sequence ${s.id} to ${this.plan.model} must specify the START flag: ${why}`);
      this.rejected('invalid_argument', err);
      w.reject(err);
      return this.pump(s);
    }
    const { request, flags } = w;
    // Triton's "conflict": a new sequence under the id of one that never sent its END.
    if (flags.start && s.started && !s.ended) this.plan.onEvent?.('conflict', s.id);
    s.running = true;
    // A START runs on the initial state; the sequence's own changes only if it succeeds.
    const state = flags.start ? undefined : s.state;
    const inputs = [...request.inputs, ...w.controls, ...(state ?? this.initialState())];
    const names = request.outputNames;
    // Clients cannot name state outputs (the served metadata leaves them out): add them when outputs are picked.
    const outputNames = names.length ? [...names, ...this.stateOutputs] : names;
    this.inner
      .enqueue({ inputs, outputNames, deadline: request.deadline, signal: request.signal })
      .then(
        (result) => {
          try {
            s.state = this.nextState(result.outputs);
          } catch (err) {
            return w.reject(err);
          }
          // A failed request changes nothing: the state, START and END count once they succeed.
          s.started = true;
          s.ended = flags.end;
          // State outputs are the server's.
          result.outputs = result.outputs.filter((t) => !this.stateOutputs.has(t.name));
          w.resolve(result);
        },
        (err: unknown) => w.reject(err),
      )
      .finally(() => {
        s.running = false;
        s.lastUsed = performance.now();
        this.pump(s);
      });
  }

  /**
   * The sequence's key: ids the CORRID control would give the same value (42 and "42") are one
   * sequence; otherwise a number and a string are different ids, as in Triton.
   */
  private keyOf(id: number | string): string {
    if (typeof id === 'number') return `#${id}`;
    return this.integerCorrid && /^\d{1,20}$/.test(id) ? `#${BigInt(id)}` : `"${id}`;
  }

  private controls(flags: SequenceFlags): Tensor[] {
    const shape = this.plan.batchable ? [1, 1] : [1];
    return this.plan.controls.map((c) => {
      if (c.kind === 'corrid') return { name: c.input, datatype: c.datatype, shape, data: corridData(c.datatype, flags.id, this.plan.model) };
      const on = c.kind === 'start' ? flags.start : c.kind === 'end' ? flags.end : true;
      return { name: c.input, datatype: c.datatype, shape, data: scalar(c.datatype, c.values![on ? 1 : 0]) };
    });
  }

  private initialState(): Tensor[] {
    return this.plan.states.map((st) => ({ name: st.input, datatype: st.datatype, shape: st.shape, data: st.initial }));
  }

  /** The state outputs of a run, renamed as the next run's state inputs. */
  private nextState(outputs: readonly Tensor[]): Tensor[] {
    return this.plan.states.map((st) => {
      const t = outputs.find((o) => o.name === st.output);
      // The model declared the output (checked at load); a backend that left it out is a model fault.
      if (!t) throw new Unavailable(`${this.plan.model}: the run returned no state output '${st.output}'`);
      return { name: st.input, datatype: t.datatype, shape: t.shape, data: t.data };
    });
  }

  /** Frees the sequence's slot and gives it to the oldest sequence in the backlog. */
  private release(s: Sequence): void {
    this.forget(s);
    if (s.active) {
      s.active = false;
      this.active--;
    }
    while (this.active < this.plan.maxActive && this.backlog.length > 0) {
      const next = this.backlog.shift()!;
      this.backlogWaiting -= next.queue.length;
      next.active = true;
      next.lastUsed = performance.now();
      this.active++;
      this.pump(next);
    }
    this.countChanged();
  }

  private forget(s: Sequence): void {
    if (this.sequences.get(s.key) === s) this.sequences.delete(s.key);
    const i = this.backlog.indexOf(s);
    if (i >= 0) {
      this.backlog.splice(i, 1);
      this.countChanged();
    }
    if (this.sequences.size === 0 && this.sweeper) {
      clearInterval(this.sweeper);
      this.sweeper = undefined;
    }
    this.checkDrained();
  }

  /** Ends sequences with nothing queued or running for longer than the idle limit. */
  private sweep(): void {
    const now = performance.now();
    for (const s of [...this.sequences.values()]) {
      if (s.active && !s.running && s.queue.length === 0 && now - s.lastUsed > this.plan.idleMs) {
        if (!s.ended) this.plan.onEvent?.('idle', s.id);
        this.release(s);
      }
    }
  }

  private finishWaiting(w: Waiting): void {
    this.waiting--;
    // Pending until the model's own batcher takes it (which counts it again) or it is answered here.
    this.notify((o) => o.onSettled?.());
    if (w.timer) clearTimeout(w.timer);
    if (w.onAbort) w.request.signal?.removeEventListener('abort', w.onAbort);
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

  /**
   * Reports the counts as changes, so a reload of the same version (whose old and new batchers
   * share one series until the old one has drained) adds up instead of overwriting.
   */
  private countChanged(): void {
    const active = this.active - this.reported.active;
    const backlog = this.backlog.length - this.reported.backlog;
    if (active === 0 && backlog === 0) return;
    this.reported = { active: this.active, backlog: this.backlog.length };
    this.notify((o) => o.onSequences?.(active, backlog));
  }

  private notify(call: (o: BatchObserver) => void): void {
    if (!this.observer) return;
    try {
      call(this.observer);
    } catch {
      // Metrics must never break serving.
    }
  }

  /** Drained once no request of any sequence waits or runs here (the inner batcher then drains its own). */
  private checkDrained(): void {
    if (!this.draining || !this.resolveDrained) return;
    for (const s of this.sequences.values()) if (s.running || s.queue.length > 0) return;
    this.resolveDrained();
    this.resolveDrained = undefined;
    clearInterval(this.sweeper);
    this.sweeper = undefined;
  }
}

function scalar(datatype: Datatype, v: number): TensorData {
  if (datatype === 'FP32') return Float32Array.of(v);
  if (datatype === 'INT32') return Int32Array.of(v);
  return Uint8Array.of(v ? 1 : 0); // BOOL
}

/**
 * The CORRID control's value: the id in the control's datatype. As in Triton, a 32-bit type
 * takes the id's low-order 32 bits; a string id fits only BYTES, or an integer type as digits.
 */
function corridData(datatype: Datatype, id: number | string, model: string): TensorData {
  if (datatype === 'BYTES') return [new TextEncoder().encode(String(id))];
  const n = typeof id === 'number' ? BigInt(id) : /^\d{1,20}$/.test(id) ? BigInt(id) : undefined;
  if (n === undefined || n > BIG_RANGES.UINT64[1]) {
    throw new InvalidArgument(`parameters.sequence_id ${JSON.stringify(id)}: ${model} takes numeric correlation ids (its CORRID control is ${datatype})`);
  }
  if (datatype === 'UINT64') return BigUint64Array.of(n);
  if (datatype === 'INT64') return BigInt64Array.of(BigInt.asIntN(64, n));
  return datatype === 'UINT32' ? Uint32Array.of(Number(BigInt.asUintN(32, n))) : Int32Array.of(Number(BigInt.asIntN(32, n)));
}
