/**
 * @module backends/onnx
 * `OnnxBackend`: ONNX Runtime (onnxruntime-node, CPU execution provider).
 * Metadata comes from the model file, checked against and refined by the
 * config's declared inputs/outputs (Triton semantics: with `max_batch_size > 0`
 * declared dims exclude the batch dim, served as `[-1, ...dims]`).
 *
 * Where each instance's session runs (`session_thread`, see `sessionThread`):
 * - `worker`: its own worker thread (`onnx-worker.ts`). `session.run()` is
 *   synchronous native work; there it does not stop the event loop (health
 *   probes, metrics, deadlines, other instances). Inputs are copied to the
 *   thread (the caller keeps its buffers); numeric outputs come back
 *   transferred, without a copy.
 * - `event_loop`: the main thread, with no hop and no copy. On one CPU this
 *   is faster, and a thread could not run in parallel anyway.
 * - `auto` (default): `event_loop` on one CPU, `worker` otherwise. From the
 *   loop a session moves to a worker when a run blocks the loop for more than
 *   EVENT_LOOP_RUN_LIMIT_MS, and, under Triton's delay rule, at its first
 *   run of more than one row.
 * Both hosts run the same handler (`onnx-session.ts`).
 *
 * Session options come from config/load `parameters`:
 * - `intra_op_thread_count` (or the original server's `threads`): threads per operator;
 * - `inter_op_thread_count`: threads across operators (only with `execution_mode: parallel`);
 * - `graph_optimization_level`: `disabled|basic|extended|layout|all` or ORT's numbers 0/1/2/99;
 * - `execution_mode`: `sequential|parallel` or Triton's 0/1.
 *
 * @example
 * const backend = new OnnxBackend();
 * const meta = await backend.load({ name: 'mlp', version: '1', dir, modelFile, config });
 * const [y] = await backend.infer([{ name: 'x', datatype: 'FP32', shape: [1, 4], data }], []);
 * await backend.unload(); // ends the thread
 */
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { availableParallelism } from 'node:os';
import { relative } from 'node:path';
import { Worker } from 'node:worker_threads';
import type * as ort from 'onnxruntime-node';
import type { Datatype, NumericArray } from '../core/datatypes.js';
import { Internal, InvalidArgument, KinferError, NotFound, NotReady, Unavailable, Unsupported } from '../core/errors.js';
import type { Tensor, TensorSpec } from '../core/tensor.js';
import type { ModelConfig } from '../repository/model-config.js';
import type { Backend, ModelFiles, ModelMetadata } from './backend.js';
import { takeOver } from '../batching/ownership.js';
import { onnxSessionHandler, type SessionHandler, type SessionReply, type SessionRequest, type WireTensor, type WireValueMetadata } from './onnx-session.js';
import { onnxWorkerMain, type WorkerInit } from './onnx-worker.js';
import { logger } from '../observability/logger.js';
import { sequenceTensorNames } from '../repository/sequence-plan.js';

export const ONNX_PLATFORMS = ['onnx_onnxv1', 'onnxruntime_onnx', 'onnx'] as const;

/** The platform reported in metadata when the config names none (Triton's name, known to KServe tooling). */
const DEFAULT_PLATFORM = 'onnxruntime_onnx';

const ORT_TO_V2: Partial<Record<ort.Tensor.Type, Datatype>> = {
  bool: 'BOOL',
  uint8: 'UINT8',
  uint16: 'UINT16',
  uint32: 'UINT32',
  uint64: 'UINT64',
  int8: 'INT8',
  int16: 'INT16',
  int32: 'INT32',
  int64: 'INT64',
  float16: 'FP16',
  float32: 'FP32',
  float64: 'FP64',
  string: 'BYTES',
};

const V2_TO_ORT: Record<Datatype, ort.Tensor.Type> = {
  BOOL: 'bool',
  UINT8: 'uint8',
  UINT16: 'uint16',
  UINT32: 'uint32',
  UINT64: 'uint64',
  INT8: 'int8',
  INT16: 'int16',
  INT32: 'int32',
  INT64: 'int64',
  FP16: 'float16',
  FP32: 'float32',
  FP64: 'float64',
  BYTES: 'string',
};

const LEVELS: Record<string, ort.InferenceSession.SessionOptions['graphOptimizationLevel']> = {
  disabled: 'disabled',
  basic: 'basic',
  extended: 'extended',
  layout: 'layout',
  all: 'all',
  '0': 'disabled',
  '1': 'basic',
  '2': 'extended',
  '99': 'all',
};

const utf8 = new TextDecoder('utf-8', { fatal: true });
const encoder = new TextEncoder();

/**
 * CPUs this process may use: the cgroup v2 quota when one is set (a Knative
 * pod with `limits.cpu: 1` on a 64-core node must not start 64 threads),
 * else the CPUs the scheduler gives the process.
 */
export async function cpuBudget(cpuMaxFile = '/sys/fs/cgroup/cpu.max'): Promise<number> {
  const cpus = Math.max(1, availableParallelism());
  try {
    const [quota, period] = (await readFile(cpuMaxFile, 'utf8')).trim().split(/\s+/);
    if (quota && quota !== 'max' && period) {
      const n = Number(quota) / Number(period);
      if (Number.isFinite(n) && n > 0) return Math.max(1, Math.min(cpus, Math.floor(n)));
    }
  } catch {
    // No cgroup v2 file (macOS, cgroup v1): fall back to the CPU count.
  }
  return cpus;
}

/**
 * Session options from the config parameters. Defaults: graph optimisation
 * `all`, sequential execution, one inter-op thread, and intra-op threads =
 * the CPU budget divided among the instances (at least 1). On a 2-core box
 * with one instance that is 2 threads, so one request uses both cores; with
 * `instance_group { count: 2 }` it is 1 each, so parallel instances do not
 * oversubscribe. Idle spinning is turned off: spinning workers burn the CPU
 * that Knative's autoscaler and co-located models need.
 */
export async function sessionOptions(config: ModelConfig, cpus?: number): Promise<ort.InferenceSession.SessionOptions> {
  const p = config.parameters;
  const budget = cpus ?? (await cpuBudget());
  const positive = (key: string): number | undefined => {
    const raw = p[key];
    if (raw === undefined || raw === '') return undefined;
    const n = Number(raw);
    if (!Number.isSafeInteger(n) || n < 0 || n > 1024) {
      throw new InvalidArgument(`parameter ${key}: expected an integer from 0 to 1024 (0 = ONNX Runtime's default), got ${JSON.stringify(raw)}`);
    }
    return n;
  };
  const intra = positive('intra_op_thread_count') ?? positive('threads') ?? Math.max(1, Math.floor(budget / Math.max(1, config.instanceCount)));
  const inter = positive('inter_op_thread_count') ?? 1;

  const levelRaw = p.graph_optimization_level;
  const level = levelRaw === undefined ? 'all' : LEVELS[levelRaw.trim().toLowerCase()];
  if (!level) {
    throw new InvalidArgument(
      `parameter graph_optimization_level: expected disabled, basic, extended, layout, all (or 0, 1, 2, 99), got ${JSON.stringify(levelRaw)}`,
    );
  }
  const modeRaw = p.execution_mode?.trim().toLowerCase();
  let executionMode: 'sequential' | 'parallel' = 'sequential';
  if (modeRaw === 'parallel' || modeRaw === '1') executionMode = 'parallel';
  else if (modeRaw !== undefined && modeRaw !== 'sequential' && modeRaw !== '0') {
    throw new InvalidArgument(`parameter execution_mode: expected sequential or parallel (or 0, 1), got ${JSON.stringify(p.execution_mode)}`);
  }
  return {
    executionProviders: ['cpu'],
    intraOpNumThreads: intra,
    interOpNumThreads: inter,
    graphOptimizationLevel: level,
    executionMode,
    // ORT prints its own lines to stderr (colour codes, not JSON), one per failed run, so a client's
    // bad inputs would interleave them with the JSON log. Its errors reach the caller and that log
    // anyway; at LOG_LEVEL=debug its warnings (e.g. nodes left off an execution provider) show too.
    logSeverityLevel: logger.isLevelEnabled('debug') ? ORT_WARNING : ORT_FATAL,
    extra: { session: { intra_op: { allow_spinning: '0' }, inter_op: { allow_spinning: '0' } } },
  };
}

/** ORT's log severities (OrtLoggingLevel). */
const ORT_WARNING = 2;
const ORT_FATAL = 4;

interface FileValue {
  name: string;
  datatype: Datatype;
  /** From the file: -1 for symbolic or unknown dims. */
  shape: number[];
}

/**
 * Nice increment of each session thread over the process: the event loop wins the core whenever it has
 * work, so requests that arrive during a batch are parsed and queued at once instead of after the
 * run's time slice. Model-path MLP on one core, six interleaved pairs in both orders: c=8 +1 to +20%
 * (mean +8%); c=1 and c=32 within noise.
 */
const WORKER_NICE_INCREMENT = 10;

/** How long `unload` waits for the thread to release its session before terminating it. */
const RELEASE_TIMEOUT_MS = 5_000;

/** The worker's source: the compiled text of `onnxWorkerMain`, called with the eval wrapper's `require` and the handler's text. */
const WORKER_SOURCE = `(${onnxWorkerMain.toString()})(require, ${onnxSessionHandler.toString()});`;

/**
 * With `session_thread: auto` on the event loop, a run longer than this moves the session to a
 * worker thread: the loop answers nothing else (probes, /metrics, new connections) during a run.
 */
export const EVENT_LOOP_RUN_LIMIT_MS = 100;

/** Where a session runs: its own worker thread, or the server's event loop. */
export type SessionThread = 'worker' | 'event_loop';

/**
 * The `session_thread` parameter: `worker`, `event_loop`, or `auto` (default).
 * `auto` is the event loop when the process has one CPU, a worker thread
 * otherwise.
 * - On one CPU a thread adds no parallelism, only a hop per run: two thread
 *   switches and a copy. Same model and policy (adaptive), same run, server
 *   on one core: event loop 1.03–1.09× the worker's items/s at c=1, c=8 and
 *   c=32. Spawn → ready with ocr-det: ~100 ms less, and 10 MB less RSS.
 * - Triton's delay rule batches worse on the loop. It counts the wait from
 *   the first arrival; on the loop the parsing of the requests that should
 *   join falls inside that window, and a run stops the parsing of the next
 *   ones: mean batch 2.7 at c=8 against 4.0 in a worker (0.48–0.57× of
 *   in-process against 0.66–0.70×). Such a model starts on the loop and
 *   moves to a worker at its first run of more than one row (`untilBatch`;
 *   a merged batch, or a client's own): a lone client, and the start, keep
 *   the loop's gains.
 * `auto` on the event loop also moves to a worker once a run takes longer
 * than EVENT_LOOP_RUN_LIMIT_MS.
 */
export function sessionThread(config: ModelConfig, cpus: number): { thread: SessionThread; auto: boolean; untilBatch: boolean } {
  const raw = config.parameters.session_thread?.trim().toLowerCase();
  if (raw === 'worker' || raw === 'event_loop') return { thread: raw, auto: false, untilBatch: false };
  if (raw !== undefined && raw !== '' && raw !== 'auto') {
    throw new InvalidArgument(`parameter session_thread: expected worker, event_loop or auto, got ${JSON.stringify(config.parameters.session_thread)}`);
  }
  if (cpus > 1) return { thread: 'worker', auto: true, untilBatch: false };
  const delayBatching = config.dynamicBatching !== undefined && config.maxBatchSize > 1 && config.parameters.batch_policy !== 'adaptive';
  return { thread: 'event_loop', auto: true, untilBatch: delayBatching };
}

let ortPath: string | undefined;
/** onnxruntime-node's entry file, which a worker thread requires. */
function ortEntry(): string {
  ortPath ??= createRequire(import.meta.url).resolve('onnxruntime-node');
  return ortPath;
}

let ortModule: Promise<typeof ort> | undefined;
/**
 * onnxruntime-node for sessions on the event loop. A literal import(), so the
 * built CLI inlines its JavaScript (scripts/bundle.mjs) and compiles it from
 * the code cache: required from node_modules, its ~30 CommonJS files took
 * ~30 ms of a cold start on one core.
 */
function loadOrt(): Promise<typeof ort> {
  // A CommonJS package: its module.exports is the default export.
  ortModule ??= import('onnxruntime-node').then((m) => m.default as unknown as typeof ort);
  return ortModule;
}

type RequestBody = SessionRequest extends infer R ? (R extends SessionRequest ? Omit<R, 'id'> : never) : never;

/** What holds one session and answers its requests in order: a worker thread or the event loop. */
interface SessionHost {
  readonly thread: SessionThread;
  /** Why the host stopped serving, once it has. */
  readonly failure: string | undefined;
  /** `transfer`: input buffers the host may take (the worker moves them to its thread). */
  request(body: RequestBody, transfer?: ArrayBuffer[]): Promise<SessionReply>;
  /** Releases the session after the requests already queued. Idempotent. */
  close(): Promise<void>;
}

interface Pending {
  resolve: (reply: SessionReply) => void;
  reject: (err: KinferError) => void;
}

/**
 * One worker thread and its request/reply bookkeeping. The thread is unref'd
 * while idle (an idle instance does not keep the process alive) and ref'd
 * while a request is pending. When the thread dies (uncaught error,
 * `process.exit`, an undeserialisable reply), pending requests fail with
 * Internal and later ones with Unavailable; nothing hangs.
 */
class SessionWorker implements SessionHost {
  readonly thread = 'worker';
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private closing: Promise<void> | undefined;
  /** Why the thread stopped serving, once it has. */
  failure: string | undefined;

  constructor(
    private readonly worker: Worker,
    private readonly model: string,
  ) {
    this.worker.unref();
    this.worker.on('message', (reply: SessionReply) => this.settle(reply));
    this.worker.on('error', (err) => this.fail(`its thread threw: ${messageOf(err)}`));
    this.worker.on('messageerror', (err) => this.fail(`a reply could not be read: ${messageOf(err)}`));
    this.worker.on('exit', (code) => this.fail(`its thread exited with code ${code}`));
  }

  request(body: RequestBody, transfer: ArrayBuffer[] = []): Promise<SessionReply> {
    if (this.closing) return Promise.reject(new NotReady(`model '${this.model}' is unloading`));
    if (this.failure !== undefined) {
      return Promise.reject(new Unavailable(`model '${this.model}': its ONNX Runtime worker stopped (${this.failure}); reload the model`));
    }
    return this.post(body, transfer);
  }

  /** Releases the session (after the runs already queued), then ends the thread. Idempotent. */
  close(): Promise<void> {
    if (!this.closing) {
      const released = this.failure === undefined ? this.post({ op: 'release' }) : Promise.resolve(undefined);
      this.closing = (async () => {
        let timer: NodeJS.Timeout | undefined;
        const timeout = new Promise<void>((resolve) => {
          timer = setTimeout(resolve, RELEASE_TIMEOUT_MS);
        });
        try {
          await Promise.race([released.catch(() => undefined), timeout]);
        } finally {
          clearTimeout(timer);
        }
        await this.worker.terminate();
      })();
    }
    return this.closing;
  }

  private post(body: RequestBody, transfer: ArrayBuffer[] = []): Promise<SessionReply> {
    const id = this.nextId++;
    const reply = new Promise<SessionReply>((resolve, reject) => this.pending.set(id, { resolve, reject }));
    if (this.pending.size === 1) this.worker.ref();
    try {
      this.worker.postMessage({ ...body, id } as SessionRequest, transfer);
    } catch (err) {
      this.settle({ id, ok: false, error: `cannot send the request to the ONNX Runtime worker: ${messageOf(err)}` });
    }
    return reply;
  }

  private settle(reply: SessionReply): void {
    const p = this.pending.get(reply.id);
    if (!p) return;
    this.pending.delete(reply.id);
    if (this.pending.size === 0) this.worker.unref();
    p.resolve(reply);
  }

  private fail(reason: string): void {
    if (this.failure === undefined) this.failure = reason;
    for (const p of this.pending.values()) {
      p.reject(
        this.closing
          ? new NotReady(`model '${this.model}' was unloaded while a request was running`)
          : new Internal(`model '${this.model}': the ONNX Runtime worker failed during the request: ${reason}`),
      );
    }
    this.pending.clear();
    if (!this.closing) this.worker.terminate().catch(() => undefined);
  }
}

/**
 * The session on the event loop (`session_thread: event_loop`): ONNX Runtime
 * is loaded into the main thread and `session.run()` runs there, with the
 * caller's input buffers as they are. Requests are answered one at a time.
 */
class EventLoopSession implements SessionHost {
  readonly thread = 'event_loop';
  readonly failure = undefined;
  private readonly handle: SessionHandler;
  private queue: Promise<unknown> = Promise.resolve();
  private nextId = 1;
  private closing: Promise<void> | undefined;

  constructor(
    private readonly model: string,
    ortApi: typeof ort,
  ) {
    this.handle = onnxSessionHandler(ortApi);
  }

  request(body: RequestBody): Promise<SessionReply> {
    if (this.closing) return Promise.reject(new NotReady(`model '${this.model}' is unloading`));
    return this.post(body);
  }

  close(): Promise<void> {
    this.closing ??= this.post({ op: 'release' }).then(() => undefined);
    return this.closing;
  }

  private post(body: RequestBody): Promise<SessionReply> {
    const id = this.nextId++;
    const reply = this.queue.then(async () => (await this.handle({ ...body, id } as SessionRequest)).reply);
    this.queue = reply;
    return reply;
  }
}

export interface OnnxBackendOptions {
  /** CPUs this process may use (default: `cpuBudget()`): sets intra-op threads and `session_thread: auto`. */
  cpus?: number;
  /** Longest run `session_thread: auto` keeps on the event loop (default EVENT_LOOP_RUN_LIMIT_MS). */
  eventLoopRunLimitMs?: number;
}

export class OnnxBackend implements Backend {
  private host: SessionHost | undefined;
  /** Set while `auto` moves the session from the event loop to a worker thread. */
  private moving: Promise<void> | undefined;
  private files: ModelFiles | undefined;
  private auto = false;
  /** `auto` under Triton's delay rule on one CPU: move to a worker at the first run of more than one row (a merged batch, or a client's own). */
  private untilBatch = false;
  private name = '';
  private inputs: TensorSpec[] = [];
  private outputs: TensorSpec[] = [];
  /** The config's `optional` inputs: a run may leave them out (ORT then says whether the graph needs them). */
  private optional: readonly string[] = [];
  /** The options the session was created with (for tests and logs). */
  options: ort.InferenceSession.SessionOptions | undefined;
  /** Wall-clock span (epoch ms, measured in the worker) of the last `session.run`. */
  lastRun: { startedAt: number; endedAt: number } | undefined;
  /** The session thread's nice value (Linux), as the thread reported it after lowering its priority. */
  threadNice: number | undefined;

  constructor(private readonly opts: OnnxBackendOptions = {}) {}

  /** Where the session runs now (undefined before load and after unload). */
  get sessionThread(): SessionThread | undefined {
    return this.host?.thread;
  }

  /** The JavaScript the worker thread evaluates. Tests override it to inject faults. */
  protected workerSource(): string {
    return WORKER_SOURCE;
  }

  /** Starts the thread that will own the session (one per `load`). */
  protected spawnWorker(init: WorkerInit, model: string): Worker {
    return new Worker(this.workerSource(), { eval: true, workerData: init, name: `onnx ${model}` });
  }

  async load(files: ModelFiles): Promise<ModelMetadata> {
    if (this.host) throw new Internal(`model '${files.name}': OnnxBackend.load called twice`);
    const { name, config } = files;
    this.name = name;
    if (!files.modelFile) {
      throw new NotFound(`model '${name}' version ${files.version}: no .onnx file in ${files.dir}`);
    }
    const cpus = this.opts.cpus ?? (await cpuBudget());
    const options = await sessionOptions(config, cpus);
    const { thread, auto, untilBatch } = sessionThread(config, cpus);
    const host = thread === 'worker' ? this.startWorker(name) : new EventLoopSession(name, await loadOrt());
    try {
      const reply = await this.open(host, files, options);
      this.threadNice = reply.nice;
      const fileInputs = reply.inputs.map((m) => fromOrtMetadata(name, 'input', m));
      const fileOutputs = reply.outputs.map((m) => fromOrtMetadata(name, 'output', m));
      const ins = reconcile(name, 'input', fileInputs, config.inputs, config.maxBatchSize);
      const outs = reconcile(name, 'output', fileOutputs, config.outputs, config.maxBatchSize);
      // A sequence model's config lists only what clients send and get (as Triton's): the server's
      // control and state tensors come from the file, for the sequence batcher to check and fill.
      if (config.sequenceBatching) {
        const own = sequenceTensorNames(config.sequenceBatching);
        if (config.inputs.length > 0) ins.specs.push(...fileInputs.filter((f) => own.inputs.has(f.name) && !ins.specs.some((s) => s.name === f.name)));
        if (config.outputs.length > 0) outs.specs.push(...fileOutputs.filter((f) => own.outputs.has(f.name) && !outs.specs.some((s) => s.name === f.name)));
      }
      for (const f of fileInputs) {
        if (!ins.specs.some((s) => s.name === f.name)) {
          throw new InvalidArgument(`model '${name}': the config does not declare the model's input '${f.name}'`);
        }
      }
      const all = [...ins.specs, ...outs.specs];
      // Triton semantics: an explicit config with max_batch_size 0 says "no batch dim".
      const noBatching = ins.tritonNoBatch || outs.tritonNoBatch;
      const batchable = !noBatching && all.length > 0 && all.every((s) => s.shape.length > 0 && s.shape[0] === -1);
      this.host = host;
      this.files = files;
      this.auto = auto;
      this.untilBatch = untilBatch;
      this.options = options;
      this.inputs = ins.specs;
      this.outputs = outs.specs;
      this.optional = config.optionalInputs ?? [];
      const platform = config.platform && (ONNX_PLATFORMS as readonly string[]).includes(config.platform) ? config.platform : DEFAULT_PLATFORM;
      return { platform, inputs: ins.specs, outputs: outs.specs, batchable, maxBatchSize: config.maxBatchSize > 0 ? config.maxBatchSize : 0 };
    } catch (err) {
      await host.close();
      throw err;
    }
  }

  private startWorker(name: string): SessionWorker {
    let thread: Worker;
    try {
      thread = this.spawnWorker({ ortPath: ortEntry(), niceIncrement: WORKER_NICE_INCREMENT }, name);
    } catch (err) {
      throw new Internal(`model '${name}': cannot start the ONNX Runtime worker thread: ${messageOf(err)}`);
    }
    return new SessionWorker(thread, name);
  }

  /**
   * Creates the session in `host` from the file's path (so ORT finds external data beside it);
   * throws a KinferError naming the file, as the version folder holds it, when ORT refuses it.
   */
  private async open(host: SessionHost, files: ModelFiles, options: ort.InferenceSession.SessionOptions): Promise<Extract<SessionReply, { op: 'load' }>> {
    const modelFile = files.modelFile!;
    const reply = await host.request({ op: 'load', modelFile, options });
    if (!reply.ok) {
      const msg = `model '${this.name}': ONNX Runtime cannot load ${relative(files.dir, modelFile)}: ${oneLine(reply.error)}`;
      // e.g. bfloat16 inputs: the Node binding has no JS type for them.
      throw /unsupported data type/i.test(msg) ? new Unsupported(msg) : new InvalidArgument(msg);
    }
    if (reply.op !== 'load') throw new Internal(`model '${this.name}': the ONNX Runtime session answered '${reply.op}' to 'load'`);
    return reply;
  }

  /**
   * `auto` on the event loop after a run of `runMs` over `rows` (dim 0): past
   * the limit, or at the first run of more than one row under `untilBatch`, loads the
   * session into a worker thread while the loop keeps serving, then switches.
   * If the worker cannot load, the session stays on the loop.
   */
  private maybeMove(runMs: number, rows: number): void {
    const limit = this.opts.eventLoopRunLimitMs ?? EVENT_LOOP_RUN_LIMIT_MS;
    if (!this.auto || this.moving || this.host?.thread !== 'event_loop') return;
    const why = runMs > limit ? 'a run blocked the loop past the limit' : this.untilBatch && rows > 1 ? "a batch of more than one row under Triton's delay rule" : undefined;
    if (!why) return;
    const files = this.files!;
    const options = this.options!;
    const from = this.host;
    this.moving = (async () => {
      let worker: SessionWorker | undefined;
      try {
        worker = this.startWorker(this.name);
        const reply = await this.open(worker, files, options);
        if (this.host !== from) {
          await worker.close(); // unloaded meanwhile
          return;
        }
        this.host = worker;
        this.threadNice = reply.nice;
        logger.info({ event: 'session_moved', model: this.name, runMs: Math.round(runMs), limitMs: limit, rows }, `ONNX session moved from the event loop to a worker thread: ${why}`);
        await from.close();
      } catch (err) {
        await worker?.close();
        logger.warn({ event: 'session_move_failed', model: this.name, err: messageOf(err) }, 'ONNX session stays on the event loop: its worker thread could not load it');
      }
    })();
  }

  async infer(inputs: Tensor[], outputNames: readonly string[]): Promise<Tensor[]> {
    const host = this.host;
    if (!host) throw new NotReady(`model '${this.name}' is not loaded`);
    const byName = new Map<string, Tensor>();
    for (const t of inputs) {
      if (!this.inputs.some((s) => s.name === t.name)) {
        throw new InvalidArgument(`model '${this.name}': unknown input '${t.name}' (inputs: ${this.inputs.map((s) => s.name).join(', ')})`);
      }
      byName.set(t.name, t);
    }
    for (const s of this.inputs) {
      if (!byName.has(s.name) && !this.optional.includes(s.name)) throw new InvalidArgument(`model '${this.name}': missing input '${s.name}'`);
    }
    const fetches = outputNames.length > 0 ? [...outputNames] : this.outputs.map((s) => s.name);
    for (const n of fetches) {
      if (!this.outputs.some((s) => s.name === n)) {
        throw new InvalidArgument(`model '${this.name}': unknown output '${n}' (outputs: ${this.outputs.map((s) => s.name).join(', ')})`);
      }
    }
    const transfer: ArrayBuffer[] = [];
    const feeds = [...byName.values()].map((t) => toWire(t, host.thread === 'worker' ? transfer : undefined));
    const reply = await host.request({ op: 'run', feeds, fetches }, transfer);
    if (!reply.ok) {
      const bad = reply.input === undefined ? undefined : byName.get(reply.input);
      if (bad) throw new InvalidArgument(`model '${this.name}': input '${bad.name}' (${bad.datatype} [${bad.shape.join(',')}]): ${oneLine(reply.error)}`);
      throw runError(this.name, reply.error);
    }
    if (reply.op !== 'run') throw new Internal(`model '${this.name}': the ONNX Runtime session answered '${reply.op}' to 'run'`);
    this.lastRun = { startedAt: reply.startedAt, endedAt: reply.endedAt };
    if (host.thread === 'event_loop') this.maybeMove(reply.endedAt - reply.startedAt, inputs[0]?.shape[0] ?? 1);
    return fetches.map((n) => fromWire(this.name, n, reply.outputs.find((o) => o.name === n)));
  }

  /** Releases the session (and ends its worker thread). Safe to call twice. */
  async unload(): Promise<void> {
    const host = this.host;
    this.host = undefined;
    this.files = undefined;
    if (host) await host.close();
    await this.moving;
    this.moving = undefined;
  }

  /** Not ready once the worker thread has died; the model must then be reloaded. */
  health(): { ready: boolean; lastError?: string } {
    const failure = this.host?.failure;
    return failure === undefined ? { ready: true } : { ready: false, lastError: `ONNX Runtime worker stopped: ${failure}` };
  }
}

function messageOf(err: unknown): string {
  return oneLine(err instanceof Error ? err.message : String(err));
}

function oneLine(msg: string): string {
  return msg.replace(/\s+/g, ' ').trim();
}

/**
 * ORT's own input checks, kernel shape failures (incompatible dims that the
 * file leaves symbolic) and index bounds (Gather, ScatterND, OneHot: an index
 * that came with the request) are the client's doing; anything else is ours.
 * ORT's Node binding gives only the message, not the status code.
 */
const INPUT_FAULT = /invalid dimensions|invalid rank|unexpected input data type|missing in 'feeds'|invalid (input|output) name|broadcast|shape|dimension|out of (data )?(bounds|range)/i;

/** Maps an error from `session.run` to InvalidArgument (input-caused) or Internal, keeping ORT's message. */
export function runError(model: string, err: unknown): KinferError {
  if (err instanceof KinferError) return err;
  const msg = messageOf(err);
  return INPUT_FAULT.test(msg)
    ? new InvalidArgument(`model '${model}': ONNX Runtime rejected the inputs: ${msg}`)
    : new Internal(`model '${model}': ONNX Runtime failed: ${msg}`);
}

function fromOrtMetadata(model: string, role: string, m: WireValueMetadata): FileValue {
  if (!m.isTensor) throw new Unsupported(`model '${model}': ${role} '${m.name}' is not a tensor (sequences and maps are not supported)`);
  const datatype = ORT_TO_V2[m.type as ort.Tensor.Type];
  if (!datatype) throw new Unsupported(`model '${model}': ${role} '${m.name}' has ONNX type ${m.type}, which has no v2 datatype`);
  return { name: m.name, datatype, shape: m.shape.map((d) => (typeof d === 'number' && d >= 0 ? d : -1)) };
}

/**
 * The served specs for one role. Without declared specs, the file's. With
 * them, each must name a value of the file with the same datatype and a
 * compatible shape; the served shape is the declared one, narrowed where the
 * file fixes a dim the config leaves variable.
 */
function reconcile(
  model: string,
  role: 'input' | 'output',
  file: FileValue[],
  declared: TensorSpec[],
  maxBatchSize: number,
): { specs: TensorSpec[]; tritonNoBatch: boolean } {
  if (declared.length === 0) return { specs: file.map((f) => ({ ...f, shape: [...f.shape] })), tritonNoBatch: false };
  let tritonNoBatch = maxBatchSize === 0;
  const specs = declared.map((d) => {
    const f = file.find((x) => x.name === d.name);
    const where = `model '${model}': config ${role} '${d.name}'`;
    if (!f) throw new InvalidArgument(`${where} is not an ${role} of the model file (${role}s: ${file.map((x) => x.name).join(', ')})`);
    if (f.datatype !== d.datatype) throw new InvalidArgument(`${where} has datatype ${d.datatype} but the model file says ${f.datatype}`);
    let served: number[];
    if (maxBatchSize > 0) {
      served = [-1, ...d.shape];
      if (f.shape.length > 0 && f.shape[0] !== -1) {
        throw new InvalidArgument(`${where}: max_batch_size ${maxBatchSize} needs a variable first dim, but the model file fixes it to ${f.shape[0]}`);
      }
    } else if (d.shape.length === f.shape.length - 1 && f.shape[0] === -1) {
      // The original Xilinx server's configs declare per-item shapes without max_batch_size.
      served = [-1, ...d.shape];
      tritonNoBatch = false;
    } else {
      served = [...d.shape];
    }
    // A file with no shape info (rank 0 reported) cannot be checked further.
    if (f.shape.length > 0) {
      if (served.length !== f.shape.length) {
        throw new InvalidArgument(
          `${where} has shape [${served.join(',')}] (as served) but the model file says [${f.shape.join(',')}]`,
        );
      }
      served = served.map((s, i) => {
        const fd = f.shape[i]!;
        if (s >= 0 && fd >= 0 && s !== fd) {
          throw new InvalidArgument(`${where}: dim ${i} is ${s} but the model file says ${fd}`);
        }
        return s < 0 ? fd : s;
      });
    }
    return { name: d.name, datatype: d.datatype, shape: served };
  });
  return { specs, tritonNoBatch };
}

/**
 * The wire form of an input. Numeric data is copied into a buffer of its own,
 * which is transferred: the caller keeps its buffer, and a view into a larger
 * one (a request body) does not drag the whole body across the thread. A
 * buffer the batcher merged for this call (`batching/ownership.ts`) is
 * transferred as is, without the copy.
 */
function toWire(t: Tensor, transfer: ArrayBuffer[] | undefined): WireTensor {
  const type = V2_TO_ORT[t.datatype];
  if (t.datatype === 'BYTES') {
    // ORT's JS API holds string tensors as JS strings: bytes must be UTF-8 (a lossy decode would
    // compute on U+FFFD replacements and answer 200).
    const strings = (t.data as Uint8Array[]).map((b, i) => {
      try {
        return utf8.decode(b);
      } catch {
        throw new InvalidArgument(`input '${t.name}': element ${i} is not valid UTF-8; ONNX Runtime string tensors hold text only`);
      }
    });
    return { name: t.name, type, dims: [...t.shape], data: strings };
  }
  const data = t.data as NumericArray;
  // On the event loop ORT reads the caller's buffer during the run: no copy, nothing moves.
  if (!transfer || !ArrayBuffer.isView(data)) return { name: t.name, type, dims: [...t.shape], data: data as ort.Tensor.DataType };
  if (data.buffer instanceof ArrayBuffer && takeOver(data)) {
    transfer.push(data.buffer);
    return { name: t.name, type, dims: [...t.shape], data: data as ort.Tensor.DataType };
  }
  const copy = data.slice();
  transfer.push(copy.buffer as ArrayBuffer);
  return { name: t.name, type, dims: [...t.shape], data: copy as ort.Tensor.DataType };
}

function fromWire(model: string, name: string, value: WireTensor | undefined): Tensor {
  if (!value) throw new Internal(`model '${model}': ONNX Runtime returned no output '${name}'`);
  const datatype = ORT_TO_V2[value.type];
  if (!datatype) throw new Internal(`model '${model}': output '${name}' has ONNX type ${value.type}, which has no v2 datatype`);
  if (datatype === 'BYTES') {
    return { name, datatype, shape: value.dims, data: (value.data as string[]).map((s) => encoder.encode(s)) };
  }
  return { name, datatype, shape: value.dims, data: value.data as NumericArray };
}
